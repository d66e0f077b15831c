"""Staff at work over HTTP: signing in, the board's CSRF token, and the posts the board and lead page send."""

import re

from helpers.booking import CSRF_INPUT

STAFF_PASSWORD = "riktig-hest-batteri-stift"
HTMX = {"HX-Request": "true"}
HX_CSRF = re.compile(r'"X-CSRFToken": "([^"]+)"')


def log_in(client, email: str, password: str, next_path: str = "/pipeline"):
    page = client.get("/login")
    token = CSRF_INPUT.search(page.get_data(as_text=True)).group(1)
    return client.post(f"/login?next={next_path}", data={"csrf_token": token, "email": email, "password": password})


def staff_csrf(client) -> str:
    """The token the board sends with every htmx request (set once on <body>)."""
    match = HX_CSRF.search(client.get("/pipeline").get_data(as_text=True))
    assert match
    return match.group(1)


def post(client, path: str, token: str, htmx: bool = False, **data):
    """A staff form post (owner, next step, note, setting), as htmx sends it when `htmx`."""
    headers = {"X-CSRFToken": token, **(HTMX if htmx else {})}
    return client.post(path, data=data, headers=headers)


def move(client, lead_id, status: str | None, token: str | None, htmx: bool = True, **fields):
    """POST /pipeline/leads/<id>/status as the board's drop (htmx) or the lead page's form sends it."""
    data = {"status": status, **fields} if status is not None else dict(fields)
    headers = dict(HTMX) if htmx else {}
    if token:
        headers["X-CSRFToken"] = token
    return client.post(f"/pipeline/leads/{lead_id}/status", data=data, headers=headers)
