"""Who gets a new lead: its earlier owner when they are active and present, otherwise the next member of the pool.

The pool is every active user with «Tar imot nye leads» on who is not absent today. It is a weighted rotation
(stride scheduling): each member has a place, `assignment_pass`; the lowest goes next (the least recently assigned
first on a tie), and a lead moves the chosen member on by 100 / weight percent, so a member at 50 % gets every other
turn of a full member. A member back from an absence is lifted to within one turn of the others rather than left where
they stopped (and one who joins the pool starts at the others' place, accounts/lead_pool.py): they get the next lead or
two, not a run of them.

One statement chooses and moves the rotation on (`UPDATE … WHERE id = (SELECT … FOR NO KEY UPDATE SKIP LOCKED)
RETURNING`),
so two bookings at the same moment never take the same turn. On PostgreSQL a booking that finds every member locked by
other bookings waits for them and chooses again; SQLite has one writer at a time, so the statement is the turn.
"""

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..accounts import team_settings
from ..accounts.models import Absence, User
from ..business_days import oslo_today
from ..core.clock import utcnow
from ..leads.models import Lead

ROUND_ROBIN = "rundgang"
EARLIER_OWNER = "tidligere eier"
HANDED_OVER = "fristen gikk ut"
FULL_SHARE = 100.0


@dataclass(frozen=True)
class Assignment:
    user_id: uuid.UUID
    reason: str  # ROUND_ROBIN or EARLIER_OWNER
    name: str = ""
    email: str = ""

    @property
    def timeline_text(self) -> str:
        """The lead's timeline line: «Tildelt Kari (rundgang)»."""
        return f"Tildelt {self.name} ({self.reason})"


# The statements are built from the tables, not the mapped classes: a statement naming an ORM attribute is copied
# and its cache key computed anew on every execution (the ORM's DML path), one built once from Core is not.
ABSENCES = Absence.__table__.c
LEADS = Lead.__table__.c


def _present(users: sa.ColumnCollection, today: sa.BindParameter) -> sa.ColumnElement[bool]:
    """Active, and not absent on `today`."""
    absent = sa.select(ABSENCES.id).where(
        ABSENCES.user_id == users.id, ABSENCES.starts_on <= today, ABSENCES.ends_on >= today
    )
    return sa.and_(users.is_active.is_(True), ~absent.exists())


def _in_pool(users: sa.ColumnCollection, today, among: bool) -> sa.ColumnElement[bool]:
    conditions = [_present(users, today), users.takes_new_leads.is_(True), users.assignment_weight_percent > 0]
    if among:
        conditions.append(users.id.in_(sa.bindparam("among", expanding=True)))
    return sa.and_(*conditions)


def _preferred(prefer: str):
    if prefer == "user":
        preferred = sa.bindparam("prefer_id", type_=sa.Uuid)
    elif prefer == "email":
        preferred = sa.select(LEADS.owner_id).where(LEADS.email == sa.bindparam("lead_email")).scalar_subquery()
    else:
        preferred = sa.null()
    return preferred


def _eligible(candidate, prefer: str, among: bool, today):
    """Who may be chosen: the pool's members, and the preferred user when active and present."""
    is_preferred = sa.func.coalesce(candidate.c.id == _preferred(prefer), sa.false())
    eligible = sa.or_(_in_pool(candidate.c, today, among), sa.and_(is_preferred, _present(candidate.c, today)))
    if among and prefer != "none":
        eligible = sa.and_(eligible, candidate.c.id.in_(sa.bindparam("among", expanding=True)))
    return eligible, is_preferred


@functools.cache
def _pick_statement(dialect: str, prefer: str, among: bool, skip_locked: bool):
    """prefer: "none", "user" (:prefer_id) or "email" (the owner of the lead with :email, read in the statement)."""
    table = User.__table__
    candidate = table.alias("candidate")
    member = table.alias("member")
    today = sa.bindparam("today", type_=sa.Date)
    now = sa.bindparam("now", type_=table.c.last_assigned_at.type)
    preferred = _preferred(prefer)
    eligible, is_preferred = _eligible(candidate, prefer, among, today)
    chosen = (
        sa.select(candidate.c.id)
        .where(eligible)
        .order_by(
            sa.case((is_preferred, 0), else_=1),
            candidate.c.assignment_pass,
            sa.case((candidate.c.last_assigned_at.is_(None), 0), else_=1),
            candidate.c.last_assigned_at,
            candidate.c.id,
        )
        .limit(1)
    )
    if skip_locked:
        # FOR NO KEY UPDATE, as the UPDATE itself takes: rows that refer to the user (an audit event, a lead's
        # owner) only need KEY SHARE, so a booking never blocks them (nor deadlocks with an erasure).
        chosen = chosen.with_for_update(skip_locked=True, key_share=True)
    stride = FULL_SHARE / table.c.assignment_weight_percent
    # A member far behind the others (back from an absence) is lifted to within one full turn of them: they get the
    # next lead or two, not a run. In the steady rotation every place lies within the largest turn of the others',
    # so the lift never takes a turn away from anyone there (nor from a member a busy booking made wait).
    others = (
        sa.select(sa.func.min(member.c.assignment_pass) - sa.func.max(FULL_SHARE / member.c.assignment_weight_percent))
        .where(_in_pool(member.c, today, among), member.c.id != table.c.id)
        .scalar_subquery()
    )
    greatest = sa.func.greatest if dialect == "postgresql" else sa.func.max
    moved_on = greatest(table.c.assignment_pass, sa.func.coalesce(others, table.c.assignment_pass)) + stride
    was_preferred = sa.func.coalesce(table.c.id == preferred, sa.false())
    return (
        sa.update(table)
        .where(table.c.id == chosen.scalar_subquery())
        .values(
            assignment_pass=sa.case((was_preferred, table.c.assignment_pass), else_=moved_on),
            last_assigned_at=sa.case((was_preferred, table.c.last_assigned_at), else_=now),
        )
        .returning(table.c.id, table.c.name, table.c.email, was_preferred.label("earlier_owner"))
    )


@functools.cache
def _wait_for_pool_statement(among: bool):
    """PostgreSQL, when every member was locked by other bookings: wait for them (and lock them all), then choose."""
    table = User.__table__
    today = sa.bindparam("today", type_=sa.Date)
    return (
        sa.select(table.c.id)
        .where(_in_pool(table.c, today, among))
        .order_by(table.c.id)
        .with_for_update(key_share=True)
    )


def _pick(
    session: Session,
    prefer: str,
    params: dict,
    among_user_ids: set[uuid.UUID] | None,
    now: datetime,
    wait: bool = True,
    all_held: bool = False,
) -> Assignment | None:
    """all_held: the caller's own statement has just found every member held by other bookings, so this one waits
    for them at once (PostgreSQL) instead of trying again first."""
    dialect = session.get_bind().dialect.name
    among = among_user_ids is not None
    if among and not among_user_ids:
        return None
    params = {**params, "today": oslo_today(now), "now": now}
    if among:
        params["among"] = list(among_user_ids)
    row = None if all_held else session.execute(_pick_statement(dialect, prefer, among, True), params).first()
    if row is None and wait and dialect == "postgresql":
        if session.execute(_wait_for_pool_statement(among), params).first() is not None:
            row = session.execute(_pick_statement(dialect, prefer, among, True), params).first()
    if row is None:
        return None
    return Assignment(
        user_id=row.id, reason=EARLIER_OWNER if row.earlier_owner else ROUND_ROBIN, name=row.name, email=row.email
    )


def pick_owner(
    session: Session,
    *,
    among_user_ids: set[uuid.UUID] | None = None,
    prefer_user_id: uuid.UUID | None = None,
    now: datetime | None = None,
    wait: bool = True,
) -> Assignment | None:
    """Choose an owner in the caller's transaction: `prefer_user_id` when active and present (reason «tidligere
    eier», the rotation untouched), otherwise the next member of the pool, restricted to `among_user_ids` when given
    (e.g. those free for a slot). None: nobody to give it to. The chosen member's row stays locked until commit.

    wait=False: when every member is held by other bookings this moment, None rather than waiting for them. A caller
    that has written already (and so holds locks those bookings may be waiting for) must not wait."""
    if prefer_user_id is None:
        return _pick(session, "none", {}, among_user_ids, now or utcnow(), wait)
    return _pick(session, "user", {"prefer_id": prefer_user_id}, among_user_ids, now or utcnow(), wait)


@functools.cache
def _pick_with_settings_statement():
    """PostgreSQL: the choice and the team's settings in one round trip (the UPDATE in a CTE; settings always)."""
    picked = _pick_statement("postgresql", "email", False, True).cte("picked")
    anchor = sa.select(sa.literal(1).label("one")).subquery("anchor")
    counted = User.__table__.alias("counted")
    eligible, _ = _eligible(counted, "email", False, sa.bindparam("today", type_=sa.Date))
    eligible_count = sa.select(sa.func.count()).select_from(counted).where(eligible).scalar_subquery()
    return sa.select(
        *team_settings.settings_columns(),
        eligible_count.label("eligible_count"),
        picked.c.id,
        picked.c.name,
        picked.c.email,
        picked.c.earlier_owner,
    ).select_from(anchor.outerjoin(picked, sa.true()))


def pick_for_booking(session: Session, email: str, now: datetime) -> tuple[Assignment | None, team_settings.Settings]:
    """pick_owner for a booking, with the team's settings the first-contact clock needs: the earlier owner is
    whoever owns the lead with this email (read by the statement). One statement on PostgreSQL, two on SQLite; one on
    either when the transaction has read the settings already."""
    params = {"lead_email": email}
    settings = team_settings.read_already()  # a booking with a slot read them to check the offer
    if settings is not None or session.get_bind().dialect.name != "postgresql":
        return _pick(session, "email", params, None, now), settings or team_settings.current()
    row = session.execute(_pick_with_settings_statement(), {**params, "today": oslo_today(now), "now": now}).one()
    settings = team_settings.keep_from_columns(row)
    if row.id is None and row.eligible_count:
        # Every member held by another booking this moment: wait for them, and choose then. Trying again before
        # waiting found them still held three times in four under the bench's eight clients.
        return _pick(session, "email", params, None, now, all_held=True), settings
    return Assignment(
        user_id=row.id, reason=EARLIER_OWNER if row.earlier_owner else ROUND_ROBIN, name=row.name, email=row.email
    ) if row.id is not None else None, settings
