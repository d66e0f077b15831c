"""The team page (/pipeline/team), for administrators: everyone with their role, status, last sign-in and
two-factor state; invitations; the settings that govern everyone; and the latest account changes."""

import re
import uuid

from flask import abort, current_app, flash, render_template, request, url_for
from flask_login import current_user

from ...business_days import oslo_today
from ...core.htmx import redirect_after_post
from ...extensions import db
from .. import absences, audit, invitations, lead_pool, resets, roles, team_settings, two_factor, users
from ..forms import InviteForm, parse_absence
from ..models import Absence, User
from .blueprints import team_bp as bp

_CLOCK = re.compile(r"([0-9]{2}):([0-9]{2})", re.ASCII)


def render_team(form: InviteForm | None = None, errors: dict | None = None, status: int = 200, **sections):
    today = oslo_today()
    context = {
        "members": users.team(),
        "invitations": invitations.open_invitations(),
        "invite_form": form or InviteForm(formdata=None),
        "errors": errors or {},
        "settings": team_settings.current(),
        "changes": audit.recent(),
        "pool_members": lead_pool.pool_members(today),
        "team_absences": lead_pool.upcoming_absences(today),
        "weight_choices": team_settings.WEIGHT_CHOICES,
        "target_choices": team_settings.TARGET_CHOICES,
        "first_contact_error": None,
        "chat_error": None,
        "absence_errors": None,
        "absence_form": {},
    }
    context.update(sections)
    return render_template("accounts/team.html", **context), status


def back_to_team(text: str, anchor: str = ""):
    flash(text)
    return redirect_after_post(url_for("team.page") + anchor)


def member(user_id: uuid.UUID) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.get("/team")
def page():
    return render_team()


@bp.post("/team/invitations")
def invite():
    form = InviteForm()
    try:
        invitation = invitations.invite(form.email.data, form.role.data, by_id=current_user.user.id)
    except invitations.InvitationRefused as refused:
        return render_team(form, refused.errors, 422)
    return back_to_team(
        f"Invitasjonen er sendt til {invitation.email}. Lenken virker i "
        f"{int(invitations.INVITATION_LIFETIME.total_seconds() // 3600)} timer.",
        "#invitations-heading",
    )


@bp.post("/team/invitations/<uuid:invitation_id>/withdraw")
def withdraw_invitation(invitation_id: uuid.UUID):
    if invitations.withdraw(invitation_id, by_id=current_user.user.id):
        return back_to_team("Invitasjonen er trukket tilbake. Lenken i e-posten virker ikke lenger.")
    return back_to_team("Invitasjonen var allerede godtatt eller trukket tilbake.")


@bp.post("/team/<uuid:user_id>/role")
def change_role(user_id: uuid.UUID):
    user = member(user_id)
    role = roles.parse_role(request.form.get("role"))
    if role is None:
        return back_to_team("Velg enten Administrator eller Selger.")
    try:
        changed = roles.change_role(user_id, role, by_id=current_user.user.id)
    except roles.LastAdministrator as refused:
        return back_to_team(str(refused))
    if not changed:
        return back_to_team(f"{user.name} er allerede {role.label.lower()}.")
    return back_to_team(f"{user.name} er nå {role.label.lower()}.")


@bp.post("/team/<uuid:user_id>/deactivate")
def deactivate(user_id: uuid.UUID):
    user = member(user_id)
    try:
        roles.deactivate(user_id, by_id=current_user.user.id)
    except roles.LastAdministrator as refused:
        return back_to_team(str(refused))
    return back_to_team(
        f"{user.name} er deaktivert og logget ut overalt. Åpne leads som var deres, står nå som «Ufordelt»."
    )


@bp.post("/team/<uuid:user_id>/reactivate")
def reactivate(user_id: uuid.UUID):
    user = member(user_id)
    roles.reactivate(user_id, by_id=current_user.user.id)
    return back_to_team(f"{user.name} kan logge inn igjen.")


@bp.post("/team/<uuid:user_id>/password-reset")
def send_password_reset(user_id: uuid.UUID):
    user = member(user_id)
    if not resets.send_reset(user_id, by_id=current_user.user.id):
        return back_to_team(f"{user.name} er deaktivert. Aktiver kontoen først.")
    minutes = int(resets.RESET_LIFETIME.total_seconds() // 60)
    return back_to_team(
        f"{user.name} får en e-post med en lenke for å velge nytt passord. Den virker i {minutes} minutter."
    )


@bp.post("/team/<uuid:user_id>/two-factor/reset")
def reset_two_factor(user_id: uuid.UUID):
    user = member(user_id)
    if not two_factor.turn_off(user_id, by_id=current_user.user.id):
        return back_to_team(f"{user.name} har ikke tofaktor-innlogging.")
    return back_to_team(
        f"Tofaktor-innloggingen til {user.name} er nullstilt. Ved neste innlogging setter hen den opp på nytt."
    )


@bp.post("/team/settings")
def save_settings():
    required = request.form.get("require_two_factor") == "on"
    team_settings.set_require_two_factor(required, by_id=current_user.user.id)
    if required:
        return back_to_team(
            "Tofaktor-innlogging kreves nå for alle. Den som ikke har det, blir ledet til oppsettet ved neste side.",
            "#settings-heading",
        )
    return back_to_team("Tofaktor-innlogging er nå valgfritt.", "#settings-heading")


# --- assignment: the pool, absences, business hours and the first-contact target ------------------------------


@bp.post("/team/<uuid:user_id>/pool")
def save_pool_membership(user_id: uuid.UUID):
    user = member(user_id)
    takes_new_leads = request.form.get("takes_new_leads") == "on"
    try:
        weight = int(request.form.get("weight") or "")
        lead_pool.set_membership(
            user_id, takes_new_leads=takes_new_leads, weight_percent=weight, by_id=current_user.user.id
        )
    except (ValueError, lead_pool.PoolRefused):
        return back_to_team("Velg en av andelene i listen.", "#pool-heading")
    if takes_new_leads:
        return back_to_team(f"{user.name} tar imot nye leads, med andel {weight} %.", "#pool-heading")
    return back_to_team(f"{user.name} får ikke lenger nye leads på rundgang.", "#pool-heading")


@bp.post("/team/absences")
def add_absence():
    try:
        user = member(uuid.UUID(request.form.get("user_id") or ""))
    except ValueError:
        abort(404)
    try:
        starts_on, ends_on, note = parse_absence(request.form)
        absences.add_absence(user.id, starts_on, ends_on, note, actor=current_user.user.id)
    except absences.AbsenceError as refused:
        db.session.rollback()
        return render_team(status=422, absence_errors=refused.message, absence_form=request.form)
    db.session.commit()
    return back_to_team(
        f"Fraværet til {user.name} {starts_on:%d.%m.%Y}–{ends_on:%d.%m.%Y} er lagt inn.", "#team-absences-heading"
    )


@bp.post("/team/absences/<uuid:absence_id>/remove")
def remove_absence(absence_id: uuid.UUID):
    if db.session.get(Absence, absence_id) is None:
        return back_to_team("Fraværet var allerede fjernet.", "#team-absences-heading")
    absences.remove_absence(absence_id, actor=current_user.user.id)
    db.session.commit()
    return back_to_team("Fraværet er fjernet.", "#team-absences-heading")


def _minute_of_day(value: str | None) -> int | None:
    match = _CLOCK.fullmatch((value or "").strip())
    if match is None:
        return None
    hours, minutes = int(match[1]), int(match[2])
    return hours * 60 + minutes if hours < 24 and minutes < 60 else None


@bp.post("/team/first-contact")
def save_first_contact_rules():
    opens, closes = _minute_of_day(request.form.get("opens_at")), _minute_of_day(request.form.get("closes_at"))
    try:
        if opens is None or closes is None:
            raise team_settings.SettingsRefused("Skriv klokkeslett som 08:00 og 16:00.")
        team_settings.set_first_contact_rules(
            opens_at_minute=opens,
            closes_at_minute=closes,
            target_minutes=int(request.form.get("target_minutes") or 0),
            hand_over=request.form.get("hand_over") == "on",
            by_id=current_user.user.id,
        )
    except ValueError as refused:
        message = getattr(refused, "message", "Velg en av fristene i listen.")
        return render_team(status=422, first_contact_error=message)
    return back_to_team(
        "Arbeidstid og svarfrist er lagret. De gjelder leads som kommer fra nå.", "#first-contact-heading"
    )


@bp.post("/team/chat-webhook")
def save_chat_webhook():
    """The chat's incoming webhook: checked (public HTTPS only) and stored, or removed. Never echoed back or logged."""
    if request.form.get("remove"):
        team_settings.set_chat_webhook(None, by_id=current_user.user.id)
        return back_to_team("Det postes ikke lenger i chat.", "#chat-heading")
    try:
        team_settings.set_chat_webhook(
            request.form.get("chat_webhook_url") or "",
            by_id=current_user.user.id,
            allow_loopback=current_app.config["OUTBOUND_ALLOW_LOOPBACK"],
        )
    except team_settings.SettingsRefused as refused:
        return render_team(status=422, chat_error=refused.message)
    return back_to_team("Adressen er lagret. Nye leads og passerte svarfrister postes nå i chat.", "#chat-heading")
