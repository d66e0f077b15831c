"""The public site: the demo form, a booking, and the confirmation page a prospect reaches by the link in their
mail (with the demo, its calendar file, and «Be om et annet tidspunkt»)."""

import hashlib
import math
import time

from flask import Blueprint, abort, current_app, render_template, request, url_for
from werkzeug.exceptions import TooManyRequests

from ..core.client_ip import client_ip
from ..core.clock import utcnow
from ..core.htmx import redirect_after_post
from ..extensions import limiter
from ..leads import attribution
from ..leads.validation import LeadValidationError, validate_contact_details
from ..scheduling import calendar, demo_state, demos
from ..slots import claims, manage, offer
from .book_demo import book_demo
from .forms import HONEYPOT_FIELD, DemoBookingForm
from .pages import lead_or_404, private, render_booking_form, render_confirmation, slot_context

SLOT_NOT_OFFERED = "Tidspunktet kan ikke velges. Velg en av tidene i listen, eller «Ingen av tidene passer»."

bp = Blueprint("booking", __name__)


def booking_rate_limit() -> str:
    return current_app.config["BOOKING_RATE_LIMIT"]


def booking_attempt_rate_limit() -> str:
    return current_app.config["BOOKING_ATTEMPT_RATE_LIMIT"]


LEAD_CREATION_SCOPE = "booking"


def never_after_the_answer(response) -> bool:
    """The lead creation limit is only tested before the view; the view takes its hit (take_lead_creation_attempt)."""
    return False


def take_lead_creation_attempt() -> None:
    """Count this booking, which passed validation, against BOOKING_RATE_LIMIT: one atomic hit on the bucket the
    limiter tested before the body was read (so bookings racing from one address never all slip through), or a
    429 that says when to try again."""
    for current in limiter.current_limits:
        if current.request_args[-1] == LEAD_CREATION_SCOPE:
            if not limiter.limiter.hit(current.limit, *current.request_args):
                refused = TooManyRequests()
                refused.retry_after = max(1, math.ceil(current.reset_at - time.time()))
                raise refused


def not_a_booking() -> bool:
    return request.endpoint != "booking.submit_booking"


def wish_rate_limit() -> str:
    return current_app.config["WISH_RATE_LIMIT"]


def demo_change_rate_limit() -> str:
    return current_app.config["DEMO_CHANGE_RATE_LIMIT"]


def confirmation_link_key() -> str:
    """The limit's key for one confirmation link: a digest, since the link is a secret kept only hashed."""
    masked_ref = (request.view_args or {}).get("masked_ref", "")
    return "ref:" + hashlib.sha256(masked_ref.encode()).hexdigest()[:32]


@bp.get("/")
@bp.get("/demo")
def demo_form():
    touch = attribution.arrival_touch(request.args, request.referrer, current_app.config.get("TRUSTED_HOSTS") or ())
    return render_booking_form(DemoBookingForm(), touch=touch, from_day=offer.parse_from_day(request.args.get("fra")))


@bp.get("/demo/tider")
def more_slots():
    """«Flere tider»: the next days of free times, as the fragment htmx appends."""
    from_day = offer.parse_from_day(request.args.get("fra"))
    return render_template("booking/_slot_days.html", **slot_context(from_day))


# Two limits per client address (core/rate_limits.py counts them in Redis, or the database while Redis is down):
# - every POST here, refused ones included, on the blueprint (before_request, ahead of the CSRF check, so posts
#   without a valid token count too): the looser BOOKING_ATTEMPT_RATE_LIMIT;
# - lead creation attempts, the bookings that passed validation: BOOKING_RATE_LIMIT, checked before the body is read
#   and counted after the answer, only when the booking was accepted.
# «Be om et annet tidspunkt» has its own limit per link (below).
limiter.shared_limit(booking_attempt_rate_limit, scope="booking_attempts", methods=["POST"])(bp)
limiter.shared_limit(
    booking_rate_limit,
    scope=LEAD_CREATION_SCOPE,
    methods=["POST"],
    deduct_when=never_after_the_answer,
    exempt_when=not_a_booking,
)(bp)


@bp.post("/demo")
def submit_booking():
    # CSRFProtect has checked the token before this view runs; the form object is built only to show
    # errors again (it fills itself from request.form, so the prospect keeps what they typed).
    if request.form.get(HONEYPOT_FIELD):
        # Looks accepted to the bot; nothing is stored and no mail goes out.
        return redirect_after_post(url_for("booking.booking_received"))
    touch = attribution.from_values(request.form)
    raw_slot = request.form.get("slot") or None
    errors = {}
    try:
        details = validate_contact_details(request.form)
    except LeadValidationError as error:
        errors = error.errors
    slot = claims.offered_for_booking(raw_slot, utcnow()) if raw_slot else None
    if raw_slot and slot is None:
        errors["slot"] = SLOT_NOT_OFFERED
    if errors:
        chosen = raw_slot if "slot" not in errors else None
        return render_booking_form(DemoBookingForm(), errors=errors, status=422, touch=touch, chosen_slot=chosen)
    take_lead_creation_attempt()
    booking = book_demo(details, ip_address=client_ip(), touch=touch, slot=slot)
    taken = {"tatt": "1"} if booking.slot_outcome == claims.Outcome.TAKEN else {}
    if booking.slot_outcome == claims.Outcome.KEPT:
        taken = {"beholdt": "1"}
    if booking.is_rebooking:
        # Whoever knows an address can book with it: only its mailbox gets the link to what is stored.
        return redirect_after_post(url_for("booking.booking_received", **taken))
    return redirect_after_post(url_for("booking.confirmation", masked_ref=booking.masked_ref, **taken))


@bp.get("/demo/mottatt")
def booking_received():
    return render_template(
        "booking/received.html", taken=request.args.get("tatt") == "1", kept=request.args.get("beholdt") == "1"
    )


@bp.get("/confirm/<masked_ref>")
def confirmation(masked_ref: str):
    return render_confirmation(
        lead_or_404(masked_ref),
        taken=request.args.get("tatt") == "1",
        from_day=offer.parse_from_day(request.args.get("fra")),
    )


# Counted against the booking limit like every POST on this blueprint, and per link.
@bp.post("/confirm/<masked_ref>/tidspunkt")
@limiter.limit(demo_change_rate_limit, key_func=confirmation_link_key, methods=["POST"], override_defaults=False)
def pick_slot(masked_ref: str):
    """A lead without a demo picks one of the free times from its confirmation page."""
    lead = lead_or_404(masked_ref)
    try:
        result = manage.book_for_lead(lead.id, request.form.get("slot"))
    except manage.SlotNotOffered:
        return render_confirmation(lead, errors={"slot": SLOT_NOT_OFFERED}, status=422)
    taken = {"tatt": "1"} if result.outcome == claims.Outcome.TAKEN else {}
    return redirect_after_post(url_for("booking.confirmation", masked_ref=masked_ref, **taken))


@bp.get("/confirm/<masked_ref>/tider")
def more_slots_for_lead(masked_ref: str):
    """«Flere tider» on the confirmation page: the demo's own host first when moving it."""
    lead = lead_or_404(masked_ref)
    from_day = offer.parse_from_day(request.args.get("fra"))
    prefer = lead.demo_host_id if demo_state.has_upcoming_demo(lead) else None
    return private(
        current_app.make_response(render_template("booking/_slot_days.html", **slot_context(from_day, prefer=prefer)))
    )


def _change_refused(lead, error: Exception):
    """A move or cancellation the rules refuse: the page again, saying why and what to do instead."""
    messages = {
        manage.SlotNotOffered: ("slot", SLOT_NOT_OFFERED, 422),
        manage.ChangeTooLate: (
            "change",
            "Det er for kort tid igjen til demoen til å endre den her. Svar på invitasjonen eller skriv til oss.",
            409,
        ),
        manage.TooManyMoves: (
            "change",
            "Demoen er flyttet så mange ganger det går an her. "
            "Svar på invitasjonen eller skriv til oss, så finner vi en tid.",
            409,
        ),
        demos.DemoNotScheduled: ("change", "Det er ingen demo å endre.", 409),
    }
    field, message, status = messages[type(error)]
    return render_confirmation(lead, errors={field: message}, status=status)


# Counted against the booking limit like every POST on this blueprint (per IP), and per link.
@bp.post("/confirm/<masked_ref>/flytt")
@limiter.limit(demo_change_rate_limit, key_func=confirmation_link_key, methods=["POST"], override_defaults=False)
def move_demo(masked_ref: str):
    lead = lead_or_404(masked_ref)
    try:
        result = manage.move_demo(lead.id, request.form.get("slot"))
    except (manage.SlotNotOffered, manage.ChangeTooLate, manage.TooManyMoves, demos.DemoNotScheduled) as error:
        return _change_refused(lead, error)
    taken = {"tatt": "1"} if result.outcome == claims.Outcome.TAKEN else {}
    return redirect_after_post(url_for("booking.confirmation", masked_ref=masked_ref, **taken) + "#move-demo")


@bp.post("/confirm/<masked_ref>/avlys")
@limiter.limit(demo_change_rate_limit, key_func=confirmation_link_key, methods=["POST"], override_defaults=False)
def cancel_demo(masked_ref: str):
    lead = lead_or_404(masked_ref)
    try:
        manage.cancel_demo(lead.id, request.form.get("reason"))
    except LeadValidationError as error:
        return render_confirmation(lead, errors=error.errors, status=422)
    except (manage.ChangeTooLate, demos.DemoNotScheduled) as error:
        return _change_refused(lead, error)
    return redirect_after_post(url_for("booking.confirmation", masked_ref=masked_ref))


@bp.get("/confirm/<masked_ref>/demo.ics")
def demo_calendar(masked_ref: str):
    """«Legg til i kalenderen»: the scheduled demo as a calendar file, without anyone's address but the host's."""
    lead = lead_or_404(masked_ref)
    if demo_state.public_state(lead) != "scheduled":
        abort(404)
    body = calendar.ics_bytes(lead, "PUBLISH", lead.demo_sequence, with_attendee=False)
    response = current_app.make_response(body)
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = 'attachment; filename="meander-demo.ics"'
    return private(response)


# Counted against the attempts limit like every POST on this blueprint (see above), and per link.
@bp.post("/confirm/<masked_ref>/annet-tidspunkt")
@limiter.limit(wish_rate_limit, key_func=confirmation_link_key, methods=["POST"], override_defaults=False)
def request_other_time(masked_ref: str):
    lead = lead_or_404(masked_ref)
    try:
        demos.request_other_time(lead, request.form.get("wish"))
    except LeadValidationError as error:
        return render_confirmation(lead, errors=error.errors, status=422)
    except demos.DemoNotScheduled:
        return render_confirmation(lead, status=409)
    return redirect_after_post(url_for("booking.confirmation", masked_ref=masked_ref) + "#other-time")
