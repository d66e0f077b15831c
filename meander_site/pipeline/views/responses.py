"""How the staff pages answer a post: htmx gets a fragment for the board's live region (with the changed card),
a plain form post a redirect back with the result flashed, and a refusal keeps what was typed."""

import uuid

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from ...core.htmx import is_htmx_request
from ...leads.validation import LeadValidationError
from ..board import BoardFilter, get_card
from .pages import render_lead_page


def current_filter() -> BoardFilter:
    return BoardFilter.from_args(request.values, viewer_id=current_user.id)


def message(text: str, status: int, kind: str = "info", **context):
    """A move's answer: a fragment for the board's live region, or a small page without JavaScript."""
    template = "pipeline/_move_result.html" if is_htmx_request() else "pipeline/move_result.html"
    return render_template(template, message=text, kind=kind, **context), status


def _back_to(lead_id: uuid.UUID) -> str:
    # Only our own two pages: the board or the lead page, never a URL the request supplied.
    if request.form.get("back") == "board":
        return url_for("pipeline.board")
    return url_for("pipeline.lead_page", lead_id=lead_id)


def answer(lead_id: uuid.UUID, text: str, status: int = 200, kind: str = "info"):
    """A quick action's result: the card again for htmx (so the board shows the change at once), else back."""
    if is_htmx_request():
        card = get_card(lead_id) if status == 200 else None
        return render_template("pipeline/_move_result.html", message=text, kind=kind, moved_card=card), status
    flash(text)
    return redirect(_back_to(lead_id), code=303)


def refused(lead_id: uuid.UUID, error: LeadValidationError):
    """A quick action that was refused: the reasons for htmx, or the lead page with them at their fields."""
    text = " ".join(error.errors.values())
    if is_htmx_request():
        return render_template("pipeline/_move_result.html", message=text, kind="error"), 422
    return render_lead_page(lead_id, errors=error.errors, status=422)


def conflict(lead_id: uuid.UUID, field: str, text: str):
    """Someone else changed it first (409): the reason for htmx, or the lead page showing what holds now, with the
    reason at the field and what was typed kept."""
    if is_htmx_request():
        return render_template("pipeline/_move_result.html", message=text, kind="error"), 409
    return render_lead_page(lead_id, errors={field: text}, status=409)
