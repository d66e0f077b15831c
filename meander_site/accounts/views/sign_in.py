"""Signing in and out: the login page, the second step's code, «Glemt passord?», the throttles on attempts, and
the session a sign-in starts."""

from flask import current_app, flash, redirect, request, session, url_for
from flask_login import current_user, login_required, logout_user

from ...core.client_ip import client_ip
from ...core.email_address import normalize_email
from ...core.htmx import is_htmx_request
from ...extensions import db, limiter, login_manager
from .. import resets, two_factor, users
from ..forms import CodeForm, ForgotPasswordForm, LoginForm
from ..models import User
from ..pages import render_code_step, render_forgot_password, render_login, safe_next
from ..responses import (
    SECOND_STEP,
    rate_limit,
    second_step_next,
    second_step_user_id,
    sign_in,
    start_signed_in,
)
from .blueprints import bp

WRONG_CREDENTIALS = "Feil e-post eller passord. Prøv igjen, eller velg «Glemt passord?» for å få en lenke på e-post."
SECOND_STEP_EXPIRED = "Innloggingen tok for lang tid. Logg inn med e-post og passord på nytt."


def login_account_key() -> str:
    return "account:" + normalize_email(request.form.get("email", ""))


def second_step_key() -> str:
    return f"second-step:{second_step_user_id()}"


def reset_address_key() -> str:
    return "reset:" + normalize_email(request.form.get("email", ""))


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
@limiter.limit(rate_limit("LOGIN_RATE_LIMIT"), key_func=client_ip, methods=["POST"])
@limiter.limit(rate_limit("LOGIN_RATE_LIMIT"), key_func=login_account_key, methods=["POST"])
def login():
    form = LoginForm()
    user = users.authenticate(form.email.data or "", form.password.data or "")
    if user is None:
        return render_login(form, error=WRONG_CREDENTIALS, status=401)
    db.session.commit()  # a rehashed password, if argon2's parameters changed
    return sign_in(user, safe_next(request.args.get("next")), url_for("accounts.code_form"))


@bp.get("/login/kode")
def code_form():
    if second_step_user_id() is None:
        flash(SECOND_STEP_EXPIRED)
        return redirect(url_for("accounts.login_form"))
    return render_code_step()


# The second step has a throttle of its own: per account (whose password was right) and per address.
@bp.post("/login/kode")
@limiter.limit(rate_limit("TWO_FACTOR_IP_RATE_LIMIT"), key_func=client_ip, methods=["POST"])
@limiter.limit(rate_limit("TWO_FACTOR_RATE_LIMIT"), key_func=second_step_key, methods=["POST"])
def enter_code():
    user_id = second_step_user_id()
    user = db.session.get(User, user_id) if user_id else None
    if user is None or not user.is_active:
        session.pop(SECOND_STEP, None)
        flash(SECOND_STEP_EXPIRED)
        return redirect(url_for("accounts.login_form"), code=303)
    form = CodeForm()
    try:
        kind = two_factor.accept_code(user.id, form.code.data)
    except two_factor.CodeRefused as refused:
        return render_code_step(form, errors={"code": str(refused)}, status=401)
    next_target = safe_next(second_step_next())
    response = start_signed_in(user, next_target)
    if kind == "recovery":
        left = two_factor.unused_recovery_codes(user.id)
        flash(f"Du logget inn med en reservekode. Du har {left} igjen; lag nye under Innstillinger når du trenger.")
    return response


@bp.post("/logout")
@login_required
def logout():
    users.end_session(current_user.token)
    logout_user()
    session.clear()
    return redirect(url_for("accounts.login_form", logged_out=1), code=303)


@bp.get("/glemt-passord")
def forgot_password():
    return render_forgot_password(sent=bool(request.args.get("sendt")))


# The same answer, and the same work before it, whether or not the address has an account (resets.py); the
# count per address and per client address comes first, before anything is looked up.
@bp.post("/glemt-passord")
@limiter.limit(rate_limit("PASSWORD_RESET_IP_RATE_LIMIT"), key_func=client_ip, methods=["POST"])
@limiter.limit(rate_limit("PASSWORD_RESET_RATE_LIMIT"), key_func=reset_address_key, methods=["POST"])
def request_password_reset():
    form = ForgotPasswordForm()
    email = (form.email.data or "").strip()
    if not email or "@" not in email:
        error = "Skriv inn e-postadressen du logger inn med, for eksempel ola@meander.no."
        return render_forgot_password(form, errors={"email": error}, status=422)
    resets.request_reset(email)
    return redirect(url_for("accounts.forgot_password", sendt=1), code=303)


@login_manager.user_loader
def load_signed_in_staff(token: str):
    return users.load_session(token)


@login_manager.unauthorized_handler
def ask_to_sign_in():
    if is_htmx_request():
        # Never swap the login page into the board: send the browser there instead.
        response = current_app.response_class(status=401)
        response.headers["HX-Redirect"] = url_for("accounts.login_form", next=url_for("pipeline.board"))
        return response
    # Come back to the page asked for; a POST (say, a move after the session ran out) returns to the board.
    target = request.full_path.rstrip("?") if request.method == "GET" else url_for("pipeline.board")
    return redirect(url_for("accounts.login_form", next=target))
