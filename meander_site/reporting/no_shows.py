"""The no-show rate: of the demos staff said how they went («Ble demoen holdt?»), the share where the prospect did not
come, overall and by the channel of the lead's first touch (Lead.first_channel). «Vi måtte avlyse» is left out: the
prospect was not the one who missed it. Counts the report period's leads, with the report's filters."""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ..extensions import db
from ..leads.models import Lead
from ..slots.outcomes import HELD, NO_SHOW
from .filters import ReportFilter


@dataclass(frozen=True)
class NoShowRate:
    label: str
    demos: int
    no_shows: int

    @property
    def rate(self) -> float | None:
        return self.no_shows / self.demos if self.demos else None


@dataclass(frozen=True)
class NoShows:
    overall: NoShowRate
    by_channel: list[NoShowRate]


def counts_by_channel(report_filter: ReportFilter, now: datetime | None = None) -> list[tuple[str, int, int]]:
    """(channel, demos answered, no-shows), most demos first: what the report keeps in its cached figures."""
    no_show = sa.func.sum(sa.case((Lead.demo_outcome == NO_SHOW, 1), else_=0))
    rows = db.session.execute(
        sa.select(Lead.first_channel, sa.func.count(), no_show)
        .where(*report_filter.conditions(now), Lead.demo_outcome.in_((HELD, NO_SHOW)))
        .group_by(Lead.first_channel)
        .order_by(sa.func.count().desc(), Lead.first_channel)
    ).all()
    return [(channel, demos, int(missed or 0)) for channel, demos, missed in rows]


def rates(counts: list[tuple[str, int, int]]) -> NoShows:
    by_channel = [NoShowRate(channel, demos, missed) for channel, demos, missed in counts]
    overall = NoShowRate("Alle", sum(rate.demos for rate in by_channel), sum(rate.no_shows for rate in by_channel))
    return NoShows(overall, by_channel)
