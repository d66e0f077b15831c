"""Speed to lead in business time (business_hours.py): the median and 90th percentile from the start of a lead's
pass (its arrival, or its reopening) to the first contact, and the share within the first-contact target, overall,
by owner and by channel (the lead's first touch, leads/channel.py); conversion by how fast the first contact came;
and leads assigned per member against their share.

The figures (`figures`) are kept with the report's other figures (cache.py); the names and the pool's shares are
put to them when the page is drawn (`speed_report`), so they are never older than the team page. A lead still
inside its time is not counted yet (it is undecided); the figures end when its deadline passes (`next_deadline`).

Business time is not a column: a BusinessCalendar turns an instant into a reading of a clock that runs only in
business hours, so the time a first contact took is the difference of two readings. On PostgreSQL the calendar goes
into the statement as arrays and everything is aggregated there (one statement, no lead read into Python); SQLite
has no arrays or percentile_cont, so there four columns per lead of the period are read and counted here.
"""

import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import Grouping

from ..accounts.models import User
from ..accounts.team_settings import Settings
from ..business_days import oslo_today
from ..business_hours import BusinessCalendar
from ..extensions import db
from ..leads.models import Lead
from ..leads.statuses import LeadStatus
from .filters import ReportFilter, pass_start

UNASSIGNED = "Ufordelt"
FAST, SLOW = "Første kontakt innen fristen", "Senere, eller ennå ikke"
# A custom period may end centuries ahead; first contacts are never recorded in the future, so the calendar need
# not reach further than this past today.
CALENDAR_DAYS_AHEAD = 7


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass
class SpeedRow:
    label: str  # in the kept figures: the channel, or the owner's id ("" for none); named by speed_report
    decided: int = 0  # contacted, or past their time
    within: int = 0
    median_seconds: float | None = None  # business seconds to first contact, of contacted leads
    p90_seconds: float | None = None

    @property
    def median_minutes(self) -> float | None:
        return self.median_seconds / 60 if self.median_seconds is not None else None

    @property
    def p90_minutes(self) -> float | None:
        return self.p90_seconds / 60 if self.p90_seconds is not None else None

    @property
    def share_within(self) -> float | None:
        return self.within / self.decided if self.decided else None


@dataclass
class ConversionBySpeed:
    label: str
    leads: int = 0
    converted: int = 0

    @property
    def rate(self) -> float | None:
        return self.converted / self.leads if self.leads else None


@dataclass
class SpeedFigures:
    """What the report keeps (JSON in Redis): counts and percentiles, owners by id."""

    target_minutes: int
    overall: SpeedRow
    by_owner: list[SpeedRow]
    by_channel: list[SpeedRow]
    conversion: list[ConversionBySpeed]
    assigned: dict[str, int]  # owner id → the period's leads they were given
    # The next first-contact deadline of an uncontacted lead: then it becomes decided, and these figures end.
    next_deadline: datetime | None = None

    def to_json(self) -> dict:
        figures = asdict(self)
        figures["next_deadline"] = self.next_deadline.isoformat() if self.next_deadline else None
        return figures

    @classmethod
    def from_json(cls, figures: dict) -> "SpeedFigures":
        return cls(
            target_minutes=figures["target_minutes"],
            overall=SpeedRow(**figures["overall"]),
            by_owner=[SpeedRow(**row) for row in figures["by_owner"]],
            by_channel=[SpeedRow(**row) for row in figures["by_channel"]],
            conversion=[ConversionBySpeed(**group) for group in figures["conversion"]],
            assigned=figures["assigned"],
            next_deadline=datetime.fromisoformat(figures["next_deadline"]) if figures["next_deadline"] else None,
        )


@dataclass
class Assigned:
    name: str
    leads: int
    share: float | None
    expected_share: float | None


@dataclass
class SpeedReport:
    target_minutes: int
    overall: SpeedRow
    by_owner: list[SpeedRow]
    by_channel: list[SpeedRow]
    conversion: list[ConversionBySpeed]
    assigned: list[Assigned]


def _owner_key(owner_id: uuid.UUID | None) -> str:
    return str(owner_id) if owner_id else ""


def calendar_for(report_filter: ReportFilter, now: datetime, settings: Settings) -> BusinessCalendar:
    """The business hours from the period's first day (no pass of the period starts earlier) to a little past
    today (no first contact is later), and always some business days, so every instant has a reading."""
    first_day, last_day = report_filter.days(now)
    today = oslo_today(now)
    last = max(today, min(last_day, today + timedelta(days=CALENDAR_DAYS_AHEAD)), first_day + timedelta(days=14))
    return BusinessCalendar.of_days(first_day, last, settings.business_hours)


def figures(report_filter: ReportFilter, now: datetime, settings: Settings) -> SpeedFigures:
    calendar = calendar_for(report_filter, now, settings)
    if db.session.get_bind().dialect.name == "postgresql":
        return _figures_in_sql(report_filter, now, settings, calendar)
    return _figures_in_python(report_filter, now, settings, calendar)


def _reading_in_sql(since, index, arrays: dict):
    """BusinessCalendar.seconds as SQL, from the seconds since the origin and the window's index (`_window_in_sql`).
    `since` must not be NULL: GREATEST and LEAST skip NULLs."""
    return sa.func.greatest(sa.func.least(since, arrays["closes"][index]) + arrays["offsets"][index], 0.0)


def _window_in_sql(since, arrays: dict):
    """The last window opened by then: width_bucket is bisect_right over the openings (arrays count from 1)."""
    return sa.func.greatest(sa.func.width_bucket(since, arrays["opens"], type_=sa.Integer), 1)


def _figures_in_sql(
    report_filter: ReportFilter, now: datetime, settings: Settings, calendar: BusinessCalendar
) -> SpeedFigures:
    """One grouped statement: overall, per owner and per channel (GROUPING SETS), each lead's business time from
    two clock readings, the percentiles by percentile_cont."""
    floats = postgresql.ARRAY(sa.Float)
    origin = sa.literal(calendar.origin, Lead.created_at.type)
    arrays = {
        # In parentheses: a parameter is subscripted as ($1::float8[])[i].
        name: Grouping(sa.literal(list(getattr(calendar, name)), floats))
        for name in ("opens", "closes", "offsets")
    }
    contacted, due = Lead.first_contact_at, Lead.first_contact_due_at
    # Each lead's measures, each step evaluated once: OFFSET 0 keeps PostgreSQL from folding a step into the next,
    # where every use (and every grouping set) would evaluate it again.
    instants = (
        sa.select(
            Lead.owner_id.label("owner_id"),
            Lead.first_channel.label("channel"),
            sa.or_(contacted.is_not(None), due < now).label("decided"),
            sa.and_(contacted.is_not(None), contacted <= due).label("within"),
            (Lead.status == LeadStatus.CONVERTED.value).label("converted"),
            sa.case((sa.and_(contacted.is_(None), due >= now), due)).label("undecided_due"),
            sa.func.date_part("epoch", contacted - origin, type_=sa.Float).label("contacted"),
            sa.func.date_part("epoch", pass_start() - origin, type_=sa.Float).label("started"),
        )
        .where(due.is_not(None), *report_filter.conditions(now))
        .offset(0)
        .subquery()
    )
    measures = [instants.c[name] for name in ("owner_id", "channel", "decided", "within", "converted", "undecided_due")]
    windows = (
        sa.select(
            *measures,
            instants.c.contacted,
            instants.c.started,
            _window_in_sql(instants.c.contacted, arrays).label("contacted_window"),
            _window_in_sql(instants.c.started, arrays).label("started_window"),
        )
        .offset(0)
        .subquery()
    )
    readings = [
        _reading_in_sql(windows.c[name], windows.c[f"{name}_window"], arrays) for name in ("contacted", "started")
    ]
    per_lead = (
        sa.select(
            *(windows.c[column.name] for column in measures),
            sa.case((windows.c.contacted.is_not(None), readings[0] - readings[1])).label("seconds"),
        )
        .offset(0)
        .subquery()
    )
    lead = per_lead.c
    rows = db.session.execute(
        sa.select(
            sa.func.grouping(lead.owner_id),
            sa.func.grouping(lead.channel),
            lead.owner_id,
            lead.channel,
            sa.func.count(),
            sa.func.count().filter(lead.decided),
            sa.func.count().filter(lead.within),
            sa.func.count().filter(lead.decided, lead.converted),
            sa.func.count().filter(lead.within, lead.converted),
            sa.func.percentile_cont(postgresql.array([0.5, 0.9])).within_group(lead.seconds),
            sa.func.min(lead.undecided_due),
        ).group_by(sa.func.grouping_sets(sa.tuple_(), sa.tuple_(lead.owner_id), sa.tuple_(lead.channel)))
    ).all()
    overall, by_owner, by_channel = SpeedRow("Alle"), [], []
    fast, slow = ConversionBySpeed(FAST), ConversionBySpeed(SLOW)
    assigned, next_deadline = {}, None
    for not_by_owner, not_by_channel, owner_id, channel_name, leads, decided_count, within_count, *rest in rows:
        converted_decided, converted_within, percentiles, deadline = rest
        median, p90 = (float(value) if value is not None else None for value in (percentiles or (None, None)))
        if not_by_owner and not_by_channel:
            row = overall
            fast.leads, fast.converted = within_count, converted_within
            slow.leads, slow.converted = decided_count - within_count, converted_decided - converted_within
            next_deadline = deadline
        elif not_by_channel:
            row = SpeedRow(_owner_key(owner_id))
            if owner_id is not None:
                assigned[_owner_key(owner_id)] = leads
        else:
            row = SpeedRow(channel_name)
        row.decided, row.within, row.median_seconds, row.p90_seconds = decided_count, within_count, median, p90
        if row is not overall and row.decided:
            (by_owner if not_by_channel else by_channel).append(row)
    return SpeedFigures(
        target_minutes=settings.first_contact_target_minutes,
        overall=overall,
        by_owner=by_owner,
        by_channel=sorted(by_channel, key=lambda row: (-row.decided, row.label)),
        conversion=[fast, slow],
        assigned=assigned,
        next_deadline=next_deadline,
    )


@dataclass
class _Tally:
    row: SpeedRow
    seconds: list[float] = field(default_factory=list)  # business seconds to first contact, of contacted leads


def _figures_in_python(
    report_filter: ReportFilter, now: datetime, settings: Settings, calendar: BusinessCalendar
) -> SpeedFigures:
    rows = db.session.execute(
        sa.select(
            pass_start(),
            Lead.first_contact_at,
            Lead.first_contact_due_at,
            Lead.owner_id,
            Lead.first_channel,
            Lead.status,
        ).where(Lead.first_contact_due_at.is_not(None), *report_filter.conditions(now))
    ).all()
    overall = _Tally(SpeedRow("Alle"))
    owners: dict[str, _Tally] = {}
    channels: dict[str, _Tally] = {}
    fast, slow = ConversionBySpeed(FAST), ConversionBySpeed(SLOW)
    assigned: dict[str, int] = defaultdict(int)
    next_deadline = None
    for started_at, contacted_at, due_at, owner_id, channel, status in rows:
        if owner_id is not None:
            assigned[_owner_key(owner_id)] += 1
        if contacted_at is None and due_at >= now:
            next_deadline = min(next_deadline or due_at, due_at)
            continue  # still inside its time: undecided
        within = contacted_at is not None and contacted_at <= due_at
        owner = owners.setdefault(_owner_key(owner_id), _Tally(SpeedRow(_owner_key(owner_id))))
        for tally in (overall, owner, channels.setdefault(channel, _Tally(SpeedRow(channel)))):
            tally.row.decided += 1
            tally.row.within += within
            if contacted_at is not None:
                tally.seconds.append(calendar.seconds(contacted_at) - calendar.seconds(started_at))
        bucket = fast if within else slow
        bucket.leads += 1
        bucket.converted += status == LeadStatus.CONVERTED.value
    for tally in (overall, *owners.values(), *channels.values()):
        tally.row.median_seconds, tally.row.p90_seconds = percentile(tally.seconds, 0.5), percentile(tally.seconds, 0.9)
    return SpeedFigures(
        target_minutes=settings.first_contact_target_minutes,
        overall=overall.row,
        by_owner=[tally.row for tally in owners.values()],
        by_channel=sorted((tally.row for tally in channels.values()), key=lambda row: (-row.decided, row.label)),
        conversion=[fast, slow],
        assigned=dict(assigned),
        next_deadline=next_deadline,
    )


@dataclass
class _Person:
    name: str
    pool_weight: int | None  # None: not in the assignment pool


def _people() -> dict[str, _Person]:
    """Everyone who may own a lead: their names and their weights in the pool as it stands (one small query)."""
    rows = db.session.execute(
        sa.select(User.id, User.name, User.is_active, User.takes_new_leads, User.assignment_weight_percent)
    )
    return {
        str(user_id): _Person(name, weight if active and takes_new_leads else None)
        for user_id, name, active, takes_new_leads, weight in rows
    }


def speed_report(kept: SpeedFigures) -> SpeedReport:
    """The kept figures as the page shows them: owners by name, and leads per member against each member's share
    of the pool (weight over the pool's weights) as it stands now."""
    people = _people()

    def name(owner_key: str) -> str:
        return people[owner_key].name if owner_key in people else UNASSIGNED

    by_owner = [
        SpeedRow(name(row.label), row.decided, row.within, row.median_seconds, row.p90_seconds) for row in kept.by_owner
    ]
    pool = {key: person.pool_weight for key, person in people.items() if person.pool_weight is not None}
    total_weight, total = sum(pool.values()), sum(kept.assigned.values())
    return SpeedReport(
        target_minutes=kept.target_minutes,
        overall=kept.overall,
        by_owner=sorted(by_owner, key=lambda row: row.label),
        by_channel=kept.by_channel,
        conversion=kept.conversion,
        assigned=[
            Assigned(
                name=name(key),
                leads=kept.assigned.get(key, 0),
                share=kept.assigned.get(key, 0) / total if total else None,
                expected_share=pool[key] / total_weight if key in pool and total_weight else None,
            )
            for key in sorted(set(kept.assigned) | set(pool), key=lambda key: name(key) if key in people else "")
        ],
    )
