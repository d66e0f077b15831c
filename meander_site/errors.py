"""Error pages in Norwegian. A prospect who hits a limit or a stale form keeps what they typed."""

import logging
import math
import time

from flask import Flask, current_app, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .accounts.forms import ForgotPasswordForm, LoginForm
from .accounts.pages import render_code_step, render_forgot_password, render_login
from .booking.forms import DemoBookingForm
from .booking.pages import render_booking_form, render_confirmation
from .core.rate_limits import RateLimitsUnavailable
from .extensions import limiter
from .leads.records import LeadNotFound, find_by_masked_ref

log = logging.getLogger(__name__)

RETYPE_NOTICE = "Skjemaet var utløpt. Vi har tatt vare på det du skrev – trykk «Send forespørsel» igjen."
CONTACT_ADDRESS = "demo@meander.no"
# What a page says when the limits cannot be counted anywhere (Redis and the database both down).
LIMITS_UNAVAILABLE_RETRY_SECONDS = 60


def _is_booking_post() -> bool:
    return request.method == "POST" and request.endpoint == "booking.submit_booking"


def _body_within_limit() -> bool:
    length = request.content_length
    return length is not None and length <= current_app.config["MAX_CONTENT_LENGTH"]


def _booking_form_again(notice: str, status: int):
    """The form as they typed it; empty when the body is too big to read (a limit never reads it)."""
    form = None
    if _body_within_limit():
        try:
            form = DemoBookingForm()
        except HTTPException:  # a body that does not parse: start them on an empty form
            form = None
    return render_booking_form(form or DemoBookingForm(formdata=None), notice=notice, status=status)


def _confirmed_lead():
    """The lead whose confirmation page posted this request, if the link names one."""
    return find_by_masked_ref((request.view_args or {}).get("masked_ref", ""))


def seconds_until_retry() -> int:
    current = limiter.current_limit
    if current is None:
        return 3600
    return max(1, math.ceil(current.reset_at - time.time()))


def try_again_in(seconds: int) -> Markup:
    """How long to wait, in whole minutes rounded up, and whom to write to instead."""
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minutt" if minutes == 1 else "minutter"
    return Markup(
        'Prøv igjen om {} {}, eller send oss en e-post på <a href="mailto:{}">{}</a> hvis du ikke kan vente.'
    ).format(minutes, unit, CONTACT_ADDRESS, CONTACT_ADDRESS)


def _come_back_later(
    status: int, retry_after: int, *, booking: str, wish: str, login: str, code: str, reset: str, title: str
):
    """A 429 or a 503 that says what happened and how long to wait: the booking form and the wish keep what was
    typed, the login form keeps the email (the CSRF check has read the size-capped form already)."""
    wait = try_again_in(retry_after)
    kept = " Det du skrev, står fortsatt i skjemaet. "
    if _is_booking_post():
        response = _booking_form_again(escape(booking + kept) + wait, status)
    elif request.endpoint == "booking.request_other_time" and (lead := _confirmed_lead()) is not None:
        response = render_confirmation(lead, errors={"wish": escape(wish + kept) + wait}, status=status)
    elif request.endpoint == "accounts.login":
        response = render_login(LoginForm(), error=escape(login + " ") + wait, status=status)
    elif request.endpoint == "accounts.enter_code":
        response = render_code_step(notice=escape(code + " ") + wait, status=status)
    elif request.endpoint == "accounts.request_password_reset":
        response = render_forgot_password(ForgotPasswordForm(), notice=escape(reset + " ") + wait, status=status)
    else:
        response = render_template("errors/error.html", title=title, message=wait), status
    response = current_app.make_response(response)
    response.headers["Retry-After"] = str(retry_after)
    return response


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        log.info(
            "csrf token rejected",
            extra={"event": "csrf_rejected", "endpoint": request.endpoint, "reason": error.description},
        )
        if _is_booking_post():
            return _booking_form_again(RETYPE_NOTICE, 400)
        return render_template(
            "errors/error.html", title="Siden var utløpt", message="Last siden på nytt og prøv igjen."
        ), 400

    @app.errorhandler(429)
    def rate_limited(error):
        # The endpoint and the limit, never the address that hit it.
        current = limiter.current_limit
        log.warning(
            "rate limit reached",
            extra={
                "event": "rate_limited",
                "endpoint": request.endpoint,
                "limit": str(current.limit) if current else None,
            },
        )
        return _come_back_later(
            429,
            getattr(error, "retry_after", None) or seconds_until_retry(),
            booking="Du har sendt mange forespørsler på kort tid.",
            wish="Du har sendt mange ønsker på kort tid.",
            login="For mange innloggingsforsøk på kort tid.",
            code="For mange forsøk med kode på kort tid.",
            reset="Du har bedt om mange lenker på kort tid.",
            title="For mange forespørsler",
        )

    @app.errorhandler(RateLimitsUnavailable)
    def limits_unavailable(error):
        # Logged where it happened (core/rate_limits.py): neither Redis nor the database could count the request.
        return _come_back_later(
            503,
            LIMITS_UNAVAILABLE_RETRY_SECONDS,
            booking="Vi kan ikke ta imot forespørsler akkurat nå.",
            wish="Vi kan ikke ta imot ønsker akkurat nå.",
            login="Innloggingen er utilgjengelig akkurat nå.",
            code="Innloggingen er utilgjengelig akkurat nå.",
            reset="Vi kan ikke sende lenker akkurat nå.",
            title="Prøv igjen om litt",
        )

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        # The body is never read: nothing of it can be shown again.
        return render_template(
            "errors/error.html",
            title="Det du sendte er for stort",
            message="Skjemaet tar ikke imot så mye tekst. Gå tilbake, gjør teksten kortere og send på nytt.",
        ), 413

    @app.after_request
    def _error_pages_are_never_stored(response):
        # A 401, 422 or 429 page shows what someone typed: no cache or back-button store may keep it.
        if response.status_code >= 400:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(LeadNotFound)
    @app.errorhandler(404)
    def not_found(error):
        if request.path.startswith("/pipeline/") and current_user.is_authenticated:
            # A staff address that matches no route (the pipeline's own 404s have the blueprint's handler).
            return render_template("pipeline/not_found.html", erased_at=None), 404
        return render_template(
            "errors/error.html",
            title="Fant ikke siden",
            message="Lenken kan være skrevet feil eller for gammel. Gå til forsiden for å bestille en demo.",
        ), 404

    @app.errorhandler(HTTPException)
    def other_http_error(error):
        return render_template("errors/error.html", title=error.name, message="Gå tilbake og prøv igjen."), error.code

    @app.errorhandler(500)
    def server_error(error):
        return render_template(
            "errors/error.html", title="Noe gikk galt hos oss", message="Prøv igjen om litt. Feilen er logget."
        ), 500
