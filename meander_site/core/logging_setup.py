"""Log output: human-readable by default, one JSON object per line with LOG_FORMAT=json.

Events carry their data as `extra` fields (event, lead_id, booking_id, ...), never in the message text,
so both formats show them and a log pipeline can filter on them. Ids only: no emails, names, phones or
IP addresses in the logs.
"""

import ipaddress
import json
import logging
import re
import sys
from datetime import UTC, datetime

# Attributes every LogRecord has; whatever else a record carries came in through `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# Libraries whose INFO lines carry personal data: Flask-Limiter names the limit's key on every breach (the
# client's address, or the email tried at login). Our own rate_limited event replaces that line.
QUIETER_LOGGERS = {"flask-limiter": logging.WARNING}
# Marks the handler we installed, so configuring twice (several apps in one process) replaces its format.
_OUR_HANDLER = "_meander_handler"


# PostgreSQL quotes the offending row in an error's DETAIL ("Key (email)=(kari@…) already exists"), and
# SQLAlchemy repeats the driver's text in every exception that wraps it: the constraint's name is enough.
_DATABASE_DETAIL = re.compile(r"DETAIL:[^\n]*")
HIDDEN_DETAIL = "DETAIL: (hidden: it can quote personal data)"
# Candidates only (dotted quads, anything with two colons): ipaddress decides, so 03:06:19 stays a time.
_ADDRESS_CANDIDATE = re.compile(
    r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.%]*)(?![\w.:])"
)
HIDDEN_ADDRESS = "[address]"
_INVALID_REQUEST = "Invalid request from ip="


def without_database_details(text: str) -> str:
    return _DATABASE_DETAIL.sub(HIDDEN_DETAIL, text) if "DETAIL:" in text else text


def _hide_address(match: re.Match) -> str:
    try:
        ipaddress.ip_address(match.group(0).partition("%")[0])
    except ValueError:
        return match.group(0)
    return HIDDEN_ADDRESS


def without_client_addresses(message: str) -> str:
    """gunicorn's error line minus the peer's address (and minus what the peer sent, which can be anything)."""
    if message.startswith(_INVALID_REQUEST):
        # "Invalid request from ip=<peer>: Invalid HTTP request line: '<what was sent>'"; an IPv6 peer has
        # colons, but never a colon followed by a space.
        error = message[len(_INVALID_REQUEST) :].partition(": ")[2]
        return "Invalid request: " + re.split("['\"]", error, maxsplit=1)[0].rstrip(": ")
    if message.startswith("Listening at:"):
        return message  # our own bind address, not a client's
    return _ADDRESS_CANDIDATE.sub(_hide_address, message)


class WithoutClientAddresses(logging.Filter):
    """For gunicorn's error logger (see gunicorn.conf.py): its lines carry no client address."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        private = without_client_addresses(message)
        if private != message:
            record.msg, record.args = private, ()
        return True


def extra_fields(record: logging.LogRecord) -> dict:
    return {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}


def iso_utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, logger, message, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": without_database_details(record.getMessage()),
        }
        for key, value in extra_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = without_database_details(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: ids are UUIDs, times are datetimes; json.dumps escapes newlines, so one line each.
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with the extra fields appended as key=value so nothing an event carries is lost."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = " ".join(f"{key}={value}" for key, value in extra_fields(record).items())
        return f"{line} {fields}" if fields else line

    def format(self, record: logging.LogRecord) -> str:
        return without_database_details(super().format(record))


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_logging(log_format: str = "text", level: str | int = "INFO") -> None:
    """Send the root logger to stderr in the chosen format.

    When something else already owns the root logger (gunicorn's logconfig_dict, pytest's capture), it
    is left alone: gunicorn.conf.py gives gunicorn the same JSON formatter.
    """
    for name, quietest in QUIETER_LOGGERS.items():
        logging.getLogger(name).setLevel(quietest)
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if getattr(handler, _OUR_HANDLER, False)]
    if ours:
        handler = ours[0]
    elif root.handlers:
        return
    else:
        handler = logging.StreamHandler(sys.stderr)
        setattr(handler, _OUR_HANDLER, True)
        root.addHandler(handler)
    handler.setFormatter(formatter_for(log_format))
    root.setLevel(level if isinstance(level, int) else level.upper())
