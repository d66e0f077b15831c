"""Meander's sales site: the application factory, assembled from small steps."""

import sqlalchemy as sa
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import database, formatting, hosts, logging_setup, security, static_assets
from .config import INSTANCE_DIR, PROJECT_ROOT, Config, refuse_unsafe_production
from .extensions import csrf, db, limiter, login_manager, mail, migrate


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
    register_error_handlers(app)
    register_response_headers(app)
    register_commands(app)
    formatting.register(app)
    static_assets.init_app(app)
    return app


def configure_logging(app: Flask) -> None:
    logging_setup.configure_logging(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])


def trust_proxies(app: Flask) -> None:
    # X-Forwarded-For is believed only as far as the operator says proxies sit in front of us.
    count = app.config["TRUSTED_PROXY_COUNT"]
    if count > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=0, x_port=0, x_prefix=0)


def register_extensions(app: Flask) -> None:
    INSTANCE_DIR.mkdir(exist_ok=True)
    db.init_app(app)
    with app.app_context():
        tune_sqlite(db.engine)
        database.ping_stale_connections(db.engine, app.config["DATABASE_PING_AFTER_IDLE_SECONDS"])
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    mail.init_app(app)
    # The limiter's before_request runs ahead of CSRF's, so rejected tokens count against the limit too.
    limiter.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = None  # the server-side session token is the protection


def tune_sqlite(engine: sa.Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        # WAL lets the worker and web processes read while one writes; busy_timeout makes writers queue.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # SQLite's lower() knows only ASCII; search must find «Øyvind» when typed «øyvind».
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)


def _unicode_lower(value):
    return value.lower() if isinstance(value, str) else value


def register_blueprints(app: Flask) -> None:
    from .auth import bp as auth_bp
    from .ops import bp as ops_bp
    from .pipeline import bp as pipeline_bp
    from .public import bp as public_bp

    app.register_blueprint(public_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(pipeline_bp)
    app.register_blueprint(ops_bp)
    if app.config["MAIL_SINK_DIR"] and app.config["ENV_NAME"] != "production":
        from .devmail import bp as devmail_bp

        app.register_blueprint(devmail_bp)


def register_error_handlers(app: Flask) -> None:
    from .errors import register

    register(app)


def register_response_headers(app: Flask) -> None:
    @app.after_request
    def _vary_on_htmx(response):
        # Pages and their htmx fragments share URLs; caches must keep them apart.
        response.vary.add("HX-Request")
        return response

    security.register(app)


def register_commands(app: Flask) -> None:
    from .commands import demo_data_command, mail_cli, users_cli

    app.cli.add_command(mail_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(demo_data_command)
