"""A page that carries a visitor's form token or sets a cookie is never stored by a cache (issue 16, item 8):
/demo and /login echo their query string (utm_source, next) into a page with a CSRF token and a session cookie."""

import pytest


@pytest.mark.parametrize(
    "path",
    [
        "/demo?utm_source=X-ekko",
        "/?utm_campaign=X-ekko",
        "/login?next=/X-ekko",
    ],
)
def test_a_page_with_the_query_string_a_token_and_a_cookie_is_not_stored(app, path):
    client = app.test_client()

    first = client.get(path)
    again = client.get(path)  # a returning visitor: the cookie is set, the token is still in the page

    for response in (first, again):
        assert response.status_code == 200
        assert "X-ekko" in response.get_data(as_text=True)
        assert 'name="csrf_token"' in response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" in first.headers
