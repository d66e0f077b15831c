from flask import Blueprint

bp = Blueprint("pipeline", __name__, url_prefix="/pipeline")

from . import demo_views, follow_up_views, report_views, views  # noqa: E402,F401  (registers the routes)
