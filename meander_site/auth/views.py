from urllib.parse import urlsplit

from flask import current_app, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.urls import iri_to_uri

from .. import accounts
from ..client_ip import client_ip
from ..extensions import limiter, login_manager
from ..htmx import is_htmx_request
from ..leads import normalize_email
from . import bp
from .forms import LoginForm

WRONG_CREDENTIALS = "Feil e-post eller passord. Prøv igjen, eller be en kollega om å tilbakestille kontoen din."


def login_rate_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def login_account_key() -> str:
    return "account:" + normalize_email(request.form.get("email", ""))


def safe_next(target: str | None) -> str:
    """Only a path on this site: never another host, scheme, or a protocol-relative //host."""
    default = url_for("pipeline.board")
    # Judged on the raw string, which is what would be sent: urlsplit quietly drops tabs and line breaks,
    # and a line break in a Location header fails the response after the session has been created.
    if not target or not target.isprintable():
        return default
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return iri_to_uri(target)  # a header carries ASCII only


def render_login(form: LoginForm, error: str | None = None, status: int = 200):
    next_target = safe_next(request.args.get("next"))
    return render_template("auth/login.html", form=form, error=error, next_target=next_target), status


@bp.get("/login")
def login_form():
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")))
    return render_login(LoginForm())


# Every attempt is counted (per address and per account) in one atomic step before the password is
# checked, so a burst of any size gets at most LOGIN_RATE_LIMIT checks. Successful sign-ins count too:
# the moving window cannot give one attempt back without reopening the race, and with 12-hour sessions
# ten sign-ins per quarter hour is far more than anyone needs. These view limits run after the CSRF
# check, which has already read the (size-capped) form the account key needs.
@bp.post("/login")
@limiter.limit(login_rate_limit, key_func=client_ip, methods=["POST"])
@limiter.limit(login_rate_limit, key_func=login_account_key, methods=["POST"])
def login():
    form = LoginForm()
    user = accounts.authenticate(form.email.data or "", form.password.data or "")
    if user is None:
        return render_login(form, error=WRONG_CREDENTIALS, status=401)
    # A fresh session: nothing from before the login (a planted session id, an old CSRF token) survives.
    session.clear()
    login_user(accounts.SignedInStaff(user=user, token=accounts.start_session(user)))
    return redirect(safe_next(request.args.get("next")), code=303)


@bp.post("/logout")
@login_required
def logout():
    accounts.end_session(current_user.token)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login_form", logged_out=1), code=303)


@login_manager.user_loader
def load_signed_in_staff(token: str):
    return accounts.load_session(token)


@login_manager.unauthorized_handler
def ask_to_sign_in():
    if is_htmx_request():
        # Never swap the login page into the board: send the browser there instead.
        response = current_app.response_class(status=401)
        response.headers["HX-Redirect"] = url_for("auth.login_form", next=url_for("pipeline.board"))
        return response
    # Come back to the page asked for; a POST (say, a move after the session ran out) returns to the board.
    target = request.full_path.rstrip("?") if request.method == "GET" else url_for("pipeline.board")
    return redirect(url_for("auth.login_form", next=target))
