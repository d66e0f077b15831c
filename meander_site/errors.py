"""Error pages in Norwegian. A prospect who hits a limit or a stale form keeps what they typed."""

import logging
import math
import time

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .extensions import limiter
from .sales import LeadNotFound

log = logging.getLogger(__name__)

RETYPE_NOTICE = "Skjemaet var utløpt. Vi har tatt vare på det du skrev – trykk «Send forespørsel» igjen."


def _is_booking_post() -> bool:
    return request.method == "POST" and request.endpoint == "public.book_demo"


def _booking_form_again(notice: str, status: int):
    # Imported here: the public blueprint imports this package's extensions.
    from .public.forms import DemoBookingForm
    from .public.views import render_booking_form

    return render_booking_form(DemoBookingForm(), notice=notice, status=status)


def seconds_until_retry() -> int:
    current = limiter.current_limit
    if current is None:
        return 3600
    return max(1, math.ceil(current.reset_at - time.time()))


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        log.info(
            "csrf token rejected",
            extra={"event": "csrf_rejected", "endpoint": request.endpoint, "reason": error.description},
        )
        if _is_booking_post():
            return _booking_form_again(RETYPE_NOTICE, 400)
        return render_template("errors/error.html", title="Siden var utløpt",
                               message="Last siden på nytt og prøv igjen."), 400

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
        if _is_booking_post():
            notice = (
                "Du har sendt mange forespørsler på kort tid. Vi har tatt vare på det du skrev: "
                "prøv igjen om litt, eller send oss en e-post på demo@meander.no."
            )
            response = _booking_form_again(notice, 429)
        elif request.endpoint == "auth.login":
            from .auth.forms import LoginForm
            from .auth.views import render_login

            response = render_login(
                LoginForm(),
                error="For mange mislykkede innlogginger. Vent et kvarter og prøv igjen, "
                "eller kontakt en administrator.",
                status=429,
            )
        else:
            response = render_template("errors/error.html", title="For mange forespørsler",
                                       message="Vent litt og prøv igjen."), 429
        response = app.make_response(response)
        response.headers["Retry-After"] = str(seconds_until_retry())
        return response

    @app.errorhandler(LeadNotFound)
    @app.errorhandler(404)
    def not_found(error):
        return render_template("errors/error.html", title="Fant ikke siden",
                               message="Lenken kan være skrevet feil eller for gammel. "
                                       "Gå til forsiden for å bestille en demo."), 404

    @app.errorhandler(HTTPException)
    def other_http_error(error):
        return render_template("errors/error.html", title=error.name,
                               message="Gå tilbake og prøv igjen."), error.code

    @app.errorhandler(500)
    def server_error(error):
        return render_template("errors/error.html", title="Noe gikk galt hos oss",
                               message="Prøv igjen om litt. Feilen er logget."), 500

