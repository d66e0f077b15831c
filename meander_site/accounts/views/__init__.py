"""The account pages: one route module per job (sign_in, links, settings, team) on the blueprints of
blueprints.py; shared answers live in accounts/pages.py and accounts/responses.py. Route modules never
import each other."""

from . import links, settings, sign_in, team  # noqa: F401  (each registers its routes on its blueprint)
from .blueprints import bp, settings_bp, team_bp
from .sign_in import WRONG_CREDENTIALS

__all__ = ["WRONG_CREDENTIALS", "bp", "settings_bp", "team_bp"]
