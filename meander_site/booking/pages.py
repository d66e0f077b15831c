"""The public pages as responses: the booking form (a whole page, or its fragment for htmx) and the
confirmation page. The views and the error pages (a 429, an expired form) both answer with these."""

import logging
from datetime import date
from email.utils import parseaddr

from flask import abort, current_app, render_template, url_for
from sqlalchemy.exc import SQLAlchemyError

from ..core.htmx import is_htmx_request
from ..extensions import db
from ..leads import attribution
from ..leads.models import Lead
from ..leads.records import find_by_masked_ref
from ..leads.statuses import FINAL_STATUSES, LeadStatus
from ..scheduling import demo_state, labels
from ..scheduling.demos import MAX_WISH_LENGTH
from ..slots import manage, outcomes
from ..slots import offer as slot_offer
from .forms import DemoBookingForm

log = logging.getLogger(__name__)


def slot_context(from_day: date | None = None, chosen_slot: str | None = None, prefer=None) -> dict:
    """What the slot picker renders: the free times, the one chosen, the demo's length, and «Flere tider»'s links.
    Without a database the form still works (a 503 page keeps what was typed): it then offers no times."""
    try:
        offer = slot_offer.free_offer(from_day, prefer=prefer)
    except SQLAlchemyError:
        db.session.rollback()
        log.warning("free slots unavailable", extra={"event": "slots_unavailable"})
        offer = slot_offer.Offer([], None)
    return {
        "offer": offer,
        "chosen_slot": chosen_slot,
        "slot_minutes": offer.demo_minutes,
        "more_url": lambda day: url_for("booking.demo_form", fra=day.isoformat()) + "#slot",
        "more_fragment_url": lambda day: url_for("booking.more_slots", fra=day.isoformat()),
    }


def render_booking_form(
    form: DemoBookingForm,
    errors: dict | None = None,
    notice: str | None = None,
    status=200,
    touch: attribution.Touch = attribution.NO_TOUCH,
    from_day: date | None = None,
    chosen_slot: str | None = None,
):
    """The whole page for a normal request, only the form fragment for htmx; one template serves both."""
    template = "booking/_booking_form.html" if is_htmx_request() else "booking/demo.html"
    page = render_template(
        template,
        form=form,
        errors=errors or {},
        notice=notice,
        touch=touch,
        **slot_context(from_day, chosen_slot),
    )
    return page, status


def private(response):
    # The link is the key to this page: keep it out of caches, search engines and Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def lead_or_404(masked_ref: str) -> Lead:
    lead = find_by_masked_ref(masked_ref)
    if lead is None:
        abort(404)
    return lead


def render_confirmation(
    lead, errors: dict | None = None, status: int = 200, taken: bool = False, from_day: date | None = None
):
    """The page follows the booking: received, demo scheduled, held, or no demo (never why). A lead without a demo
    that is still open is offered the free times (after «Tidspunktet ble nettopp tatt», and any time later)."""
    state = demo_state.public_state(lead)
    if state == "held" and lead.demo_outcome in (outcomes.NO_SHOW, outcomes.CANCELLED_BY_US):
        state = "none"  # the demo did not happen: a new time is offered
    host = demo_state.host_of(lead) if state == "scheduled" else None
    can_pick = state in ("received", "none") and LeadStatus(lead.status) not in FINAL_STATUSES
    can_move = state == "scheduled"
    slots = {}
    if can_pick or can_move:
        slots = slot_context(from_day, prefer=lead.demo_host_id if can_move else None)
        slots["more_url"] = lambda day: (
            url_for("booking.confirmation", masked_ref=lead.masked_ref, fra=day.isoformat()) + "#slot"
        )
        slots["more_fragment_url"] = lambda day: url_for(
            "booking.more_slots_for_lead", masked_ref=lead.masked_ref, fra=day.isoformat()
        )
    if can_move:
        slots["change"] = manage.change_state(lead)
    page = render_template(
        "booking/confirmation.html",
        lead=lead,
        state=state,
        when=labels.demo_label(lead.demo_at) if lead.demo_at else None,
        host_first_name=host.first_name if host else None,
        minutes=lead.demo_minutes or demo_state.DEFAULT_MINUTES,
        contact_email=parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])[1],
        errors=errors or {},
        max_wish_length=MAX_WISH_LENGTH,
        can_pick=can_pick,
        can_move=can_move,
        taken=taken,
        **slots,
    )
    return private(current_app.make_response((page, status)))
