"""The account blueprints: signing in and the pages one-time links lead to (no prefix), the user's own settings
(«Innstillinger», staff only) and the team page (administrators only), both under /pipeline."""

from flask import Blueprint

from ..access import administrators_only, staff_only
from ..models import Role

bp = Blueprint("accounts", __name__)
settings_bp = Blueprint("settings", __name__, url_prefix="/pipeline")
staff_only(settings_bp)
team_bp = Blueprint("team", __name__, url_prefix="/pipeline")
administrators_only(team_bp)
# Templates name roles through this, never by retyping them.
bp.add_app_template_global(Role, "Role")
