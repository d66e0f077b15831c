"""Conversion report queries: the funnel, conversion by segment, timings, speed-to-lead, lost reasons, weeks.

Every number is an SQL aggregate over the leads of a period (by arrival date, Oslo time) and the board's
filters; no lead is loaded into Python. The funnel and the timings come from the status history, through
the journey columns a database trigger keeps on each lead as moves are recorded (migration 0008): a lead
that skipped a stage counts as having passed it, and the report reads one row per lead rather than the whole
history. Percentiles: PostgreSQL's percentile_cont; SQLite has none, so there the same interpolation is done
with window functions (row number and count per group).
"""

import concurrent.futures
import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql

from ..accounts import team_settings
from ..business_days import oslo_today
from ..core.clock import utcnow
from ..extensions import db
from ..leads import statuses
from ..leads.models import Booking, Lead, LeadPass, LeadSource, OrganizationSize
from ..leads.statuses import LOST_REASONS, LeadStatus
from . import no_shows, speed
from .filters import ReportFilter, _oslo_midnight, pass_start
from .speed import SpeedFigures
from .value import ValueFigures, build_value

WEEKS_SHOWN = 26
FUNNEL_STAGES = statuses.PIPELINE_ORDER  # Ny → Kontaktet → Kvalifisert → Demo avtalt → Kunde
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
    # «Ble demoen holdt?»: (channel, demos answered, no-shows), see no_shows.py.
    no_show_counts: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)
    # What the pipeline is worth and which channel pays (value.py).
    value: ValueFigures | None = None
    # Speed to lead in business time (speed.py): owners by id, named when the page is drawn.
    speed: SpeedFigures | None = None

    @property
    def promise_rate(self) -> float | None:
        return self.promise_kept / self.promise_due if self.promise_due else None

    @property
    def lost_total(self) -> int:
        return sum(count for _, count in self.lost_reasons)


# What is measured per lead, from the journey columns the status-change trigger keeps (migration 0008).
def _measures() -> dict[str, object]:
    started = pass_start()
    return {
        "to_first_contact": _seconds_between(Lead.first_contact_at, started),
        "to_demo": _seconds_between(Lead.reached_demo_at, started),
        "to_customer": _seconds_between(Lead.converted_at, started),
        LeadStatus.NEW.value: Lead.new_stage_seconds,
        LeadStatus.CONTACTED.value: Lead.contacted_stage_seconds,
        LeadStatus.QUALIFIED.value: Lead.qualified_stage_seconds,
        LeadStatus.DEMO_SCHEDULED.value: Lead.demo_stage_seconds,
    }


def _fractions(key: str) -> tuple[float, ...]:
    return (0.5, 0.75) if key in TIMING_LABELS else (0.5,)


@dataclass(frozen=True)
class EndedPasses:
    """Passes that ended before their lead was reopened, counted in the period they began (lead_passes): each is
    one more lead entering the funnel, lost there. The lead's own filters (source, campaign, size, owner) apply.

    Read once, grouped by everything the funnel, the breakdowns and «Etter kanal» need of them (a few hundred
    groups at most), and summed per figure here."""

    # (furthest stage, lost reason, source, campaign, size, channel and campaign as «Etter kanal» reads them, passes)
    groups: list[tuple]

    def by_rank(self) -> dict[int, int]:
        return self._sum(lambda group: int(group[0]))

    def by_segment(self) -> dict[tuple, int]:
        """(source, campaign, size, lost reason) → passes."""
        return self._sum(lambda group: (group[2], group[3], group[4], group[1]))

    def by_channel(self) -> dict[tuple, int]:
        """(channel, campaign) → passes."""
        return self._sum(lambda group: (group[5], group[6]))

    def _sum(self, key) -> dict:
        totals: dict = {}
        for group in self.groups:
            totals[key(group)] = totals.get(key(group), 0) + group[-1]
        return totals


def _ended_passes(report_filter: ReportFilter, now: datetime) -> EndedPasses:
    start, end = report_filter.bounds(now)
    keys = (
        LeadPass.funnel_rank,
        LeadPass.lost_reason,
        Lead.source,
        Lead.first_utm_campaign,
        Lead.organization_size,
        report_filter.channel_column,
        report_filter.campaign_column,
    )
    rows = db.session.execute(
        sa.select(*keys, sa.func.count())
        .select_from(LeadPass)
        .join(Lead, Lead.id == LeadPass.lead_id)
        .where(LeadPass.started_at >= start, LeadPass.started_at < end, *report_filter.lead_conditions())
        .group_by(*keys)
    )
    return EndedPasses([tuple(row) for row in rows])


@dataclass
class Summary:
    stage_counts: list[int]
    promise_kept: int
    promise_due: int
    next_deadline: datetime | None
    percentiles: dict[str, list[float | None]]


def _summary(report_filter: ReportFilter, now: datetime, ended: EndedPasses) -> Summary:
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
    for rank, count in ended.by_rank().items():
        for index in range(min(rank, len(FUNNEL_STAGES) - 1) + 1):
            stage_counts[index] += count
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


# What the report's own statements run with on PostgreSQL (see _from_the_report_index).
REPORT_SETTINGS = {"random_page_cost": "1.1", "work_mem": "32MB"}


@contextlib.contextmanager
def _from_the_report_index():
    """PostgreSQL: let the planner read leads from idx_lead_report_pass (index-only scans), not the table, and sort
    in memory.

    At the default random_page_cost (4, a spinning disk's) a period that holds most leads («I år») is planned as
    a sequential or bitmap scan of the whole table: three times the pages of the covering index, and about
    twice as slow at 100,000 leads (EXPLAIN ANALYZE, bench/report_render.py). The report's pages are cached
    like the rest of a working set, where a random read costs about what a sequential one does: 1.1, as is
    usual for SSDs. The percentiles sort up to a period's leads per group; at the default work_mem (4 MB) the
    speed-to-lead statement's sort of 95,000 leads spilled to disk (an external merge of 5 MB). Only for the
    report's own statements (this transaction), restored right after.
    """
    if _dialect() != "postgresql":
        yield
        return
    previous = _set_config(REPORT_SETTINGS, read_back=True)
    yield
    # Not in a `finally`: a failed statement aborts the transaction, and its rollback undoes the settings.
    _set_config(dict(zip(REPORT_SETTINGS, previous, strict=True)))


def _set_config(settings: dict[str, str], read_back: bool = False) -> tuple:
    """Set these for this transaction in one statement; with read_back, what they were before."""
    names = {f"name_{index}": name for index, name in enumerate(settings)}
    values = {f"value_{index}": value for index, value in enumerate(settings.values())}
    columns = [f"set_config(:name_{index}, :value_{index}, true)" for index in range(len(settings))]
    if read_back:
        columns = [f"current_setting(:name_{index})" for index in range(len(settings))] + columns
    row = db.session.execute(sa.text("SELECT " + ", ".join(columns)), {**names, **values}).one()
    return tuple(row[: len(settings)])


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


def _breakdowns(report_filter: ReportFilter, now: datetime, ended: EndedPasses) -> Breakdowns:
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
    rows = list(
        db.session.execute(sa.select(*keys, sa.func.count()).where(*report_filter.conditions(now)).group_by(*keys))
    )
    rows += [
        (source, campaign, size, "lost", reason, count)
        for (source, campaign, size, reason), count in ended.by_segment().items()
    ]
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


# On PostgreSQL a first render runs speed to lead and the value figures, the report's largest statements after the
# summary, each on a connection of its own while this one runs the rest: the server's cores share the work, and the
# page waits for the longest part instead of their sum. The pool is the process's, so cold renders at once queue
# for it rather than taking two more connections each.
_alongside_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="report")
Figures = TypeVar("Figures")


def _alongside(figures: Callable[..., Figures], *args) -> Callable[[], Figures]:
    """figures(*args), started now (on PostgreSQL in a session of its own); call the result for them."""
    if _dialect() != "postgresql":
        done = figures(*args)
        return lambda: done
    app = current_app._get_current_object()

    def in_a_session_of_its_own() -> Figures:
        with app.app_context(), _from_the_report_index():
            return figures(*args)

    return _alongside_pool.submit(in_a_session_of_its_own).result


def build(report_filter: ReportFilter, now: datetime | None = None) -> Report:
    now = now or utcnow()
    first_day, last_day = report_filter.days(now)
    speed_figures_when_done = _alongside(speed.figures, report_filter, now, team_settings.current())
    with _from_the_report_index():
        ended = _ended_passes(report_filter, now)
        value_when_done = _alongside(build_value, report_filter, now, _percentiles, ended.by_channel())
        summary = _summary(report_filter, now, ended)
        breakdowns = _breakdowns(report_filter, now, ended)
        weeks = _weeks(report_filter, now)
        no_show_counts = no_shows.counts_by_channel(report_filter, now)
    speed_figures = speed_figures_when_done()
    values = summary.percentiles
    deadlines = [deadline for deadline in (summary.next_deadline, speed_figures.next_deadline) if deadline]
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
        valid_until=min(deadlines, default=None),
        no_show_counts=no_show_counts,
        value=value_when_done(),
        speed=speed_figures,
    )


# --- the figures, cached -----------------------------------------------------------------------------------


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
