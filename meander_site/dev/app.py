"""The app `make run` serves: the production app plus the page that shows the mail the local sink caught, and
`demo-data` among its commands (production's `flask --app app` finds it as a CLI plugin, see dev/cli.py).

Served by `flask --app meander_site.dev.app:create_dev_app run`; production serves `app:app` (app.py), which never
imports this package.
"""

from flask import Flask

from .. import create_app
from . import devmail
from .cli import demo_data_command


def create_dev_app(config: dict | None = None) -> Flask:
    app = create_app(config)
    app.cli.add_command(demo_data_command)
    if app.config["MAIL_SINK_DIR"] and app.config["ENV_NAME"] != "production":
        app.register_blueprint(devmail.bp)
    return app
