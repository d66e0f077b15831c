"""The settings an administrator sets for the whole team: whether two-factor sign-in is required, the business
hours and the first-contact target, whether an expired lead is handed over, and the chat webhook. One row, id 1;
without it every setting has its default. Later rules for everyone are more columns here."""

import functools
import uuid
from dataclasses import dataclass
from datetime import time, timedelta

import sqlalchemy as sa

from ..business_hours import BusinessHours
from ..core import outbound_http
from ..core.clock import utcnow
from ..core.database import forget_per_transaction, per_transaction, read_in_this_transaction
from ..extensions import db
from . import audit
from .models import TeamSettings

ROW_ID = 1


# The choices the settings form offers; anything else is refused.
TARGET_CHOICES = (30, 60, 120, 240, 480)
WEIGHT_CHOICES = (25, 50, 75, 100, 150, 200)
EARLIEST_OPENING, LATEST_CLOSING = 6 * 60, 20 * 60
CHAT_WEBHOOK_URL_LENGTH = 500


@dataclass(frozen=True)
class Settings:
    require_two_factor: bool = False
    opens_at_minute: int = 8 * 60
    closes_at_minute: int = 16 * 60
    first_contact_target_minutes: int = 120
    hand_over_when_expired: bool = False
    chat_webhook_url: str | None = None
    chat_webhook_error: str | None = None

    @property
    def business_hours(self) -> BusinessHours:
        return BusinessHours(opens=_time(self.opens_at_minute), closes=_time(self.closes_at_minute))

    @property
    def masked_chat_webhook(self) -> str | None:
        """The webhook as pages show it: the address is a secret."""
        return outbound_http.mask_url(self.chat_webhook_url) if self.chat_webhook_url else None

    @property
    def first_contact_target(self) -> timedelta:
        return timedelta(minutes=self.first_contact_target_minutes)


def _time(minute: int) -> time:
    return time(minute // 60, minute % 60)


SETTING_NAMES = tuple(Settings.__dataclass_fields__)


def from_row(row) -> Settings:
    """The settings from a row (or any object with their names), every default without one."""
    return Settings(**{name: getattr(row, name) for name in SETTING_NAMES}) if row is not None else Settings()


# The settings are read once per transaction (core.database.per_transaction): a booking needs them for the slot's
# notice, the owner's clock and the chat post.
_KEPT = "team_settings"


@functools.cache
def _select_settings():
    columns = TeamSettings.__table__.c  # built once, from the table: a Core statement's cache key is kept
    return sa.select(*(columns[name] for name in SETTING_NAMES)).where(columns.id == ROW_ID)


def current() -> Settings:
    return per_transaction(db.session, _KEPT, lambda: from_row(db.session.execute(_select_settings()).first()))


def read_already() -> Settings | None:
    """The settings when this transaction has read them already; None otherwise."""
    return read_in_this_transaction(db.session, _KEPT)


def keep(settings: Settings) -> Settings:
    """Settings a statement read beside something else (settings_columns), kept for the rest of the transaction."""
    return per_transaction(db.session, _KEPT, lambda: settings)


def keep_from_columns(row) -> Settings:
    """keep() the settings_columns of a row: a setting that is NULL (no settings row yet) takes its default."""
    return keep(Settings(**{name: getattr(row, name) for name in SETTING_NAMES if getattr(row, name) is not None}))


def settings_columns() -> list:
    """For a statement that reads the settings beside something else: one scalar subquery per setting."""
    columns = TeamSettings.__table__.c  # the table's: a statement built once stays Core (assignment/pool.py)
    return [
        sa.select(columns[name]).where(columns.id == ROW_ID).scalar_subquery().label(name) for name in SETTING_NAMES
    ]


class SettingsRefused(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _row_for_update(by_id: uuid.UUID | None, now) -> TeamSettings:
    forget_per_transaction(db.session, _KEPT)
    row = db.session.get(TeamSettings, ROW_ID)
    if row is None:
        row = TeamSettings(id=ROW_ID)
        db.session.add(row)
    row.updated_at, row.updated_by_id = now, by_id
    return row


def set_first_contact_rules(
    *, opens_at_minute: int, closes_at_minute: int, target_minutes: int, hand_over: bool, by_id: uuid.UUID
) -> None:
    """Business hours, the first-contact target and «Gi videre når fristen går ut», saved together."""
    if not EARLIEST_OPENING <= opens_at_minute < closes_at_minute <= LATEST_CLOSING:
        raise SettingsRefused(
            "Arbeidstiden må starte før den slutter, tidligst kl. 06.00 og senest kl. 20.00. Rett klokkeslettene."
        )
    if target_minutes not in TARGET_CHOICES:
        raise SettingsRefused("Velg en av fristene i listen.")
    now = utcnow()
    row = _row_for_update(by_id, now)
    row.opens_at_minute, row.closes_at_minute = opens_at_minute, closes_at_minute
    row.first_contact_target_minutes, row.hand_over_when_expired = target_minutes, hand_over
    detail = (
        f"arbeidstid {_time(opens_at_minute):%H.%M}–{_time(closes_at_minute):%H.%M}, svarfrist {target_minutes} min"
        f"{', gi videre' if hand_over else ''}"
    )
    audit.record("team_settings_changed", actor_id=by_id, detail=detail, now=now)
    db.session.commit()


def set_chat_webhook(url: str | None, by_id: uuid.UUID, *, allow_loopback: bool = False) -> None:
    """Store (or with None remove) the chat webhook; a new address clears the last error. An address that may not be
    posted to (not HTTPS, not public: core/outbound_http.py) raises SettingsRefused with the reason."""
    if url is not None:
        url = url.strip()
        if len(url) > CHAT_WEBHOOK_URL_LENGTH:
            raise SettingsRefused(f"Adressen kan ha høyst {CHAT_WEBHOOK_URL_LENGTH} tegn.")
        try:
            outbound_http.check_destination(url, allow_loopback=allow_loopback)
        except outbound_http.OutboundRefused as refused:
            raise SettingsRefused(refused.message) from None
    now = utcnow()
    row = _row_for_update(by_id, now)
    row.chat_webhook_url, row.chat_webhook_error = url, None
    audit.record(
        "team_settings_changed",
        actor_id=by_id,
        detail="chat-webhook endret" if url else "chat-webhook fjernet",
        now=now,
    )
    db.session.commit()


def record_chat_webhook_error(error: str | None) -> None:
    """What the chat answered when it refused a post (None: it accepted one), in the caller's transaction."""
    forget_per_transaction(db.session, _KEPT)
    db.session.execute(sa.update(TeamSettings).where(TeamSettings.id == ROW_ID).values(chat_webhook_error=error))


def require_two_factor_condition():
    """For a statement that also reads something else (the session loader): true when two-factor is required."""
    return sa.select(TeamSettings.require_two_factor).where(TeamSettings.id == ROW_ID).scalar_subquery().is_(sa.true())


def set_require_two_factor(required: bool, by_id: uuid.UUID) -> bool:
    """Turn the requirement on or off; False when it already was so (nothing recorded)."""
    if current().require_two_factor == required:
        return False
    now = utcnow()
    row = _row_for_update(by_id, now)
    row.require_two_factor = required
    detail = "tofaktor-innlogging kreves" if required else "tofaktor-innlogging er valgfritt"
    audit.record("team_settings_changed", actor_id=by_id, detail=detail, now=now)
    db.session.commit()
    return True
