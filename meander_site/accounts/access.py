"""Pages for the sales team only: signed in, and never kept by a cache (they show prospects' personal data).

When the team requires two-factor sign-in, a signed-in person without it is sent to its setup and sees
nothing else until it is done. Administrators' pages answer anyone else with a 403 in Norwegian.
"""

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_login import current_user

from ..core.htmx import is_htmx_request
from ..extensions import login_manager
from .users import administrators

# What a person who must set up two-factor may still reach (signing out is outside the staff pages).
TWO_FACTOR_SETUP_ENDPOINTS = frozenset({"settings.two_factor", "settings.confirm_two_factor"})


def _send_to(location: str):
    if is_htmx_request():
        response = current_app.response_class(status=401)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location)


def _require_login():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.must_set_up_two_factor and request.endpoint not in TWO_FACTOR_SETUP_ENDPOINTS:
        return _send_to(url_for("settings.two_factor"))
    return None


def _never_cache(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def staff_only(bp: Blueprint) -> None:
    """Every page of `bp` asks for a sign-in first, and is sent with Cache-Control: no-store."""
    bp.before_request(_require_login)
    bp.after_request(_never_cache)


def _require_administrator():
    if not current_user.is_admin:
        return render_template("accounts/not_allowed.html", administrators=administrators()), 403
    return None


def administrators_only(bp: Blueprint) -> None:
    """staff_only, and every page of `bp` is for administrators: a Selger gets a 403 that says whom to ask."""
    staff_only(bp)
    bp.before_request(_require_administrator)
