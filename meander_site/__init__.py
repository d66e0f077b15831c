"""Meander's sales site: the application factory, assembled from small steps.

This is the composition root: the one module that knows every area (ARCHITECTURE.md has the map). Each area
registers itself here: its blueprint, its CLI group. Development-only pages are added by dev/app.py, never here.
"""

import functools
import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import business_hours, errors
from .accounts.cli import users_cli
from .accounts.views import bp as accounts_bp
from .accounts.views import settings_bp, team_bp
from .booking.views import bp as booking_bp
from .config import INSTANCE_DIR, PROJECT_ROOT, Config, refuse_unsafe_production
from .core import database, formatting, hosts, logging_setup, rate_limits, security, static_assets
from .extensions import csrf, db, limiter, login_manager, mail, migrate
from .mail.cli import mail_cli
from .ops.views import bp as ops_bp
from .pipeline.views import admin_bp as pipeline_admin_bp
from .pipeline.views import bp as pipeline_bp
from .reporting.views import bp as reporting_bp
from .slots.views import bp as demo_settings_bp

log = logging.getLogger(__name__)


def create_app(config: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=str(INSTANCE_DIR),
    )
    app.config.update(Config().as_dict())
    app.config.update(config or {})
    refuse_unsafe_production(app.config)

    configure_logging(app)
    trust_proxies(app)
    hosts.register(app)
    register_extensions(app)
    register_blueprints(app)
    errors.register(app)
    register_response_headers(app)
    register_commands(app)
    formatting.register(app)
    app.add_template_filter(business_hours.format_minutes, "duration_minutes")
    static_assets.init_app(app)
    return app


def configure_logging(app: Flask) -> None:
    logging_setup.configure_logging(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])
    for old, new in app.config["DEPRECATED_SETTINGS"].items():
        log.warning(
            "setting %s is deprecated: set %s instead", old, new, extra={"event": "deprecated_setting", "setting": old}
        )


def trust_proxies(app: Flask) -> None:
    # X-Forwarded-For is believed only as far as the operator says proxies sit in front of us.
    count = app.config["TRUSTED_PROXY_COUNT"]
    if count > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=0, x_port=0, x_prefix=0)


def register_extensions(app: Flask) -> None:
    INSTANCE_DIR.mkdir(exist_ok=True)
    db.init_app(app)
    with app.app_context():
        database.tune_sqlite(db.engine)
        database.ping_stale_connections(db.engine, app.config["DATABASE_PING_AFTER_IDLE_SECONDS"])
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    mail.init_app(app)
    # Every limit counts in Redis, and in this app's database while Redis is down (core/rate_limits.py).
    app.config["RATELIMIT_STORAGE_URI"] = rate_limits.with_database_fallback(app.config["RATELIMIT_STORAGE_URI"])
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {
        **app.config["RATELIMIT_STORAGE_OPTIONS"],
        "database": functools.partial(database_engine, app),
    }
    # The limiter's before_request runs ahead of CSRF's, so rejected tokens count against the limit too.
    limiter.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = None  # the server-side session token is the protection


def database_engine(app: Flask):
    """The app's engine, also outside a request (the limiter's storage is reset from tests and the CLI)."""
    with app.app_context():
        return db.engine


def register_blueprints(app: Flask) -> None:
    for blueprint in (
        booking_bp,
        accounts_bp,
        settings_bp,
        team_bp,
        demo_settings_bp,
        pipeline_bp,
        pipeline_admin_bp,
        reporting_bp,
        ops_bp,
    ):
        app.register_blueprint(blueprint)


def register_response_headers(app: Flask) -> None:
    @app.after_request
    def _vary_on_htmx(response):
        # Pages and their htmx fragments share URLs; caches must keep them apart.
        response.vary.add("HX-Request")
        return response

    security.register(app)


def register_commands(app: Flask) -> None:
    # `flask demo-data` comes from the dev package as a Flask CLI plugin (pyproject.toml), not from here.
    app.cli.add_command(mail_cli)
    app.cli.add_command(users_cli)
