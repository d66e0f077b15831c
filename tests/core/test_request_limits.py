"""Requests refused at the door: bodies over MAX_CONTENT_LENGTH, Host names that are not ours, and
pages that echo what someone typed kept out of every cache."""

import pytest
from helpers.booking import CSRF_INPUT, book, make_lead, stored_counts
from helpers.http import WatchedBody

from meander_site.leads.validation import MAX_LENGTHS

FIVE_MEGABYTES = 5 * 1024 * 1024


def huge_post(client, path: str, **kwargs):
    body = WatchedBody(b"notes=" + b"x" * FIVE_MEGABYTES)
    response = client.post(
        path,
        input_stream=body,
        content_type="application/x-www-form-urlencoded",
        content_length=FIVE_MEGABYTES + 6,
        **kwargs,
    )
    return response, body


# --- body size ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/demo", "/login"])
def test_a_five_megabyte_post_is_refused_with_413_in_norwegian_without_being_read(app, client, path):
    response, body = huge_post(client, path)

    assert response.status_code == 413
    assert not body.was_read
    html = response.get_data(as_text=True)
    assert "Det du sendte er for stort" in html
    assert "gjør teksten kortere" in html
    assert stored_counts(app) == (0, 0)


def test_the_longest_booking_the_form_allows_fits_under_the_limit(app, client):
    # Every field at its maximum, in the letter that costs most once UTF-8 and percent-encoded.
    longest = {field: "🙂" * length for field, length in MAX_LENGTHS.items() if field not in ("email", "phone")}
    response = book(client, **longest)

    assert response.status_code == 303
    assert stored_counts(app) == (1, 1)


# --- Host ---------------------------------------------------------------------------------------------


def at_host(client, method: str, path: str, host: str, **kwargs):
    # PATH_INFO directly: the test client would read a path starting with "//" as a host name.
    return client.open(method=method, environ_overrides={"HTTP_HOST": host, "PATH_INFO": path}, **kwargs)


@pytest.mark.parametrize("production", [False, True], ids=["test_config", "production"])
@pytest.mark.parametrize(
    "method, path",
    [("GET", "//confirm//{ref}"), ("GET", "/demo"), ("POST", "/demo"), ("GET", "/pipeline"), ("GET", "/no-such-page")],
)
def test_a_host_that_is_not_ours_gets_400_and_is_never_echoed(app, make_app, method, path, production):
    lead = make_lead(app)
    site = make_app(ENV_NAME="production", TESTING=False) if production else app
    client = site.test_client()

    response = at_host(client, method, path.format(ref=lead["masked_ref"]), "evil.example")

    assert response.status_code == 400
    assert "Location" not in response.headers
    html = response.get_data(as_text=True)
    assert "evil.example" not in html
    assert "Ukjent adresse" in html


@pytest.mark.parametrize("host", ["demo.meander.test", "demo.meander.test:443", "localhost"])
def test_the_canonical_path_redirect_is_relative_on_our_own_hosts(app, client, host):
    lead = make_lead(app)

    response = at_host(client, "GET", f"//confirm//{lead['masked_ref']}", host)

    assert response.status_code == 308
    assert response.headers["Location"] == f"/confirm/{lead['masked_ref']}"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:8000", "demo.meander.test"])
def test_health_probes_on_the_local_names_are_answered(client, host):
    assert at_host(client, "GET", "/healthz", host).status_code == 200


def test_extra_trusted_hosts_come_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("EXTRA_TRUSTED_HOSTS", "10.0.0.5, probe.internal")
    client = make_app().test_client()

    assert at_host(client, "GET", "/healthz", "10.0.0.5:8000").status_code == 200
    assert at_host(client, "GET", "/healthz", "probe.internal").status_code == 200
    assert at_host(client, "GET", "/demo", "demo.meander.test").status_code == 200
    assert at_host(client, "GET", "/healthz", "localhost").status_code == 400


# --- pages that echo what was typed -------------------------------------------------------------------


def test_a_refused_booking_that_shows_what_was_typed_is_never_stored(client):
    response = book(client, email="ikke-en-adresse")

    assert response.status_code == 422
    assert 'value="ikke-en-adresse"' in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


def test_a_failed_sign_in_that_shows_the_email_typed_is_never_stored(client):
    token = CSRF_INPUT.search(client.get("/login").get_data(as_text=True)).group(1)

    response = client.post("/login", data={"csrf_token": token, "email": "hvem@meander.no", "password": "feil"})

    assert response.status_code == 401
    assert 'value="hvem@meander.no"' in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
