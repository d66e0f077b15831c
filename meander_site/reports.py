"""Conversion report queries: the funnel, conversion by segment, timings, speed-to-lead, lost reasons, weeks.

Every number is an SQL aggregate over the leads of a period (by arrival date, Oslo time) and the board's
filters; no lead is loaded into Python. The funnel and the timings come from the status history, through
the journey columns a database trigger keeps on each lead as moves are recorded (migration 0008): a lead
that skipped a stage counts as having passed it, and the report reads one row per lead rather than the whole
history. Percentiles: PostgreSQL's percentile_cont; SQLite has none, so there the same interpolation is done
with window functions (row number and count per group).
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa

from . import leads
from .business_days import OSLO, oslo_today
from .extensions import db
from .models import Booking, Lead, LeadSource, LeadStatus, OrganizationSize, utcnow
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
        return sa.extract("epoch", later - earlier)
    # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" in UTC; julianday reads it as days.
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


def _rank(column):
    """A status's place in the funnel; «Tapt» has none (-1)."""
    return sa.case(STAGE_RANK, value=column, else_=-1)


def _greatest(*expressions):
    result = expressions[0]
    for expression in expressions[1:]:
        result = sa.case((expression > result, expression), else_=result)
    return result


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


def _summary(report_filter: ReportFilter, now: datetime) -> tuple[list[int], int, int, dict[str, list[float | None]]]:
    """One pass over the period's leads: the funnel, the promise, and (PostgreSQL) every percentile.

    A lead's furthest stage is the greater of its journey's rank and its status's: a skipped stage counts.
    """
    reached = _greatest(_rank(Lead.status), Lead.funnel_rank)
    counts = [sa.func.count()] + [
        sa.func.coalesce(sa.func.sum(sa.case((reached >= rank, 1), else_=0)), 0)
        for rank in range(1, len(FUNNEL_STAGES))
    ]
    due = Lead.first_contact_due_at
    promise_kept = sa.func.coalesce(sa.func.sum(sa.case((Lead.left_new_at <= due, 1), else_=0)), 0)
    # Decided: answered already, or the deadline has passed. A lead still inside its day is not counted yet.
    decided = sa.and_(due.is_not(None), sa.or_(Lead.left_new_at.is_not(None), due < now))
    promise_due = sa.func.coalesce(sa.func.sum(sa.case((decided, 1), else_=0)), 0)
    columns = [*counts, promise_kept, promise_due]
    measures = _measures()
    in_sql = _dialect() == "postgresql"
    if in_sql:
        columns += [
            sa.func.percentile_cont(fraction).within_group(expression)
            for key, expression in measures.items()
            for fraction in _fractions(key)
        ]
    row = list(db.session.execute(sa.select(*columns).where(*report_filter.conditions(now))).one())
    stage_counts = [int(value) for value in row[: len(FUNNEL_STAGES)]]
    promise = (int(row[len(FUNNEL_STAGES)]), int(row[len(FUNNEL_STAGES) + 1]))
    if in_sql:
        values, rest = {}, row[len(FUNNEL_STAGES) + 2 :]
        for key in measures:
            width = len(_fractions(key))
            values[key] = [float(value) if value is not None else None for value in rest[:width]]
            rest = rest[width:]
    else:
        values = _percentiles_by_window(report_filter, now, measures)
    return stage_counts, promise[0], promise[1], values


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
    """Which week an instant falls in, as a CASE over the weeks' Oslo-midnight boundaries (summer time included)."""
    return sa.case(
        *((column < boundary, index) for index, boundary in enumerate(boundaries[1:])), else_=len(boundaries) - 1
    )


def _weeks(report_filter: ReportFilter, now: datetime) -> list[Week]:
    """New leads and bookings per week over the last 26 weeks, with the board's filters (not the period)."""
    mondays = week_starts(now)
    boundaries = [_oslo_midnight(monday) for monday in mondays] + [_oslo_midnight(mondays[-1] + timedelta(weeks=1))]
    filters = report_filter.lead_conditions()
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
    return [
        Week(starts_on=monday, new_leads=int(new_leads.get(index, 0)), bookings=int(bookings.get(index, 0)))
        for index, monday in enumerate(mondays)
    ]


def build(report_filter: ReportFilter, now: datetime | None = None) -> Report:
    now = now or utcnow()
    first_day, last_day = report_filter.days(now)
    stage_counts, promise_kept, promise_due, values = _summary(report_filter, now)
    breakdowns = _breakdowns(report_filter, now)
    return Report(
        report_filter=report_filter,
        first_day=first_day,
        last_day=last_day,
        arrived=stage_counts[0],
        funnel=_funnel(stage_counts),
        promise_kept=promise_kept,
        promise_due=promise_due,
        by_source=breakdowns.by_source,
        by_campaign=breakdowns.by_campaign,
        by_size=breakdowns.by_size,
        timings=[_timing(key, label, values.get(key)) for key, label in TIMING_LABELS.items()],
        stage_medians=[_timing(status.value, status.label, values.get(status.value)) for status in FUNNEL_STAGES[:-1]],
        lost_reasons=breakdowns.lost_reasons,
        weeks=_weeks(report_filter, now),
    )


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
