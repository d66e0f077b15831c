from flask import Blueprint, jsonify

from ..extensions import limiter
from .checks import readiness

bp = Blueprint("ops", __name__)
# Probes come often and from the platform's own addresses: they must never use up a rate limit.
limiter.exempt(bp)


@bp.after_request
def never_cache(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
def healthz():
    """Alive: answers without touching the database or Redis, so a slow dependency never restarts us."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready to serve: the database and Redis answer. 503 names the one that did not."""
    results = readiness()
    ready = all(result == "ok" for result in results.values())
    return jsonify(results), 200 if ready else 503
