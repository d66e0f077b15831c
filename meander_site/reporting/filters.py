"""Which leads a report counts: a period of Oslo calendar days by arrival, and the board's filters."""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa

from ..business_days import OSLO, oslo_today
from ..leads.models import Lead
from ..pipeline.board import BoardFilter

PERIODS = {
    "month": "Denne måneden",
    "30d": "Siste 30 dager",
    "quarter": "Dette kvartalet",
    "year": "I år",
    "custom": "Fra–til",
}


DEFAULT_PERIOD = "year"
# «Siste kontakt»: the report's channel read from the latest touch instead of the first.
TOUCHES = {"first": "Første kontakt", "latest": "Siste kontakt"}


def _parse_day(value: object) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _oslo_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=OSLO).astimezone(UTC)


def pass_start():
    """When the lead's current pass began: its arrival, or its reopening (leads/passes.py). Journeys are per pass.
    Written as idx_lead_report_pass (models.py) is, so PostgreSQL and SQLite read a period from that index."""
    return sa.func.coalesce(Lead.pass_started_at, Lead.created_at)


@dataclass(frozen=True)
class ReportFilter:
    """The report's period (by arrival date) and the board's filters, read from the query string."""

    period: str = DEFAULT_PERIOD
    date_from: date | None = None
    date_to: date | None = None
    board_filter: BoardFilter = field(default_factory=BoardFilter)
    errors: tuple[str, ...] = ()
    touch: str = "first"  # which touch names a lead's channel: "first" or "latest" («Siste kontakt»)

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
        touch = "latest" if args.get("touch") == "latest" else "first"
        return cls(
            period=period,
            date_from=date_from,
            date_to=date_to,
            board_filter=board_filter,
            errors=tuple(errors),
            touch=touch,
        )

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

    @property
    def channel_column(self):
        return Lead.latest_channel if self.touch == "latest" else Lead.first_channel

    @property
    def campaign_column(self):
        """The campaign of the touch that names the channel: «Etter kanal»'s second level."""
        return Lead.latest_utm_campaign if self.touch == "latest" else Lead.first_utm_campaign

    def conditions(self, now: datetime | None = None) -> list:
        """The leads whose current pass entered the funnel in the period (leads/passes.py): a first pass by its
        arrival, a reopened lead by its reopening. An ended pass counts in its own period (lead_passes).

        One range on pass_start(), not an OR of the two cases: the range is read from idx_lead_report_pass
        (migration 0017), an index on that very expression holding every column the report reads."""
        start, end = self.bounds(now)
        return [pass_start() >= start, pass_start() < end, *self.lead_conditions()]

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
            self.touch,
        ]

    def as_args(self) -> dict[str, str]:
        args = {"period": self.period, **self.board_filter.as_args()}
        if self.touch == "latest":
            args["touch"] = "latest"
        if self.period == "custom":
            args.update({"from": self.date_from.isoformat(), "to": self.date_to.isoformat()})
        return args
