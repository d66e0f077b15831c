import uuid

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import confirmations, exports, follow_up, formatting, leads, sales
from ..csv_export import csv_response
from ..extensions import login_manager
from ..htmx import is_htmx_request, redirect_after_post
from ..models import LeadSource, OrganizationSize, utcnow
from . import bp, demo_views
from .forms import LeadEditForm, NewLeadForm


@bp.before_request
def require_login():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


@bp.after_request
def never_cache_lead_data(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def current_filter() -> sales.BoardFilter:
    return sales.BoardFilter.from_args(request.values, viewer_id=current_user.id)


def board_context(board_filter: sales.BoardFilter) -> dict:
    """What the board page and its htmx refresh both need."""
    return {
        "columns": sales.board(board_filter),
        "board_filter": board_filter,
        "since": utcnow().isoformat(),
        "overdue_count": sales.overdue_count(board_filter),
        "sort_orders": sales.SORT_ORDERS,
        "max_note_length": sales.MAX_NOTE_LENGTH,
    }


@bp.errorhandler(sales.LeadNotFound)
@bp.errorhandler(404)
def not_found(error):
    """Staff looking for a lead that is gone: say whether it was erased, and lead back to the board."""
    lead_id = error.args[0] if isinstance(error, sales.LeadNotFound) and error.args else None
    erased_at = sales.erased_at(lead_id) if isinstance(lead_id, uuid.UUID) else None
    return render_template("pipeline/not_found.html", erased_at=erased_at), 404


def message(text: str, status: int, kind: str = "info", **context):
    """A move's answer: a fragment for the board's live region, or a small page without JavaScript."""
    template = "pipeline/_move_result.html" if is_htmx_request() else "pipeline/move_result.html"
    return render_template(template, message=text, kind=kind, **context), status


# --- the board -------------------------------------------------------------------------------------


@bp.get("")
def board():
    board_filter = current_filter()
    context = board_context(board_filter)
    if is_htmx_request() and not request.headers.get("HX-History-Restore-Request"):
        return render_template("pipeline/_board.html", **context)
    return render_template(
        "pipeline/board.html",
        periods=sales.PERIODS,
        lost_reasons=sales.LOST_REASONS,
        source_choices=LeadSource.choices(),
        size_choices=OrganizationSize.choices(),
        owner_filters=sales.OWNER_FILTERS,
        staff=follow_up.active_staff(),
        **demo_views.dialog_context(),
        **context,
    )


@bp.get("/columns/<status>")
def more_cards(status: str):
    try:
        column_status = leads.parse_status(status)
    except leads.UnknownStatusError:
        abort(404)
    board_filter = current_filter()
    column = sales.more_cards(column_status, board_filter, request.args.get("cursor"))
    return render_template("pipeline/_cards.html", column=column, board_filter=board_filter)


@bp.get("/changes")
def changes():
    """The 30 s poll: cards booked, moved or edited since `since`, and fresh counts."""
    board_filter = current_filter()
    since = sales.parse_timestamp(request.args.get("since")) or utcnow()
    now = utcnow()
    return render_template(
        "pipeline/_changes.html",
        cards=sales.changed_cards(board_filter, since),
        counts=sales.column_counts(board_filter),
        overdue_count=sales.overdue_count(board_filter),
        board_filter=board_filter,
        since=now.isoformat(),
        since_moment=since,
    )


@bp.post("/leads/<uuid:lead_id>/status")
def move(lead_id: uuid.UUID):
    board_filter = current_filter()
    lead = sales.get_lead(lead_id)  # an unknown lead is a 404 whatever else the request says
    # The lead page's «Avtal demo» form: its answers go back to that page, with what was typed kept.
    from_lead_page = request.form.get("back") == "lead" and not is_htmx_request()
    try:
        target = leads.parse_status(request.form.get("status"))
        details = sales.validate_move_details(target, request.form, default_host_id=lead.owner_id or current_user.id)
        lead = sales.move(lead_id, target, by=current_user.user, details=details)
    except leads.UnknownStatusError:
        return message("Ukjent status. Velg en av kolonnene på tavla.", 422, kind="error")
    except leads.LeadValidationError as error:
        if from_lead_page:
            return render_lead_page(lead_id, errors=error.errors, status=422)
        return message(" ".join(error.errors.values()), 422, kind="error")
    except leads.StatusTransitionError as error:
        return message(error.message, 409, kind="error", lead_id=lead_id)
    text = f"«{lead.organization_name}» er flyttet til «{lead.status_label}»."
    if lead.next_step and lead.next_step_due_at:
        # The proposal is only a proposal: say what it is, and where to change it.
        text += f" Neste steg: «{lead.next_step}», frist {formatting.due_label(lead.next_step_due_at)}."
    if lead.demo_at and lead.status == "demo_scheduled":
        text += " Invitasjonen sendes til kontakten og verten."
    if not is_htmx_request():
        flash(text)
        if from_lead_page:
            return redirect(url_for("pipeline.lead_page", lead_id=lead_id), code=303)
        return redirect(url_for("pipeline.board", **board_filter.as_args()), code=303)
    return message(
        text,
        200,
        moved_card=sales.get_card(lead_id),
        counts=sales.column_counts(board_filter),
        board_filter=board_filter,
        overdue_count=sales.overdue_count(board_filter),
    )


@bp.get("/leads.csv")
def export_csv():
    board_filter = current_filter()
    return csv_response(exports.lead_table(board_filter), filename=f"leads-{utcnow():%Y-%m-%d}.csv")


# --- one lead --------------------------------------------------------------------------------------


def render_lead_page(lead_id: uuid.UUID, form: LeadEditForm | None = None, errors=None, status: int = 200):
    lead = sales.get_lead(lead_id)
    form = form or LeadEditForm(obj=lead, formdata=None)
    return render_template(
        "pipeline/lead.html",
        lead=lead,
        form=form,
        errors=errors or {},
        card=sales.get_card(lead_id),
        newer=sales.newer_details(lead),
        bookings=sales.booking_history(lead_id),
        can_resend=sales.confirmation_to_resend(lead_id) is not None,
        lost_reasons=sales.LOST_REASONS,
        field_labels=leads.FIELD_LABELS,
        staff=follow_up.active_staff(),
        timeline=follow_up.timeline(lead_id),
        demo=demo_views.demo_context(lead),
    ), status


@bp.get("/leads/<uuid:lead_id>")
def lead_page(lead_id: uuid.UUID):
    return render_lead_page(lead_id)


@bp.post("/leads/<uuid:lead_id>")
def edit_lead(lead_id: uuid.UUID):
    try:
        sales.update_contact(lead_id, request.form)
    except leads.LeadValidationError as error:
        return render_lead_page(lead_id, form=LeadEditForm(), errors=error.errors, status=422)
    flash("Endringene er lagret.")
    return redirect_after_post(url_for("pipeline.lead_page", lead_id=lead_id))


@bp.post("/leads/<uuid:lead_id>/bookings/<uuid:booking_id>/apply")
def apply_booking_details(lead_id: uuid.UUID, booking_id: uuid.UUID):
    try:
        sales.apply_booking_details(lead_id, booking_id, by=current_user.user)
    except leads.LeadValidationError as error:
        flash(" ".join(error.errors.values()))
    else:
        flash("Opplysningene fra bookingen er tatt i bruk.")
    return redirect_after_post(url_for("pipeline.lead_page", lead_id=lead_id))


@bp.post("/leads/<uuid:lead_id>/resend")
def resend_confirmation(lead_id: uuid.UUID):
    booking = sales.confirmation_to_resend(sales.get_lead(lead_id).id)
    if booking is None:
        flash("Bekreftelsen er allerede sendt.")
    elif confirmations.send_now(booking.id):
        flash("Bekreftelsen sendes på nytt nå.")
    else:
        flash("Køen svarer ikke akkurat nå. Bekreftelsen sendes automatisk så snart den gjør det.")
    return redirect_after_post(url_for("pipeline.lead_page", lead_id=lead_id))


@bp.post("/leads/<uuid:lead_id>/delete")
def erase_lead(lead_id: uuid.UUID):
    sales.erase(lead_id, by=current_user.user)
    flash("Leaden og all historikk om den er slettet.")
    return redirect_after_post(url_for("pipeline.board"))


@bp.get("/leads/new")
def new_lead_form():
    return render_template("pipeline/new_lead.html", form=NewLeadForm(formdata=None), errors={})


@bp.post("/leads/new")
def create_lead():
    form = NewLeadForm()
    try:
        details, source = sales.validate_staff_lead(request.form)
        result = sales.create_by_staff(details, source, form.send_confirmation.data)
    except leads.LeadValidationError as error:
        return render_template("pipeline/new_lead.html", form=form, errors=error.errors), 422
    flash("Leaden er lagret." if not result.is_rebooking else "E-posten fantes fra før: leaden er oppdatert.")
    return redirect_after_post(url_for("pipeline.lead_page", lead_id=result.lead_id))
