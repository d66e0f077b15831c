"""What the pipeline is worth and which channel pays: won value in the period, the average deal, the open pipeline
weighted and unweighted, the expected value per close month, all by owner and by channel; and «Etter kanal»
(leads, demos held, customers, conversion, won value, median time to customer, campaign as a second level).

Grouped SQL over the filtered leads, a few hundred rows at most whatever their number. Values are whole kroner
(leads/deal_value.py); weights are the administrator's per open stage.
"""

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa

from ..accounts.models import User
from ..business_days import oslo_today
from ..extensions import db
from ..leads.deal_value import stage_weights
from ..leads.models import Lead
from ..leads.statuses import OPEN_STATUSES, LeadStatus
from .filters import ReportFilter, pass_start

MONTHS_AHEAD = 6
UNASSIGNED = "Ufordelt"
NO_CAMPAIGN = "(ingen kampanje)"
MONTH_NAMES = ("jan.", "feb.", "mars", "apr.", "mai", "juni", "juli", "aug.", "sep.", "okt.", "nov.", "des.")


@dataclass
class ValueRow:
    """One owner's or channel's money: won in the period, and their open pipeline now."""

    label: str
    won_count: int = 0
    won_value: int = 0
    open_value: int = 0
    weighted_value: float = 0.0


@dataclass
class MonthValue:
    month: date
    open_value: int
    weighted_value: float

    @property
    def label(self) -> str:
        return f"{MONTH_NAMES[self.month.month - 1]} {self.month.year}"


@dataclass
class ChannelRow:
    channel: str
    campaign: str | None  # None: the channel's own row; else one of its campaigns
    leads: int
    demos_held: int
    customers: int
    won_value: int
    median_days_to_customer: float | None = None

    @property
    def conversion_rate(self) -> float | None:
        return self.customers / self.leads if self.leads else None


@dataclass
class ValueFigures:
    touch: str
    won_count: int
    won_value: int
    open_value: int
    weighted_value: float
    weights: dict[str, int]
    months: list[MonthValue] = field(default_factory=list)
    by_owner: list[ValueRow] = field(default_factory=list)
    by_channel: list[ValueRow] = field(default_factory=list)
    channels: list[ChannelRow] = field(default_factory=list)

    @property
    def average_deal(self) -> float | None:
        return self.won_value / self.won_count if self.won_count else None

    @classmethod
    def from_json(cls, figures: dict) -> "ValueFigures":
        return cls(
            touch=figures["touch"],
            won_count=figures["won_count"],
            won_value=figures["won_value"],
            open_value=figures["open_value"],
            weighted_value=figures["weighted_value"],
            weights=figures["weights"],
            months=[
                MonthValue(**{**month, "month": date.fromisoformat(month["month"])}) for month in figures["months"]
            ],
            by_owner=[ValueRow(**row) for row in figures["by_owner"]],
            by_channel=[ValueRow(**row) for row in figures["by_channel"]],
            channels=[ChannelRow(**row) for row in figures["channels"]],
        )


def _months_ahead(today: date, count: int = MONTHS_AHEAD) -> list[date]:
    months, year, month = [], today.year, today.month
    for _ in range(count):
        months.append(date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _owner_labels(owner_ids: set) -> dict[uuid.UUID | None, str]:
    ids = {owner_id for owner_id in owner_ids if owner_id}
    names = dict(db.session.execute(sa.select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}
    return {**names, None: UNASSIGNED}


def build_value(
    report_filter: ReportFilter, now: datetime, percentiles, ended_by_channel: dict[tuple, int]
) -> ValueFigures:
    """`percentiles` is queries._percentiles (per group of a samples subquery: the median per channel);
    `ended_by_channel` the period's ended passes per (channel, campaign) (queries.EndedPasses)."""
    weights = stage_weights()
    channel = report_filter.channel_column
    filters = report_filter.lead_conditions()
    start, end = report_filter.bounds(now)
    by_owner: dict[uuid.UUID | None, ValueRow] = {}
    by_channel: dict[str, ValueRow] = {}

    def rows_for(owner_id, channel_name) -> tuple[ValueRow, ValueRow]:
        return (
            by_owner.setdefault(owner_id, ValueRow(label="")),
            by_channel.setdefault(channel_name, ValueRow(label=channel_name)),
        )

    # Won in the period: by when the lead became a customer.
    won = db.session.execute(
        sa.select(Lead.owner_id, channel, sa.func.count(), sa.func.coalesce(sa.func.sum(Lead.deal_value), 0))
        .where(Lead.status == LeadStatus.CONVERTED.value, Lead.converted_at >= start, Lead.converted_at < end, *filters)
        .group_by(Lead.owner_id, channel)
    )
    won_count = won_value = 0
    for owner_id, channel_name, count, total in won:
        for row in rows_for(owner_id, channel_name):
            row.won_count += count
            row.won_value += int(total)
        won_count, won_value = won_count + count, won_value + int(total)

    # The open pipeline now, by stage: unweighted, and weighted by the stage's probability.
    open_statuses = [status.value for status in OPEN_STATUSES]
    open_rows = db.session.execute(
        sa.select(Lead.status, Lead.owner_id, channel, sa.func.sum(Lead.estimated_value))
        .where(Lead.status.in_(open_statuses), Lead.estimated_value.is_not(None), *filters)
        .group_by(Lead.status, Lead.owner_id, channel)
    )
    open_value, weighted_value = 0, 0.0
    for status, owner_id, channel_name, total in open_rows:
        weighted = int(total) * weights.get(status, 0) / 100
        for row in rows_for(owner_id, channel_name):
            row.open_value += int(total)
            row.weighted_value += weighted
        open_value, weighted_value = open_value + int(total), weighted_value + weighted

    # Expected value per close month, the next six months.
    months = _months_ahead(oslo_today(now))
    month_totals = {month: [0, 0.0] for month in months}
    month_rows = db.session.execute(
        sa.select(Lead.status, Lead.expected_close_month, sa.func.sum(Lead.estimated_value))
        .where(
            Lead.status.in_(open_statuses),
            Lead.expected_close_month >= months[0],
            Lead.expected_close_month <= months[-1],
            Lead.estimated_value.is_not(None),
            *filters,
        )
        .group_by(Lead.status, Lead.expected_close_month)
    )
    for status, month, total in month_rows:
        if month in month_totals:
            month_totals[month][0] += int(total)
            month_totals[month][1] += int(total) * weights.get(status, 0) / 100

    owners = _owner_labels(set(by_owner))
    for owner_id, row in by_owner.items():
        row.label = owners.get(owner_id, UNASSIGNED)
    return ValueFigures(
        touch=report_filter.touch,
        won_count=won_count,
        won_value=won_value,
        open_value=open_value,
        weighted_value=weighted_value,
        weights=weights,
        months=[MonthValue(month, int(values[0]), values[1]) for month, values in month_totals.items()],
        by_owner=sorted(by_owner.values(), key=lambda row: (-row.won_value, -row.weighted_value, row.label)),
        by_channel=sorted(by_channel.values(), key=lambda row: (-row.won_value, -row.weighted_value, row.label)),
        channels=_channel_table(report_filter, now, percentiles, ended_by_channel),
    )


def _channel_table(
    report_filter: ReportFilter, now: datetime, percentiles, ended_by_channel: dict[tuple, int]
) -> list[ChannelRow]:
    """«Etter kanal»: the period's leads (passes) per channel, each channel followed by its campaigns."""
    channel = report_filter.channel_column
    conditions = report_filter.conditions(now)
    campaign = report_filter.campaign_column
    customer = Lead.status == LeadStatus.CONVERTED.value
    demo_held = sa.or_(
        customer, sa.and_(Lead.demo_at.is_not(None), Lead.demo_cancelled_at.is_(None), Lead.demo_at <= now)
    )
    counts = (
        sa.func.count(),
        sa.func.count().filter(demo_held),
        sa.func.count().filter(customer),
        sa.func.coalesce(sa.func.sum(sa.case((customer, Lead.deal_value), else_=0)), 0),
    )
    medians: dict[str, float | None] = {}
    if db.session.get_bind().dialect.name == "postgresql":
        # The median time to customer per channel and per campaign from the same scan: one more grouping set.
        to_customer = sa.case((sa.and_(customer, Lead.converted_at.is_not(None)), _seconds_to_customer()))
        rows = []
        for per_channel, channel_name, campaign_name, *figures, median in db.session.execute(
            sa.select(
                sa.func.grouping(campaign),
                channel,
                campaign,
                *counts,
                sa.func.percentile_cont(0.5).within_group(to_customer),
            )
            .where(*conditions)
            .group_by(sa.func.grouping_sets(sa.tuple_(channel, campaign), sa.tuple_(channel)))
        ):
            days = median / 86400 if median is not None else None
            if per_channel:
                medians[channel_name] = days
            else:
                medians[f"{channel_name}\x1f{campaign_name or NO_CAMPAIGN}"] = days
                rows.append((channel_name, campaign_name, *figures))
    else:
        rows = db.session.execute(sa.select(channel, campaign, *counts).where(*conditions).group_by(channel, campaign))
        medians = _median_days_to_customer(report_filter, now, channel, campaign, percentiles)
    tallies: dict[str, dict[str | None, list[int]]] = {}
    for channel_name, campaign_name, leads, held, customers, value in rows:
        totals = tallies.setdefault(channel_name, {}).setdefault(campaign_name, [0, 0, 0, 0])
        for index, amount in enumerate((leads, held, customers, int(value))):
            totals[index] += amount
    # Ended passes (lead_passes) that began in the period: one more lead each, lost, in its lead's channel.
    for (channel_name, campaign_name), leads in ended_by_channel.items():
        tallies.setdefault(channel_name, {}).setdefault(campaign_name, [0, 0, 0, 0])[0] += leads
    table = []
    for channel_name, campaigns in tallies.items():
        sums = [sum(values[index] for values in campaigns.values()) for index in range(4)]
        table.append(ChannelRow(channel_name, None, *sums, medians.get(channel_name)))
        named = sorted(
            ((name or NO_CAMPAIGN, values) for name, values in campaigns.items()), key=lambda i: (-i[1][0], i[0])
        )
        if len(named) > 1 or named[0][0] != NO_CAMPAIGN:
            for name, values in named:
                table.append(ChannelRow(channel_name, name, *values, medians.get(f"{channel_name}\x1f{name}")))
    order = {
        name: (-row.customers, -row.leads, name) for row in table if row.campaign is None for name in [row.channel]
    }
    return sorted(table, key=lambda row: (order[row.channel], row.campaign is not None))


def _seconds_to_customer():
    if db.session.get_bind().dialect.name == "postgresql":
        return sa.func.date_part("epoch", Lead.converted_at - pass_start(), type_=sa.Float)
    return (sa.func.julianday(Lead.converted_at) - sa.func.julianday(pass_start())) * 86400.0


def _median_days_to_customer(report_filter, now, channel, campaign, percentiles) -> dict[str, float | None]:
    """SQLite: the medians from a UNION ALL of two groupings, interpolated by queries._percentiles."""
    seconds = _seconds_to_customer()
    conditions = [
        Lead.status == LeadStatus.CONVERTED.value,
        Lead.converted_at.is_not(None),
        *report_filter.conditions(now),
    ]
    campaign_name = sa.func.coalesce(campaign, NO_CAMPAIGN)
    samples = sa.union_all(
        sa.select(channel.label("grp"), seconds.label("value")).where(*conditions),
        sa.select((channel + "\x1f" + campaign_name).label("grp"), seconds.label("value")).where(*conditions),
    ).subquery("samples")
    return {
        group: (values[0] / 86400 if values and values[0] is not None else None)
        for group, values in percentiles(samples, (0.5,)).items()
    }
