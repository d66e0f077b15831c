"""Development only: read the mail the local mail sink caught. Never registered in production.

A mail's HTML is not ours: it is never put inline in our page. Each HTML part is served on a route of its
own with a policy that allows no script, no network and no form, and the page shows it in a sandboxed frame.
"""

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, send_from_directory
from werkzeug.security import safe_join

from .embedded import read_mailbox

bp = Blueprint("devmail", __name__, url_prefix="/dev/mail")

# The frame's document: inline styles (mail needs them) and inline images, nothing else; sandboxed even if
# opened on its own, and only our own page may frame it.
MAIL_HTML_POLICY = "; ".join(
    [
        "default-src 'none'",
        "style-src 'unsafe-inline'",
        "img-src data:",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'self'",
        "sandbox",
    ]
)


@bp.get("/")
def inbox():
    messages = [
        {**item, "html": html_part(item["message"]) is not None, "attachments": attachments(item["message"])}
        for item in read_mailbox(current_app.config["MAIL_SINK_DIR"])
    ]
    sink_address = f"{current_app.config['MAIL_SERVER']}:{current_app.config['MAIL_PORT']}"
    return render_template("devmail/inbox.html", messages=messages, sink_address=sink_address)


@bp.get("/<filename>")
def raw_message(filename: str):
    if not filename.endswith(".eml"):
        abort(404)
    return send_from_directory(current_app.config["MAIL_SINK_DIR"], filename, mimetype="text/plain")


@bp.get("/<filename>/html")
def message_html(filename: str):
    part = html_part(stored_message(filename))
    if part is None:
        abort(404)
    response = current_app.response_class(part.get_content(), mimetype="text/html")
    response.headers["Content-Security-Policy"] = MAIL_HTML_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/<filename>/attachments/<int:number>")
def attachment(filename: str, number: int):
    parts = list(stored_message(filename).iter_attachments())
    if not 0 <= number < len(parts):
        abort(404)
    part = parts[number]
    response = current_app.response_class(part.get_payload(decode=True), mimetype=part.get_content_type())
    response.headers["Content-Disposition"] = "attachment"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def stored_message(filename: str) -> EmailMessage:
    path = safe_join(current_app.config["MAIL_SINK_DIR"], filename) if filename.endswith(".eml") else None
    try:
        raw = Path(path).read_bytes() if path else None
    except OSError:
        raw = None
    if raw is None:
        abort(404)
    return email.message_from_bytes(raw, policy=email.policy.default)


def html_part(message: EmailMessage):
    return message.get_body(preferencelist=("html",))


def attachments(message: EmailMessage) -> list[dict]:
    return [
        {
            "number": number,
            "filename": part.get_filename() or f"vedlegg-{number + 1}",
            "content_type": part.get_content_type(),
            "size": len(part.get_payload(decode=True) or b""),
        }
        for number, part in enumerate(message.iter_attachments())
    ]
