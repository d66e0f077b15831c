"""Development only: read the confirmations the local mail sink caught. Never registered in production."""

from flask import Blueprint, abort, current_app, render_template, send_from_directory

from ..embedded import read_mailbox

bp = Blueprint("devmail", __name__, url_prefix="/dev/mail")


@bp.get("/")
def inbox():
    messages = read_mailbox(current_app.config["MAIL_SINK_DIR"])
    sink_address = f"{current_app.config['MAIL_SERVER']}:{current_app.config['MAIL_PORT']}"
    return render_template("devmail/inbox.html", messages=messages, sink_address=sink_address)


@bp.get("/<filename>")
def raw_message(filename: str):
    if not filename.endswith(".eml"):
        abort(404)
    return send_from_directory(current_app.config["MAIL_SINK_DIR"], filename, mimetype="text/plain")
