from email.utils import parseaddr

from flask import abort, current_app, render_template, request, url_for

from .. import attribution, leads, scheduling
from ..client_ip import client_ip
from ..extensions import limiter
from ..htmx import is_htmx_request, redirect_after_post
from . import bp
from .forms import HONEYPOT_FIELD, DemoBookingForm


def render_booking_form(
    form: DemoBookingForm,
    errors: dict | None = None,
    notice: str | None = None,
    status=200,
    touch: attribution.Touch = attribution.NO_TOUCH,
):
    """The whole page for a normal request, only the form fragment for htmx; one template serves both."""
    template = "public/_booking_form.html" if is_htmx_request() else "public/demo.html"
    return render_template(template, form=form, errors=errors or {}, notice=notice, touch=touch), status


def booking_rate_limit() -> str:
    return current_app.config["BOOKING_RATE_LIMIT"]


@bp.get("/")
@bp.get("/demo")
def demo_form():
    touch = attribution.arrival_touch(request.args, request.referrer, current_app.config.get("TRUSTED_HOSTS") or ())
    return render_booking_form(DemoBookingForm(), touch=touch)


# On the blueprint, not the view: blueprint limits run in before_request, ahead of the CSRF check,
# so posts without a valid token count against the limit too. One bucket for every POST here: a booking
# and a request for another demo time («Be om et annet tidspunkt») count against the same limit.
limiter.shared_limit(booking_rate_limit, scope="booking", methods=["POST"])(bp)


@bp.post("/demo")
def book_demo():
    # CSRFProtect has checked the token before this view runs; the form object is built only to show
    # errors again (it fills itself from request.form, so the prospect keeps what they typed).
    if request.form.get(HONEYPOT_FIELD):
        # Looks accepted to the bot; nothing is stored and no mail goes out.
        return redirect_after_post(url_for("public.booking_received"))
    touch = attribution.from_values(request.form)
    try:
        details = leads.validate_contact_details(request.form)
    except leads.LeadValidationError as error:
        return render_booking_form(DemoBookingForm(), errors=error.errors, status=422, touch=touch)
    booking = leads.book_demo(details, ip_address=client_ip(), touch=touch)
    if booking.is_rebooking:
        # Whoever knows an address can book with it: only its mailbox gets the link to what is stored.
        return redirect_after_post(url_for("public.booking_received"))
    return redirect_after_post(url_for("public.confirmation", masked_ref=booking.masked_ref))


@bp.get("/demo/mottatt")
def booking_received():
    return render_template("public/received.html")


def _private(response):
    # The link is the key to this page: keep it out of caches, search engines and Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _lead_or_404(masked_ref: str):
    lead = leads.find_by_masked_ref(masked_ref)
    if lead is None:
        abort(404)
    return lead


def render_confirmation(lead, errors: dict | None = None, status: int = 200):
    """The page follows the booking: received, demo scheduled, held, or no demo (never why)."""
    state = scheduling.public_state(lead)
    host = scheduling.host_of(lead) if state == "scheduled" else None
    page = render_template(
        "public/confirmation.html",
        lead=lead,
        state=state,
        when=scheduling.demo_label(lead.demo_at) if lead.demo_at else None,
        host_first_name=host.first_name if host else None,
        minutes=lead.demo_minutes or scheduling.DEFAULT_MINUTES,
        contact_email=parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])[1],
        errors=errors or {},
        max_wish_length=scheduling.MAX_WISH_LENGTH,
    )
    return _private(current_app.make_response((page, status)))


@bp.get("/confirm/<masked_ref>")
def confirmation(masked_ref: str):
    return render_confirmation(_lead_or_404(masked_ref))


@bp.get("/confirm/<masked_ref>/demo.ics")
def demo_calendar(masked_ref: str):
    """«Legg til i kalenderen»: the scheduled demo as a calendar file, without anyone's address but the host's."""
    lead = _lead_or_404(masked_ref)
    if scheduling.public_state(lead) != "scheduled":
        abort(404)
    body = scheduling.ics_bytes(lead, "PUBLISH", lead.demo_sequence, with_attendee=False)
    response = current_app.make_response(body)
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = 'attachment; filename="meander-demo.ics"'
    return _private(response)


# Counted against the booking limit like every POST on this blueprint (see above).
@bp.post("/confirm/<masked_ref>/annet-tidspunkt")
def request_other_time(masked_ref: str):
    lead = _lead_or_404(masked_ref)
    try:
        scheduling.request_other_time(lead, request.form.get("wish"))
    except leads.LeadValidationError as error:
        return render_confirmation(lead, errors=error.errors, status=422)
    except scheduling.DemoNotScheduled:
        return render_confirmation(lead, status=409)
    return redirect_after_post(url_for("public.confirmation", masked_ref=masked_ref) + "#other-time")
