"""Absences: the days a member of the team is away. Assignment skips them and they offer no demo slots.

A user enters their own; an administrator may enter anyone's. Both dates are included, as people say them
(«fra 1. til 5. juli»). Account changes go to the audit like every other.
"""

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta

import sqlalchemy as sa

from ..core.clock import utcnow
from ..extensions import db
from . import audit
from .models import ABSENCE_NOTE_LENGTH, Absence

# Long enough for any leave; a longer span is a typo in the year.
LONGEST_ABSENCE = timedelta(days=366)


class AbsenceError(ValueError):
    """An absence that cannot be stored; `message` says in Norwegian what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def add_absence(
    user_id: uuid.UUID, starts_on: date, ends_on: date, note: str | None = None, *, actor: uuid.UUID | None
) -> Absence:
    """Add the absence to the caller's transaction, recorded in the audit."""
    if ends_on < starts_on:
        raise AbsenceError("Siste fraværsdag kan ikke være før første. Rett datoene og lagre igjen.")
    if ends_on - starts_on >= LONGEST_ABSENCE:
        raise AbsenceError("Et fravær kan vare høyst ett år. Sjekk årstallet og lagre igjen.")
    note = " ".join((note or "").split()) or None
    if note and len(note) > ABSENCE_NOTE_LENGTH:
        raise AbsenceError(f"Merknaden kan ha høyst {ABSENCE_NOTE_LENGTH} tegn. Gjør den kortere og lagre igjen.")
    absence = Absence(user_id=user_id, starts_on=starts_on, ends_on=ends_on, note=note, created_at=utcnow())
    db.session.add(absence)
    audit.record("absence_added", actor_id=actor, subject_id=user_id, detail=_span(starts_on, ends_on))
    return absence


def remove_absence(absence_id: uuid.UUID, *, actor: uuid.UUID | None) -> bool:
    """Delete it in the caller's transaction; False when there was no such absence."""
    absence = db.session.get(Absence, absence_id)
    if absence is None:
        return False
    audit.record(
        "absence_removed", actor_id=actor, subject_id=absence.user_id, detail=_span(absence.starts_on, absence.ends_on)
    )
    db.session.delete(absence)
    return True


def absences_of(user_id: uuid.UUID, *, from_day: date | None = None) -> list[Absence]:
    """The user's absences that end on `from_day` or later (all of them without it), earliest first."""
    query = sa.select(Absence).where(Absence.user_id == user_id)
    if from_day is not None:
        query = query.where(Absence.ends_on >= from_day)
    return list(db.session.scalars(query.order_by(Absence.starts_on, Absence.ends_on)))


def absent_user_ids(on: date) -> set[uuid.UUID]:
    """Who is away on the day `on`."""
    query = sa.select(Absence.user_id).where(Absence.starts_on <= on, Absence.ends_on >= on)
    return set(db.session.scalars(query))


def absences_between(
    user_ids: Iterable[uuid.UUID], first_day: date, last_day: date
) -> dict[uuid.UUID, list[tuple[date, date]]]:
    """Each user's absences that touch the days first_day..last_day, as (starts_on, ends_on), earliest first."""
    ids = list(user_ids)
    spans: dict[uuid.UUID, list[tuple[date, date]]] = defaultdict(list)
    if not ids:
        return spans
    query = (
        sa.select(Absence.user_id, Absence.starts_on, Absence.ends_on)
        .where(Absence.user_id.in_(ids), Absence.starts_on <= last_day, Absence.ends_on >= first_day)
        .order_by(Absence.starts_on)
    )
    for user_id, starts_on, ends_on in db.session.execute(query):
        spans[user_id].append((starts_on, ends_on))
    return spans


def _span(starts_on: date, ends_on: date) -> str:
    return f"{starts_on:%d.%m.%Y}–{ends_on:%d.%m.%Y}"
