"""«Demoer» (staff only): whether I take demos and when, my calendar feed, and, for administrators, the rules of
self-booked demos for everyone. A section's post answers with the whole page, its errors at its fields."""

import uuid

from flask import Blueprint, flash, render_template, request, url_for
from flask_login import current_user

from ..accounts.access import staff_only
from ..core.htmx import redirect_after_post
from ..scheduling.labels import WEEKDAYS
from . import feeds, hosts, outcomes, rules, settings
from .rules import LIMITS

bp = Blueprint("slots", __name__, url_prefix="/pipeline")
staff_only(bp)
# The card and the lead page ask «Ble demoen holdt?» through these.
bp.add_app_template_global(outcomes.asks_outcome, "asks_demo_outcome")
bp.add_app_template_global(outcomes.ANSWERS, "DEMO_OUTCOME_ANSWERS")


def render_page(status: int = 200, host_errors=None, rule_errors=None, form=None, feed_error=None):
    user = current_user.user
    host = hosts.host_settings(user.id)
    return (
        render_template(
            "slots/settings.html",
            user=user,
            host=host,
            week=rules.parse_weekly_hours(host.weekly_hours),
            weekdays=WEEKDAYS,
            rules=rules.current(),
            limits=LIMITS,
            rule_labels=settings.RULE_LABELS,
            host_errors=host_errors or {},
            rule_errors=rule_errors or {},
            form=form,
            feed_masked=feeds.masked(host),
            feed_error=feed_error,
        ),
        status,
    )


@bp.get("/demoer")
def page():
    return render_page()


@bp.post("/demoer/meg")
def save_host():
    try:
        week = settings.parse_week(request.form)
    except settings.SettingsError as error:
        return render_page(422, host_errors=error.errors, form=request.form)
    settings.save_host(current_user.user.id, request.form.get("takes_demos") == "on", week)
    flash("Demoinnstillingene dine er lagret.")
    return redirect_after_post(url_for("slots.page"))


@bp.post("/demoer/kalender")
def save_feed():
    """The private calendar address (a secret: shown masked from now on, never logged); empty removes it."""
    try:
        feeds.set_feed_url(current_user.user.id, request.form.get("feed_url"))
    except feeds.FeedError as error:
        return render_page(422, feed_error=error.message)
    flash(
        "Kalenderadressen er lagret. Opptatt-tidene hentes i løpet av noen minutter."
        if request.form.get("feed_url", "").strip()
        else "Kalenderadressen er fjernet."
    )
    return redirect_after_post(url_for("slots.page"))


@bp.post("/demoer/regler")
def save_rules():
    if not current_user.is_admin:
        return render_page(403)
    try:
        settings.save_rules(settings.parse_rules(request.form), current_user.user.id)
    except settings.SettingsError as error:
        return render_page(422, rule_errors=error.errors, form=request.form)
    flash("Reglene for demoer er lagret.")
    return redirect_after_post(url_for("slots.page"))


@bp.post("/leads/<uuid:lead_id>/demo/holdt")
def record_outcome(lead_id: uuid.UUID):
    """«Ble demoen holdt?» from the card or the lead page; back where it was asked."""
    back = (
        url_for("pipeline.lead_page", lead_id=lead_id)
        if request.form.get("back") == "lead"
        else url_for("pipeline.board")
    )
    try:
        answer = outcomes.record_outcome(lead_id, request.form.get("outcome"), by=current_user.user)
    except outcomes.OutcomeRefused:
        flash("Svaret ble ikke lagret: noen har allerede svart, eller demoen er ikke holdt ennå.")
        return redirect_after_post(back)
    flash(
        {
            outcomes.HELD: "Lagret: demoen ble holdt. Neste steg er å følge opp.",
            outcomes.NO_SHOW: "Lagret: kunden møtte ikke. Kunden får en e-post med nye ledige tider.",
            outcomes.CANCELLED_BY_US: "Lagret: vi måtte avlyse demoen.",
        }[answer]
    )
    return redirect_after_post(back)
