"""Who takes demos and what their time looks like, read from the database for the pure availability code: weekly
hours, absences (accounts.absences), demos already booked, and the busy times of their calendar feed."""

import functools
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa

from ..accounts import absences, team_settings
from ..accounts.models import Absence, User
from ..assignment import pool
from ..business_days import OSLO
from ..core.database import per_transaction
from ..extensions import db
from ..leads.models import Lead, LeadStatusCount
from ..leads.statuses import LeadStatus
from . import rules as slot_rules
from .availability import HostTime
from .models import DemoHost, HostBusy, SlotClaim, SlotRules
from .rules import parse_weekly_hours


def host_settings(user_id: uuid.UUID) -> DemoHost:
    """The host's row, or an unsaved one with the defaults."""
    return db.session.get(DemoHost, user_id) or DemoHost(user_id=user_id, takes_demos=True)


def hosts_condition() -> sa.ColumnElement[bool]:
    """Active staff who take demos (no settings row: they do, by default)."""
    return sa.and_(
        User.is_active.is_(True),
        sa.or_(DemoHost.takes_demos.is_(None), DemoHost.takes_demos.is_(True)),
    )


# The booking's statements are built once, from the tables: SQLAlchemy then keeps their compiled form and cache key
# (a statement naming mapped classes is copied and keyed anew on every execution).
USERS, DEMO_HOSTS, LEADS = User.__table__.c, DemoHost.__table__.c, Lead.__table__.c
HOST_BUSY, ABSENCES = HostBusy.__table__.c, Absence.__table__.c


@functools.cache
def _hosts_statement():
    return (
        sa.select(USERS.id, USERS.email, DEMO_HOSTS.weekly_hours)
        .select_from(User.__table__.outerjoin(DemoHost.__table__, DEMO_HOSTS.user_id == USERS.id))
        .where(USERS.is_active.is_(True), sa.or_(DEMO_HOSTS.takes_demos.is_(None), DEMO_HOSTS.takes_demos.is_(True)))
        .order_by(USERS.created_at, USERS.id)
    )


# host_rows' key in core.database.per_transaction.
_HOSTS_KEPT = "slot_hosts"


def host_rows() -> list[sa.Row]:
    """Every host (id, email, weekly_hours), oldest account first: read once per transaction, for a booking checks
    the offer (host_weeks), then books it (host_times_at) and writes the host's invitation."""
    return per_transaction(db.session, _HOSTS_KEPT, lambda: db.session.execute(_hosts_statement()).all())


@functools.cache
def _hosts_rules_and_settings_statement():
    """The hosts (as _hosts_statement) with the slot rules and the team's settings beside each row. A one-row anchor
    joined to the hosts gives one row when there are none, so the rules and settings always come back."""
    anchor = sa.select(sa.literal(1).label("anchor")).subquery("anchor")
    hosts = _hosts_statement().add_columns(USERS.created_at).order_by(None).subquery("hosts")
    return (
        sa.select(
            hosts.c.id,
            hosts.c.email,
            hosts.c.weekly_hours,
            *slot_rules.rules_columns(),
            *team_settings.settings_columns(),
        )
        .select_from(anchor.outerjoin(hosts, hosts.c.id.is_not(None)))
        .order_by(hosts.c.created_at, hosts.c.id)
    )


def read_before_booking() -> None:
    """What a booking with a time reads before it books — the hosts, the slot rules and the team's settings — in one
    statement instead of three, kept for the transaction: host_rows, rules.current and team_settings.current then
    read nothing more."""
    rows = db.session.execute(_hosts_rules_and_settings_statement()).all()
    slot_rules.keep_from_columns(rows[0])
    team_settings.keep_from_columns(rows[0])
    per_transaction(db.session, _HOSTS_KEPT, lambda: [row for row in rows if row.id is not None])


def host_weeks() -> list:
    """Every host's weekly hours: what decides whether a start time could have been offered at all."""
    return [parse_weekly_hours(row.weekly_hours) for row in host_rows()]


def data_version() -> tuple:
    """What the free times depend on besides the clock, in one statement of index probes and small counts: the
    newest change to a lead with a demo and the demos scheduled, hosts' settings and calendar fetches, absences,
    the active team, and the rules. Any demo booked, moved or cancelled, any move into or out of «Demo avtalt»,
    absence or settings change gives a new version. A booking without a time does not: the form's busiest hour
    is many of those, and each would otherwise make the next visitor's form compute every free time anew."""
    probes = (
        # A demo is never taken off a lead (demo_at is kept when it is cancelled or the lead moves on), so every
        # change to a demo is an update of a lead with demo_at set.
        sa.select(sa.func.max(Lead.updated_at)).where(Lead.demo_at.is_not(None)),
        sa.select(LeadStatusCount.lead_count).where(LeadStatusCount.status == LeadStatus.DEMO_SCHEDULED.value),
        sa.select(sa.func.max(DemoHost.updated_at)),
        sa.select(sa.func.max(DemoHost.feed_fetched_at)),
        sa.select(sa.func.count()).select_from(Absence),
        sa.select(sa.func.max(Absence.created_at)),
        sa.select(sa.func.count()).select_from(User).where(User.is_active.is_(True)),
        sa.select(sa.func.max(User.created_at)),
        sa.select(SlotRules.updated_at).where(SlotRules.id == 1),
    )
    row = db.session.execute(sa.select(*(probe.scalar_subquery() for probe in probes))).one()
    return tuple(value.isoformat() if isinstance(value, datetime) else value for value in row)


def load_host_times(first_day: date, last_day: date, only: set[uuid.UUID] | None = None) -> list[HostTime]:
    """Every host's time between two Oslo dates (inclusive), in a handful of statements whatever the team's size."""
    rows = db.session.execute(
        sa.select(User.id, DemoHost.weekly_hours)
        .outerjoin(DemoHost, DemoHost.user_id == User.id)
        .where(hosts_condition(), *([User.id.in_(only)] if only is not None else []))
        .order_by(User.created_at, User.id)
    ).all()
    if not rows:
        return []
    ids = [row.id for row in rows]
    window_from = datetime.combine(first_day, time(0), tzinfo=OSLO).astimezone(UTC) - timedelta(days=1)
    window_until = datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=OSLO).astimezone(UTC)
    busy: dict[uuid.UUID, list[tuple[datetime, datetime]]] = defaultdict(list)
    per_day: dict[uuid.UUID, dict[date, set]] = defaultdict(lambda: defaultdict(set))
    demos = db.session.execute(
        sa.select(Lead.id, Lead.demo_host_id, Lead.demo_at, Lead.demo_minutes).where(
            Lead.status == LeadStatus.DEMO_SCHEDULED.value,
            Lead.demo_cancelled_at.is_(None),
            Lead.demo_host_id.in_(ids),
            Lead.demo_at >= window_from,
            Lead.demo_at < window_until,
        )
    ).all()
    for lead_id, host_id, starts_at, minutes in demos:
        busy[host_id].append((starts_at, starts_at + timedelta(minutes=minutes or 30)))
        per_day[host_id][starts_at.astimezone(OSLO).date()].add(lead_id)
    events = db.session.execute(
        sa.select(HostBusy.user_id, HostBusy.starts_at, HostBusy.ends_at).where(
            HostBusy.user_id.in_(ids), HostBusy.ends_at > window_from, HostBusy.starts_at < window_until
        )
    ).all()
    for host_id, starts_at, ends_at in events:
        busy[host_id].append((starts_at, ends_at))
    away = absences.absences_between(ids, first_day, last_day)
    times = []
    for host_id, weekly_hours in rows:
        absent_days = set()
        for starts_on, ends_on in away.get(host_id, []):
            day = max(starts_on, first_day)
            while day <= min(ends_on, last_day):
                absent_days.add(day)
                day += timedelta(days=1)
        times.append(
            HostTime(
                host_id=host_id,
                week=parse_weekly_hours(weekly_hours),
                absent_days=frozenset(absent_days),
                busy=tuple(busy[host_id]),
                demos_per_day={day: len(leads) for day, leads in per_day[host_id].items()},
            )
        )
    return times


# The longest demo staff can schedule (scheduling.demos.MINUTES_RANGE): a demo starting this long before a time may
# still run into it.
LONGEST_DEMO = timedelta(minutes=240)


@functools.cache
def _near_statement(moving: bool):
    """One statement for what one start time needs to know of every host's time: the live demos of its Oslo day or
    near it (the day's count, and those that may run into the demo), the calendar busy times that touch the demo and
    its buffers, and who is away that day. Rows: (kind, host_id, starts_at, ends_at, minutes)."""
    demo_at, no_time, no_minutes = (
        LEADS.demo_at.type,
        sa.cast(sa.null(), LEADS.demo_at.type),
        sa.cast(sa.null(), sa.Integer),
    )
    live = [
        LEADS.status == LeadStatus.DEMO_SCHEDULED.value,
        LEADS.demo_cancelled_at.is_(None),
        LEADS.demo_host_id.is_not(None),
        *([LEADS.id != sa.bindparam("moving", type_=sa.Uuid)] if moving else []),
    ]
    demos = sa.select(
        sa.literal_column("'demo'").label("kind"),
        LEADS.demo_host_id.label("host_id"),
        LEADS.demo_at.label("starts_at"),
        no_time.label("ends_at"),
        LEADS.demo_minutes.label("minutes"),
    ).where(
        *live,
        LEADS.demo_at >= sa.bindparam("demos_from", type_=demo_at),
        LEADS.demo_at < sa.bindparam("demos_until", type_=demo_at),
    )
    events = sa.select(
        sa.literal_column("'event'"), HOST_BUSY.user_id, HOST_BUSY.starts_at, HOST_BUSY.ends_at, no_minutes
    ).where(
        HOST_BUSY.starts_at < sa.bindparam("wanted_until", type_=HOST_BUSY.starts_at.type),
        HOST_BUSY.ends_at > sa.bindparam("wanted_from", type_=HOST_BUSY.ends_at.type),
    )
    day = sa.bindparam("day", type_=ABSENCES.starts_on.type)
    away = sa.select(sa.literal_column("'absent'"), ABSENCES.user_id, no_time, no_time, no_minutes).where(
        ABSENCES.starts_on <= day, ABSENCES.ends_on >= day
    )
    return sa.union_all(demos, events, away)


def host_times_at(starts_at: datetime, rules, moving: uuid.UUID | None = None) -> list[HostTime]:
    """Every host's time as far as one start time needs it (booking it): the day's demo count, and only the demos,
    calendar busy times and absences that touch the demo and its buffers. Fewer rows than load_host_times: the hosts
    (host_rows) and one statement."""
    rows = host_rows()
    if not rows:
        return []
    day = starts_at.astimezone(OSLO).date()
    day_from = datetime.combine(day, time(0), tzinfo=OSLO).astimezone(UTC)
    day_until = datetime.combine(day + timedelta(days=1), time(0), tzinfo=OSLO).astimezone(UTC)
    buffer = timedelta(minutes=rules.buffer_minutes)
    wanted_from, wanted_until = starts_at - buffer, starts_at + timedelta(minutes=rules.demo_minutes) + buffer
    near_from = wanted_from - LONGEST_DEMO
    params = {
        "demos_from": min(day_from, near_from),
        "demos_until": max(day_until, wanted_until),
        "wanted_from": wanted_from,
        "wanted_until": wanted_until,
        "day": day,
        **({"moving": moving} if moving is not None else {}),
    }
    per_day: dict[uuid.UUID, int] = defaultdict(int)
    busy: dict[uuid.UUID, list[tuple[datetime, datetime]]] = defaultdict(list)
    absent = set()
    for kind, host_id, from_, until, minutes in db.session.execute(_near_statement(moving is not None), params):
        if kind == "absent":
            absent.add(host_id)
        elif kind == "event":
            busy[host_id].append((from_, until))
        else:
            if day_from <= from_ < day_until:
                per_day[host_id] += 1
            if near_from <= from_ < wanted_until:
                busy[host_id].append((from_, from_ + timedelta(minutes=minutes or 30)))
    return [
        HostTime(
            host_id=row.id,
            week=parse_weekly_hours(row.weekly_hours),
            absent_days=frozenset({day}) if row.id in absent else frozenset(),
            busy=tuple(busy[row.id]),
            demos_per_day={day: per_day[row.id]},
        )
        for row in rows
    ]


def host_email(host_id: uuid.UUID) -> str | None:
    """A host's address for their copy of the invitation (from host_rows when the transaction has read them)."""
    for row in host_rows():
        if row.id == host_id:
            return row.email
    return db.session.execute(sa.select(USERS.email).where(USERS.id == host_id)).scalar_one_or_none()


def choose_host(free_host_ids: list[uuid.UUID], prefer_user_id: uuid.UUID | None) -> uuid.UUID:
    """Who holds a demo, of the hosts free then: the preferred one (the lead's owner) when free, else the
    assignment rules' pick among them (the pool's next member, assignment.pool), else, when none of them is in the
    pool, the host least recently given a demo (never given one first).

    The booking has written its lead by now (holding the status count's row other bookings wait for), so the pick
    never waits for pool members other bookings hold: that was a deadlock. It takes the least recently given one."""
    if prefer_user_id is not None and prefer_user_id in free_host_ids:
        return prefer_user_id
    picked = pool.pick_owner(db.session, among_user_ids=set(free_host_ids), wait=False)
    if picked is not None:
        return picked.user_id
    latest = dict(
        db.session.execute(
            sa.select(SlotClaim.host_id, sa.func.max(SlotClaim.created_at))
            .where(SlotClaim.host_id.in_(free_host_ids))
            .group_by(SlotClaim.host_id)
        ).all()
    )
    never = datetime.min.replace(tzinfo=UTC)
    return min(free_host_ids, key=lambda host_id: (latest.get(host_id) or never, free_host_ids.index(host_id)))
