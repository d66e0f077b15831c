"""The board: the page, a column's next cards, the 30-second poll for changes, and a move."""

import uuid

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ...accounts.users import active_staff
from ...core import formatting
from ...core.clock import utcnow
from ...core.htmx import is_htmx_request
from ...leads.models import LeadSource, OrganizationSize
from ...leads.records import get_lead
from ...leads.statuses import LOST_REASONS, LeadStatus, StatusTransitionError, UnknownStatusError, parse_status
from ...leads.validation import LeadValidationError
from ...scheduling import demos
from .. import board as board_model
from .. import moves
from .blueprint import bp
from .pages import board_context, demo_dialog_context, render_lead_page
from .responses import current_filter, message


@bp.get("")
def board():
    board_filter = current_filter()
    context = board_context(board_filter)
    if is_htmx_request() and not request.headers.get("HX-History-Restore-Request"):
        return render_template("pipeline/_board.html", **context)
    return render_template(
        "pipeline/board.html",
        periods=board_model.PERIODS,
        lost_reasons=LOST_REASONS,
        source_choices=LeadSource.choices(),
        size_choices=OrganizationSize.choices(),
        owner_filters=board_model.OWNER_FILTERS,
        staff=active_staff(),
        **demo_dialog_context(),
        **context,
    )


@bp.get("/columns/<status>")
def more_cards(status: str):
    try:
        column_status = parse_status(status)
    except UnknownStatusError:
        abort(404)
    board_filter = current_filter()
    column = board_model.more_cards(column_status, board_filter, request.args.get("cursor"))
    return render_template("pipeline/_cards.html", column=column, board_filter=board_filter)


@bp.get("/changes")
def changes():
    """The 30 s poll: cards booked, moved or edited since `since`, the first-contact clocks as of now, and fresh
    counts."""
    board_filter = current_filter()
    since = board_model.parse_timestamp(request.args.get("since")) or utcnow()
    now = utcnow()
    counts, sums = board_model.column_totals(board_filter)
    return render_template(
        "pipeline/_changes.html",
        cards=board_model.changed_cards(board_filter, since),
        clocks=board_model.running_clocks(board_filter),
        counts=counts,
        sums=sums,
        overdue_count=board_model.overdue_count(board_filter),
        board_filter=board_filter,
        since=now.isoformat(),
        since_moment=since,
    )


@bp.post("/leads/<uuid:lead_id>/status")
def move(lead_id: uuid.UUID):
    board_filter = current_filter()
    lead = get_lead(lead_id)  # an unknown lead is a 404 whatever else the request says
    # The lead page's «Avtal demo» form: its answers go back to that page, with what was typed kept.
    from_lead_page = request.form.get("back") == "lead" and not is_htmx_request()
    try:
        target = parse_status(request.form.get("status"))
        details = moves.validate_move_details(target, request.form, default_host_id=lead.owner_id or current_user.id)
        lead = moves.move(lead_id, target, by=current_user.user, details=details)
    except UnknownStatusError:
        return message("Ukjent status. Velg en av kolonnene på tavla.", 422, kind="error")
    except LeadValidationError as error:
        if from_lead_page:
            return render_lead_page(lead_id, errors=error.errors, status=422)
        return message(" ".join(error.errors.values()), 422, kind="error")
    except StatusTransitionError as error:
        return message(error.message, 409, kind="error", lead_id=lead_id)
    text = f"«{lead.organization_name}» er flyttet til «{lead.status_label}»."
    if lead.next_step and lead.next_step_due_at:
        # The proposal is only a proposal: say what it is, and where to change it.
        due = formatting.due_label(lead.next_step_due_at)
        # «des.» already ends the sentence: no «des..».
        text += f" Neste steg: «{lead.next_step}», frist {due}" + ("" if due.endswith(".") else ".")
    if lead.demo_at and lead.status == LeadStatus.DEMO_SCHEDULED:
        text += " Invitasjonen sendes til kontakten og verten."
        if clash := demos.host_clash_note(lead):
            text += " " + clash
    if not is_htmx_request():
        flash(text)
        if from_lead_page:
            return redirect(url_for("pipeline.lead_page", lead_id=lead_id), code=303)
        return redirect(url_for("pipeline.board", **board_filter.as_args()), code=303)
    counts, sums = board_model.column_totals(board_filter)
    return message(
        text,
        200,
        moved_card=board_model.get_card(lead_id),
        counts=counts,
        sums=sums,
        board_filter=board_filter,
        overdue_count=board_model.overdue_count(board_filter),
    )
