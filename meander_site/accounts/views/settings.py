"""«Innstillinger»: what belongs to the signed-in person, one section each (name, password, two-factor sign-in,
notifications; availability comes later). A section's post answers with the whole page, its errors at its fields."""

import uuid

from flask import abort, flash, render_template, request, url_for
from flask_login import current_user

from ...business_days import oslo_today
from ...core.htmx import redirect_after_post
from ...extensions import db
from .. import absences, resets, two_factor, users
from ..forms import ChangePasswordForm, ConfirmWithPasswordForm, NameForm, SetupCodeForm, parse_absence
from ..models import Absence
from .blueprints import settings_bp as bp


def render_settings(status: int = 200, **sections):
    """The page with every section; `sections` carries a refused section's form and errors."""
    user = current_user.user
    context = {
        "user": user,
        "name_form": NameForm(formdata=None, data={"name": user.name}),
        "name_errors": {},
        "password_form": ChangePasswordForm(formdata=None),
        "password_errors": {},
        "two_factor_form": ConfirmWithPasswordForm(formdata=None),
        "two_factor_errors": {},
        "recovery_codes_left": two_factor.unused_recovery_codes(user.id) if user.has_two_factor else 0,
        "two_factor_required": current_user.two_factor_required,
        "absences": absences.absences_of(user.id, from_day=oslo_today()),
        "absence_errors": None,
        "absence_form": {},
    }
    context.update(sections)
    return render_template("accounts/settings.html", **context), status


@bp.get("/settings")
def page():
    return render_settings()


@bp.post("/settings")
def save_notifications():
    """«Alle nye leads» (on) or «Bare mine» (off): the owner of a lead always hears of it."""
    enabled = request.form.get("notify_new_leads") == "on"
    users.set_new_lead_notifications(current_user.user.id, enabled)
    flash(
        "Du får e-post om alle nye leads."
        if enabled
        else "Du får ikke lenger e-post om nye leads, bare om dem du får tildelt."
    )
    return redirect_after_post(url_for("settings.page"))


@bp.post("/settings/absences")
def add_absence():
    user_id = current_user.user.id
    try:
        starts_on, ends_on, note = parse_absence(request.form)
        absences.add_absence(user_id, starts_on, ends_on, note, actor=user_id)
    except absences.AbsenceError as refused:
        db.session.rollback()
        return render_settings(422, absence_errors=refused.message, absence_form=request.form)
    db.session.commit()
    flash(f"Fraværet {starts_on:%d.%m.%Y}–{ends_on:%d.%m.%Y} er lagt inn. Da får du ingen nye leads.")
    return redirect_after_post(url_for("settings.page") + "#own-absences-heading")


@bp.post("/settings/absences/<uuid:absence_id>/remove")
def remove_absence(absence_id: uuid.UUID):
    absence = db.session.get(Absence, absence_id)
    if absence is None or absence.user_id != current_user.user.id:
        abort(404)
    absences.remove_absence(absence_id, actor=current_user.user.id)
    db.session.commit()
    flash("Fraværet er fjernet.")
    return redirect_after_post(url_for("settings.page") + "#own-absences-heading")


@bp.post("/settings/name")
def save_name():
    form = NameForm()
    name, problem = users.validate_name(form.name.data)
    if problem:
        return render_settings(422, name_form=form, name_errors={"name": problem})
    users.rename(current_user.user.id, name)
    flash("Navnet er lagret.")
    return redirect_after_post(url_for("settings.page"))


@bp.post("/settings/password")
def change_password():
    form = ChangePasswordForm()
    try:
        resets.change_password(current_user.user.id, form.current_password.data, form.password.data, current_user.token)
    except resets.PasswordRefused as refused:
        return render_settings(422, password_form=form, password_errors=refused.errors)
    flash("Passordet er endret. Du er logget ut på alle andre enheter, og får en e-post om endringen.")
    return redirect_after_post(url_for("settings.page"))


# --- two-factor sign-in -------------------------------------------------------------------------------


def _render_setup(form=None, errors=None, status=200):
    user = current_user.user
    secret = two_factor.setup_secret(user.id)
    uri = two_factor.provisioning_uri(user.email, secret)
    return render_template(
        "accounts/two_factor_setup.html",
        qr_code=two_factor.qr_code_svg(uri),
        secret=two_factor.grouped(secret),
        form=form or SetupCodeForm(formdata=None),
        errors=errors or {},
        required=current_user.must_set_up_two_factor,
    ), status


@bp.get("/settings/two-factor", endpoint="two_factor")
def two_factor_page():
    if current_user.user.has_two_factor:
        return redirect_after_post(url_for("settings.page") + "#two-factor-heading")
    return _render_setup()


@bp.post("/settings/two-factor")
def confirm_two_factor():
    if current_user.user.has_two_factor:
        return redirect_after_post(url_for("settings.page") + "#two-factor-heading")
    form = SetupCodeForm()
    try:
        codes = two_factor.confirm_setup(current_user.user.id, form.code.data)
    except two_factor.CodeRefused as refused:
        return _render_setup(form, {"code": str(refused)}, 422)
    return render_template("accounts/recovery_codes.html", codes=codes, first_time=True)


def _password_confirmed(form: ConfirmWithPasswordForm) -> bool:
    return users.password_matches(current_user.user, form.current_password.data or "")


WRONG_PASSWORD = "Passordet stemmer ikke. Skriv inn passordet du logger inn med."  # noqa: S105 (a message)


@bp.post("/settings/two-factor/recovery-codes")
def renew_recovery_codes():
    form = ConfirmWithPasswordForm()
    if not current_user.user.has_two_factor:
        return redirect_after_post(url_for("settings.page"))
    if not _password_confirmed(form):
        return render_settings(422, two_factor_form=form, two_factor_errors={"current_password": WRONG_PASSWORD})
    codes = two_factor.renew_recovery_codes(current_user.user.id)
    return render_template("accounts/recovery_codes.html", codes=codes, first_time=False)


@bp.post("/settings/two-factor/off")
def turn_off_two_factor():
    form = ConfirmWithPasswordForm()
    if current_user.two_factor_required:
        flash("Administratoren krever tofaktor-innlogging for alle, så den kan ikke slås av.")
        return redirect_after_post(url_for("settings.page"))
    if not _password_confirmed(form):
        return render_settings(422, two_factor_form=form, two_factor_errors={"current_password": WRONG_PASSWORD})
    two_factor.turn_off(current_user.user.id, by_id=current_user.user.id)
    flash("Tofaktor-innlogging er slått av. Du logger inn med passord alene.")
    return redirect_after_post(url_for("settings.page"))
