"""Conversion report queries: the funnel, conversion by segment, timings, speed-to-lead, lost reasons, weeks.

Every number is an SQL aggregate over the leads of a period (by arrival date, Oslo time) and the board's
filters; no lead is loaded into Python. The funnel and the timings come from the status history, through
the journey columns a database trigger keeps on each lead as moves are recorded (migration 0008): a lead
that skipped a stage counts as having passed it, and the report reads one row per lead rather than the whole
history. Percentiles: PostgreSQL's percentile_cont; SQLite has none, so there the same interpolation is done
with window functions (row number and count per group).
"""

import contextlib
import dataclasses
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql

from . import leads, report_cache
from .business_days import OSLO, oslo_today
from .extensions import db
from .models import Booking, Lead, LeadSource, LeadStatus, LeadStatusCount, OrganizationSize, utcnow
from .sales import LOST_REASONS, BoardFilter

PERIODS = {
    "month": "Denne måneden",
    "30d": "Siste 30 dager",
    "quarter": "Dette kvartalet",
    "year": "I år",
    "custom": "Fra–til",
}
DEFAULT_PERIOD = "year"
WEEKS_SHOWN = 26
FUNNEL_STAGES = leads.PIPELINE_ORDER  # Ny → Kontaktet → Kvalifisert → Demo avtalt → Kunde
STAGE_RANK = {status.value: rank for rank, status in enumerate(FUNNEL_STAGES)}
TIMING_LABELS = {
    "to_first_contact": "Til første kontakt",
    "to_demo": "Til demo avtalt",
    "to_customer": "Til kunde",
}
NO_CAMPAIGN = "(ingen kampanje)"
NO_SIZE = "(ikke oppgitt)"
CAMPAIGN_CHOICES_LIMIT = 200


# --- the period and the filters --------------------------------------------------------------------------


def _parse_day(value: object) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _oslo_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=OSLO).astimezone(UTC)


@dataclass(frozen=True)
class ReportFilter:
    """The report's period (by arrival date) and the board's filters, read from the query string."""

    period: str = DEFAULT_PERIOD
    date_from: date | None = None
    date_to: date | None = None
    board_filter: BoardFilter = field(default_factory=BoardFilter)
    errors: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args: Mapping[str, str], viewer_id: uuid.UUID | None = None) -> "ReportFilter":
        # Only the filters that describe leads, not the board's search, period, overdue or column order.
        full = BoardFilter.from_args(args, viewer_id=viewer_id)
        board_filter = replace(full, q="", period="", overdue="", sorts=())
        period = args.get("period") if args.get("period") in PERIODS else DEFAULT_PERIOD
        date_from, date_to, errors = None, None, []
        if period == "custom":
            date_from, date_to = _parse_day(args.get("from")), _parse_day(args.get("to"))
            if date_from is None or date_to is None:
                errors.append("Velg både fra- og til-dato, for eksempel 01.01.2026 og 31.03.2026. Viser i år.")
            elif date_from > date_to:
                errors.append("Fra-datoen ligger etter til-datoen. Bytt dem om. Viser i år.")
            elif date_from.year < 2000 or date_to.year > 2999:
                errors.append("Velg datoer mellom år 2000 og 2999. Viser i år.")
            if errors:
                period, date_from, date_to = DEFAULT_PERIOD, None, None
        return cls(period=period, date_from=date_from, date_to=date_to, board_filter=board_filter, errors=tuple(errors))

    def days(self, now: datetime | None = None) -> tuple[date, date]:
        """The first and last Oslo day of the period (inclusive)."""
        today = oslo_today(now)
        if self.period == "custom":
            return self.date_from, self.date_to
        if self.period == "month":
            return today.replace(day=1), today
        if self.period == "30d":
            return today - timedelta(days=29), today
        if self.period == "quarter":
            return date(today.year, 3 * ((today.month - 1) // 3) + 1, 1), today
        return date(today.year, 1, 1), today

    def bounds(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """The period as UTC instants [start, end): Oslo midnights, so summer time is no concern."""
        first, last = self.days(now)
        return _oslo_midnight(first), _oslo_midnight(last + timedelta(days=1))

    def lead_conditions(self) -> list:
        return self.board_filter.conditions()

    def conditions(self, now: datetime | None = None) -> list:
        start, end = self.bounds(now)
        return [Lead.created_at >= start, Lead.created_at < end, *self.lead_conditions()]

    def identity(self, now: datetime) -> list[str]:
        """What the figures depend on besides the data: the period's instants, today (the 26 weeks end this
        week), and each filter with «mine» resolved to the viewer, so two people's «Mine» never share figures."""
        start, end = self.bounds(now)
        board = self.board_filter
        owner = str(board.viewer_id) if board.owner == "mine" else board.owner
        return [
            start.isoformat(),
            end.isoformat(),
            oslo_today(now).isoformat(),
            board.source,
            board.campaign,
            board.organization_size,
            owner,
        ]

    def as_args(self) -> dict[str, str]:
        args = {"period": self.period, **self.board_filter.as_args()}
        if self.period == "custom":
            args.update({"from": self.date_from.isoformat(), "to": self.date_to.isoformat()})
        return args


# --- SQL helpers per dialect -------------------------------------------------------------------------------


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _seconds_between(later, earlier):
    if _dialect() == "postgresql":
        # date_part gives a double, which percentile_cont sorts as is; EXTRACT gives a numeric (PostgreSQL 14+),
        # and sorting those cost about 40 % more per measure at 100,000 leads.
        return sa.func.date_part("epoch", later - earlier, type_=sa.Float)
    # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" in UTC; julianday reads it as days.
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


def _percentiles(samples, fractions=(0.5, 0.75)) -> dict[str, list[float | None]]:
    """Per group of `samples` (a subquery with columns `grp` and `value`), percentile_cont of each fraction."""
    if _dialect() == "postgresql":
        columns = [
            sa.func.percentile_cont(fraction).within_group(samples.c.value).label(f"p{index}")
            for index, fraction in enumerate(fractions)
        ]
        rows = db.session.execute(sa.select(samples.c.grp, *columns).group_by(samples.c.grp))
        return {row[0]: [float(value) if value is not None else None for value in row[1:]] for row in rows}
    # Window functions: position i (0-based) of n sorted values; percentile_cont interpolates between
    # the values at floor((n-1)·p) and the next one.
    ranked = sa.select(
        samples.c.grp,
        samples.c.value,
        (sa.func.row_number().over(partition_by=samples.c.grp, order_by=samples.c.value) - 1).label("i"),
        sa.func.count().over(partition_by=samples.c.grp).label("n"),
    ).subquery()
    columns = []
    for fraction in fractions:
        position = (ranked.c.n - 1) * fraction
        lower = sa.cast(position, sa.Integer)
        weight = position - lower
        columns.append(
            sa.func.sum(
                sa.case(
                    (ranked.c.i == lower, ranked.c.value * (1 - weight)),
                    (ranked.c.i == lower + 1, ranked.c.value * weight),
                    else_=0.0,
                )
            )
        )
    rows = db.session.execute(sa.select(ranked.c.grp, *columns).group_by(ranked.c.grp))
    return {row[0]: [float(value) if value is not None else None for value in row[1:]] for row in rows}


# --- the report --------------------------------------------------------------------------------------------


@dataclass
class FunnelStep:
    status: LeadStatus
    count: int
    step_rate: float | None  # share of the step before
    overall_rate: float | None  # share of the leads that arrived


@dataclass
class Segment:
    key: str
    label: str
    leads: int
    converted: int
    lost: int

    @property
    def conversion_rate(self) -> float | None:
        return self.converted / self.leads if self.leads else None

    @property
    def lost_rate(self) -> float | None:
        return self.lost / self.leads if self.leads else None


@dataclass
class Timing:
    key: str
    label: str
    median_days: float | None
    p75_days: float | None


@dataclass
class Week:
    starts_on: date
    new_leads: int
    bookings: int


@dataclass
class Report:
    report_filter: ReportFilter
    first_day: date
    last_day: date
    arrived: int
    funnel: list[FunnelStep]
    promise_kept: int
    promise_due: int
    by_source: list[Segment]
    by_campaign: list[Segment]
    by_size: list[Segment]
    timings: list[Timing]
    stage_medians: list[Timing]
    lost_reasons: list[tuple[str, int]]
    weeks: list[Week]
    computed_at: datetime
    # The figures hold until then: the next first-contact deadline of a lead still in «Ny» (the promise's
    # «decided» count changes when it passes), or None when no such deadline lies ahead.
    valid_until: datetime | None = None
    from_cache: bool = False

    @property
    def promise_rate(self) -> float | None:
        return self.promise_kept / self.promise_due if self.promise_due else None

    @property
    def lost_total(self) -> int:
        return sum(count for _, count in self.lost_reasons)


# What is measured per lead, from the journey columns the status-change trigger keeps (migration 0008).
def _measures() -> dict[str, object]:
    return {
        "to_first_contact": _seconds_between(Lead.first_contact_at, Lead.created_at),
        "to_demo": _seconds_between(Lead.reached_demo_at, Lead.created_at),
        "to_customer": _seconds_between(Lead.converted_at, Lead.created_at),
        LeadStatus.NEW.value: Lead.new_stage_seconds,
        LeadStatus.CONTACTED.value: Lead.contacted_stage_seconds,
        LeadStatus.QUALIFIED.value: Lead.qualified_stage_seconds,
        LeadStatus.DEMO_SCHEDULED.value: Lead.demo_stage_seconds,
    }


def _fractions(key: str) -> tuple[float, ...]:
    return (0.5, 0.75) if key in TIMING_LABELS else (0.5,)


@dataclass
class Summary:
    stage_counts: list[int]
    promise_kept: int
    promise_due: int
    next_deadline: datetime | None
    percentiles: dict[str, list[float | None]]


def _summary(report_filter: ReportFilter, now: datetime) -> Summary:
    """One pass over the period's leads: the funnel, the promise, and (PostgreSQL) every percentile.

    A lead's furthest stage is the greater of its journey's rank and its status's: a skipped stage counts. As
    filtered counts, so each is two cheap comparisons per lead, not a CASE over the status per stage.
    """
    counts = [sa.func.count()] + [
        sa.func.count().filter(
            sa.or_(
                Lead.funnel_rank >= rank,
                Lead.status.in_([status for status, status_rank in STAGE_RANK.items() if status_rank >= rank]),
            )
        )
        for rank in range(1, len(FUNNEL_STAGES))
    ]
    due = Lead.first_contact_due_at
    promise_kept = sa.func.count().filter(Lead.left_new_at <= due)
    # Decided: answered already, or the deadline has passed. A lead still inside its day is not counted yet.
    promise_due = sa.func.count().filter(due.is_not(None), sa.or_(Lead.left_new_at.is_not(None), due < now))
    # When the next undecided deadline passes, promise_due changes without any write: cached figures end there.
    next_deadline = sa.func.min(due).filter(Lead.left_new_at.is_(None), due >= now)
    columns = [*counts, promise_kept, promise_due, next_deadline]
    measures = _measures()
    in_sql = _dialect() == "postgresql"
    if in_sql:
        # One sort per measure: both fractions of a timing from one percentile_cont over an array.
        columns += [
            sa.func.percentile_cont(postgresql.array(_fractions(key))).within_group(expression)
            for key, expression in measures.items()
        ]
    row = list(db.session.execute(sa.select(*columns).where(*report_filter.conditions(now))).one())
    stage_counts = [int(value) for value in row[: len(FUNNEL_STAGES)]]
    promise = (int(row[len(FUNNEL_STAGES)]), int(row[len(FUNNEL_STAGES) + 1]))
    next_deadline = row[len(FUNNEL_STAGES) + 2]
    if in_sql:
        percentiles = row[len(FUNNEL_STAGES) + 3 :]
        values = {
            key: [float(value) if value is not None else None for value in (fractions or [])]
            for key, fractions in zip(measures, percentiles, strict=True)
        }
    else:
        values = _percentiles_by_window(report_filter, now, measures)
    return Summary(stage_counts, promise[0], promise[1], next_deadline, values)


@contextlib.contextmanager
def _from_the_report_index():
    """PostgreSQL: let the planner read leads from idx_lead_report (index-only scans), not the table.

    At the default random_page_cost (4, a spinning disk's) a period that holds most leads («I år») is planned as
    a sequential or bitmap scan of the whole table: three times the pages of the covering index, and about
    twice as slow at 100,000 leads (EXPLAIN ANALYZE, bench/report_render.py). The report's pages are cached
    like the rest of a working set, where a random read costs about what a sequential one does: 1.1, as is
    usual for SSDs. Only for the report's own statements (this transaction), restored right after; with the
    id in the index the weekly bookings with a filter are joined to the index too, not to the table.
    """
    if _dialect() != "postgresql":
        yield
        return
    previous = db.session.execute(
        sa.text("SELECT current_setting('random_page_cost'), set_config('random_page_cost', '1.1', true)")
    ).one()[0]
    yield
    # Not in a `finally`: a failed statement aborts the transaction, and its rollback undoes the setting.
    db.session.execute(sa.text("SELECT set_config('random_page_cost', :previous, true)"), {"previous": previous})


def _percentiles_by_window(report_filter: ReportFilter, now: datetime, measures: dict) -> dict:
    """SQLite: every measure's samples in one UNION ALL, interpolated with window functions."""
    conditions = report_filter.conditions(now)
    samples = sa.union_all(
        *(
            sa.select(sa.literal(key).label("grp"), expression.label("value")).where(
                expression.is_not(None), *conditions
            )
            for key, expression in measures.items()
        )
    ).subquery("samples")
    return _percentiles(samples)


def _funnel(stage_counts: list[int]) -> list[FunnelStep]:
    arrived = stage_counts[0]
    funnel = []
    for index, status in enumerate(FUNNEL_STAGES):
        count = stage_counts[index]
        before = stage_counts[index - 1] if index else None
        funnel.append(
            FunnelStep(
                status=status,
                count=count,
                step_rate=(count / before if before else None) if index else None,
                overall_rate=count / arrived if arrived else None,
            )
        )
    return funnel


def _timing(key: str, label: str, values: list[float | None] | None) -> Timing:
    median, p75 = (list(values or []) + [None, None])[:2]
    return Timing(
        key=key,
        label=label,
        median_days=median / 86400 if median is not None else None,
        p75_days=p75 / 86400 if p75 is not None else None,
    )


@dataclass
class Breakdowns:
    by_source: list[Segment]
    by_campaign: list[Segment]
    by_size: list[Segment]
    lost_reasons: list[tuple[str, int]]


def _breakdowns(report_filter: ReportFilter, now: datetime) -> Breakdowns:
    """Conversion and lost by source, campaign and size, and the lost reasons, from one scan of the period.

    The database groups the leads by every combination that occurs (source, campaign, size, outcome, reason):
    at most a few thousand counts, whatever the number of leads. They are then summed per breakdown here.
    """
    outcome = sa.case(
        (Lead.status == LeadStatus.CONVERTED.value, "converted"),
        (Lead.status == LeadStatus.LOST.value, "lost"),
        else_="open",
    )
    reason = sa.case((Lead.status == LeadStatus.LOST.value, Lead.lost_reason), else_=None)
    keys = (Lead.source, Lead.first_utm_campaign, Lead.organization_size, outcome, reason)
    rows = db.session.execute(sa.select(*keys, sa.func.count()).where(*report_filter.conditions(now)).group_by(*keys))
    tallies: list[dict[str | None, list[int]]] = [{}, {}, {}]
    reasons: dict[str | None, int] = {}
    for source, campaign, size, result, lost_reason, count in rows:
        for tally, key in zip(tallies, (source, campaign, size), strict=True):
            totals = tally.setdefault(key, [0, 0, 0])
            totals[0] += count
            totals[1] += count if result == "converted" else 0
            totals[2] += count if result == "lost" else 0
        if result == "lost":
            reasons[lost_reason] = reasons.get(lost_reason, 0) + count
    sizes = dict(OrganizationSize.choices())
    return Breakdowns(
        by_source=_segments(tallies[0], dict(LeadSource.choices()), "Ukjent"),
        by_campaign=_segments(tallies[1], {}, NO_CAMPAIGN),
        by_size=_segments(tallies[2], sizes, NO_SIZE),
        lost_reasons=sorted(
            (
                (LOST_REASONS.get(key, "Ikke oppgitt") if key else "Ikke oppgitt", count)
                for key, count in reasons.items()
            ),
            key=lambda item: (-item[1], item[0]),
        ),
    )


def _segments(tally: dict[str | None, list[int]], labels: Mapping[str, str], none_label: str) -> list[Segment]:
    segments = [
        Segment(
            key=key or "",
            label=labels.get(key, key) if key else none_label,
            leads=leads_count,
            converted=converted,
            lost=lost,
        )
        for key, (leads_count, converted, lost) in tally.items()
    ]
    return sorted(segments, key=lambda segment: (-segment.leads, segment.key))


def week_starts(now: datetime, weeks: int = WEEKS_SHOWN) -> list[date]:
    """The Mondays (Oslo) of the last `weeks` weeks, this one included, oldest first."""
    today = oslo_today(now)
    this_monday = today - timedelta(days=today.weekday())
    return [this_monday - timedelta(weeks=weeks - 1 - index) for index in range(weeks)]


def _week_index(column, boundaries: list[datetime]):
    """Which week an instant falls in, by the weeks' Oslo-midnight boundaries (summer time included).

    PostgreSQL's width_bucket finds it by binary search; elsewhere a CASE tries the boundaries in turn."""
    if _dialect() == "postgresql":
        return sa.func.width_bucket(column, postgresql.array(boundaries[1:-1]), type_=sa.Integer)
    return sa.case(
        *((column < boundary, index) for index, boundary in enumerate(boundaries[1:])), else_=len(boundaries) - 1
    )


def _weeks(report_filter: ReportFilter, now: datetime) -> list[Week]:
    """New leads and bookings per week over the last 26 weeks, with the board's filters (not the period)."""
    mondays = week_starts(now)
    boundaries = [_oslo_midnight(monday) for monday in mondays] + [_oslo_midnight(mondays[-1] + timedelta(weeks=1))]
    new_leads, bookings = _week_counts(boundaries, report_filter.lead_conditions())
    return [
        Week(starts_on=monday, new_leads=int(new_leads.get(index, 0)), bookings=int(bookings.get(index, 0)))
        for index, monday in enumerate(mondays)
    ]


def _week_counts(boundaries: list[datetime], filters: list) -> tuple[dict[int, int], dict[int, int]]:
    lead_week = _week_index(Lead.created_at, boundaries)
    new_leads = dict(
        db.session.execute(
            sa.select(lead_week, sa.func.count())
            .where(Lead.created_at >= boundaries[0], Lead.created_at < boundaries[-1], *filters)
            .group_by(lead_week)
        ).all()
    )
    booking_week = _week_index(Booking.created_at, boundaries)
    booking_query = sa.select(booking_week, sa.func.count()).where(
        Booking.created_at >= boundaries[0], Booking.created_at < boundaries[-1]
    )
    if filters:
        booking_query = booking_query.join(Lead, Lead.id == Booking.lead_id).where(*filters)
    bookings = dict(db.session.execute(booking_query.group_by(booking_week)).all())
    return new_leads, bookings


def build(report_filter: ReportFilter, now: datetime | None = None) -> Report:
    now = now or utcnow()
    first_day, last_day = report_filter.days(now)
    with _from_the_report_index():
        summary = _summary(report_filter, now)
        breakdowns = _breakdowns(report_filter, now)
        weeks = _weeks(report_filter, now)
    values = summary.percentiles
    return Report(
        report_filter=report_filter,
        first_day=first_day,
        last_day=last_day,
        arrived=summary.stage_counts[0],
        funnel=_funnel(summary.stage_counts),
        promise_kept=summary.promise_kept,
        promise_due=summary.promise_due,
        by_source=breakdowns.by_source,
        by_campaign=breakdowns.by_campaign,
        by_size=breakdowns.by_size,
        timings=[_timing(key, label, values.get(key)) for key, label in TIMING_LABELS.items()],
        stage_medians=[_timing(status.value, status.label, values.get(status.value)) for status in FUNNEL_STAGES[:-1]],
        lost_reasons=breakdowns.lost_reasons,
        weeks=weeks,
        computed_at=now,
        valid_until=summary.next_deadline,
    )


# --- the figures, cached -----------------------------------------------------------------------------------

CACHE_FORMAT = 1  # bump when Report's fields change: entries of the old shape are then never read


@dataclass(frozen=True)
class DataVersion:
    """A fingerprint of everything the report reads, in one statement of index probes (no scan at any size).

    - the newest leads.updated_at (idx_lead_updated_at, migration 0010: a backward index probe). Every write
      to a lead bumps it: ORM changes and Core UPDATEs get it from the column's onupdate, the booking upsert
      sets it on a rebooking, moves, owner changes and edits set it, and the board's 30 s poll already relies
      on it. The journey trigger's own UPDATE does not, but it only runs inside a move or an insert that does.
      A new booking always comes with its lead's upsert, so bookings need no probe of their own.
    - the leads per status (lead_status_counts, kept by triggers on every insert, delete and status change:
      six rows). It catches what updated_at cannot: an erased lead (deleted, so its updated_at is gone) and
      demo leads inserted with a backdated updated_at.
    Cheaper than a count(*) or a scan, and it adds no write anywhere: no counter row for bookings to queue on.
    What it cannot see is a change made outside the app by hand in SQL without updated_at: the TTL bounds that.
    """

    newest_change: datetime | None
    status_counts: tuple[tuple[str, int], ...]

    def settled(self, now: datetime, settle_seconds: float) -> bool:
        """Whether figures for this version may be kept. updated_at is taken before a transaction commits, so a
        transaction that stamped an earlier time can still be committing just after a later one did: while the
        newest change is fresh, figures are computed but not kept."""
        return self.newest_change is None or (now - self.newest_change).total_seconds() >= settle_seconds


def data_version() -> DataVersion:
    newest = sa.select(sa.func.max(Lead.updated_at)).scalar_subquery()
    rows = db.session.execute(
        sa.select(LeadStatusCount.status, LeadStatusCount.lead_count, newest).order_by(LeadStatusCount.status)
    ).all()
    return DataVersion(
        newest_change=rows[0][2] if rows else None,
        status_counts=tuple((status, count) for status, count, _ in rows),
    )


def _cache_key(report_filter: ReportFilter, now: datetime, version: DataVersion) -> str:
    newest = version.newest_change.isoformat() if version.newest_change else ""
    identity = [CACHE_FORMAT, *report_filter.identity(now), newest, version.status_counts]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()


def _encode(value: object) -> object:
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if dataclasses.is_dataclass(value):
        return {item.name: getattr(value, item.name) for item in dataclasses.fields(value)}
    raise TypeError(type(value).__name__)


def _dump(report: Report) -> bytes:
    figures = {
        item.name: getattr(report, item.name)
        for item in dataclasses.fields(report)
        if item.name not in ("report_filter", "from_cache")
    }
    return json.dumps(figures, default=_encode).encode()


def _load(data: bytes, report_filter: ReportFilter) -> Report:
    figures = json.loads(data)

    def instant(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return Report(
        report_filter=report_filter,
        first_day=date.fromisoformat(figures["first_day"]),
        last_day=date.fromisoformat(figures["last_day"]),
        arrived=figures["arrived"],
        funnel=[FunnelStep(**{**step, "status": LeadStatus(step["status"])}) for step in figures["funnel"]],
        promise_kept=figures["promise_kept"],
        promise_due=figures["promise_due"],
        by_source=[Segment(**segment) for segment in figures["by_source"]],
        by_campaign=[Segment(**segment) for segment in figures["by_campaign"]],
        by_size=[Segment(**segment) for segment in figures["by_size"]],
        timings=[Timing(**timing) for timing in figures["timings"]],
        stage_medians=[Timing(**timing) for timing in figures["stage_medians"]],
        lost_reasons=[(reason, count) for reason, count in figures["lost_reasons"]],
        weeks=[Week(**{**week, "starts_on": date.fromisoformat(week["starts_on"])}) for week in figures["weeks"]],
        computed_at=instant(figures["computed_at"]),
        valid_until=instant(figures["valid_until"]),
        from_cache=True,
    )


def cached_build(report_filter: ReportFilter, now: datetime | None = None) -> Report:
    """build(), served from Redis while nothing the report reads has changed (see DataVersion), the period and
    the filters are the same, and no first-contact deadline has passed since; else computed and kept."""
    now = now or utcnow()
    config = current_app.config
    version = data_version()
    key = _cache_key(report_filter, now, version)
    cached = report_cache.load(key)
    if cached is not None:
        try:
            report = _load(cached, report_filter)
        except (ValueError, KeyError, TypeError):
            report = None  # not figures this code wrote: compute them again
        if report is not None and (report.valid_until is None or now < report.valid_until):
            return report
    report = build(report_filter, now)
    if version.settled(now, config["REPORT_CACHE_SETTLE_SECONDS"]):
        report_cache.store(key, _dump(report))
    return report


# A loose index scan: one probe of idx_lead_first_utm_campaign per distinct campaign, so the board and the
# report pay for the handful of campaigns there are, not for every lead (a GROUP BY would read the whole index).
DISTINCT_CAMPAIGNS = sa.text(
    """
    WITH RECURSIVE campaigns(value) AS (
        SELECT MIN(first_utm_campaign) FROM leads
        UNION ALL
        SELECT (SELECT MIN(first_utm_campaign) FROM leads WHERE first_utm_campaign > campaigns.value)
        FROM campaigns WHERE campaigns.value IS NOT NULL
    )
    SELECT value FROM campaigns WHERE value IS NOT NULL LIMIT :limit
    """
)


def campaign_choices(chosen: str = "") -> list[str]:
    """The campaigns leads came from (first touch), for the filters; the chosen one always among them."""
    values = list(db.session.execute(DISTINCT_CAMPAIGNS, {"limit": CAMPAIGN_CHOICES_LIMIT}).scalars())
    if chosen and chosen not in values:
        values.append(chosen)
    return values
