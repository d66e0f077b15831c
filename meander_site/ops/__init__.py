"""Endpoints for the platform, not for people: /healthz (the process is alive), /readyz (it can serve)."""

from flask import Blueprint

bp = Blueprint("ops", __name__)

from . import views  # noqa: E402,F401  (registers the routes)
