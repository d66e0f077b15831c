"""What the board shows: its columns, cards, filters, order and counts. Knows nothing of HTTP; changes are in
moves.py, follow_up.py and contact_details.py.

The board's cost is fixed by what it shows: counts come from lead_status_counts (kept by triggers)
when nothing is filtered, card ids from one index-backed UNION of per-column LIMIT queries, then
those leads and their mail state in one query each.
"""

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ..accounts import team_settings
from ..accounts.models import User
from ..assignment import first_contact
from ..booking import confirmation_mail
from ..business_hours import DEFAULT_HOURS, BusinessHours
from ..core.clock import utcnow
from ..core.text import has_control_characters
from ..extensions import db
from ..leads import attribution
from ..leads.models import (
    Lead,
    LeadSource,
    LeadStatusCount,
    OrganizationSize,
)
from ..leads.next_step import FIRST_CONTACT, lead_is_overdue, overdue_condition
from ..leads.records import LeadNotFound
from ..leads.statuses import FINAL_STATUSES, LeadStatus, allowed_moves, parse_status
from ..mail.models import OutboxMessage
from ..scheduling import labels
from .moves import MOVES_ASKING_FOR_DETAILS, REASON_REQUIRED, VALUE_REQUIRED

log = logging.getLogger(__name__)

CARDS_PER_COLUMN = 50
MAX_SEARCH_LENGTH = 100

PERIODS = {
    "7d": ("Siste 7 dager", timedelta(days=7)),
    "30d": ("Siste 30 dager", timedelta(days=30)),
    "90d": ("Siste 90 dager", timedelta(days=90)),
    "365d": ("Siste 12 måneder", timedelta(days=365)),
}


# --- what the board shows --------------------------------------------------------------------------


def _printable(text: str) -> str:
    # Control characters never match a name, and a NUL is refused by PostgreSQL: drop them from searches.
    return "".join(" " if has_control_characters(character) else character for character in text)


SORT_ORDERS = {
    "due": "Forfaller først",
    "oldest": "Eldste først",
    "newest": "Nyeste først",
}
# «Demo avtalt» can also read in the order the demos happen, and does by default.
DEMO_ORDER = ("demo", "Demotid")
# «Ny» reads by the first-contact clock by default: the lead whose time runs out first on top.
RESPOND_ORDER = ("respond", "Svarfrist først")
OWNER_FILTERS = {"mine": "Mine", "none": "Ufordelt"}


# --- «Ufordelt» ----------------------------------------------------------------------------------------
# An open lead whose owner has been deactivated is the team's again: it shows and filters as «Ufordelt» (its
# owner_id is kept, so reactivating the person gives it back). A closed lead keeps showing who won or lost it.


def unassigned_condition() -> sa.ColumnElement[bool]:
    owner_deactivated = sa.select(User.id).where(User.id == Lead.owner_id, sa.not_(User.is_active)).exists()
    still_open = Lead.status.not_in([status.value for status in FINAL_STATUSES])
    return sa.or_(Lead.owner_id.is_(None), sa.and_(still_open, owner_deactivated))


def shown_owner(lead: Lead, owner: User | None) -> User | None:
    """The owner the board shows for a lead: None («Ufordelt») for an open lead of a deactivated colleague."""
    if owner is not None and not owner.is_active and parse_status(lead.status) not in FINAL_STATUSES:
        return None
    return owner


def default_sort(status: LeadStatus) -> str:
    # Open columns are worked in the order things fall due; final ones are read newest first.
    if status == LeadStatus.DEMO_SCHEDULED:
        return DEMO_ORDER[0]
    if status == LeadStatus.NEW:
        return RESPOND_ORDER[0]
    return "newest" if status in FINAL_STATUSES else "due"


def sort_orders_for(status: LeadStatus) -> dict[str, str]:
    if status == LeadStatus.DEMO_SCHEDULED:
        return {DEMO_ORDER[0]: DEMO_ORDER[1], **SORT_ORDERS}
    if status == LeadStatus.NEW:
        return {RESPOND_ORDER[0]: RESPOND_ORDER[1], **SORT_ORDERS}
    return SORT_ORDERS


@dataclass(frozen=True)
class BoardFilter:
    """Search, filters and column order, read from the query string so a view can be bookmarked."""

    q: str = ""
    source: str = ""
    campaign: str = ""  # the lead's first-touch utm_campaign
    organization_size: str = ""
    period: str = ""
    owner: str = ""  # "mine", "none" or a user id
    overdue: str = ""  # "1": only leads whose next step is overdue
    sorts: tuple[tuple[str, str], ...] = ()  # (status, order) where a column differs from its default
    viewer_id: uuid.UUID | None = field(default=None, compare=False)

    @classmethod
    def from_args(cls, args: Mapping[str, str], viewer_id: uuid.UUID | None = None) -> "BoardFilter":
        # Unknown values are ignored rather than refused: an old bookmark still opens the board.
        source = args.get("source", "")
        size = args.get("organization_size", "")
        period = args.get("period", "")
        owner = args.get("owner", "")
        if owner not in OWNER_FILTERS:
            try:
                owner = str(uuid.UUID(owner))
            except (ValueError, TypeError, AttributeError):
                owner = ""
        sorts = tuple(
            (status.value, args[f"sort_{status.value}"])
            for status in LeadStatus
            if args.get(f"sort_{status.value}") in sort_orders_for(status)
            and args[f"sort_{status.value}"] != default_sort(status)
        )
        return cls(
            q=" ".join(_printable(args.get("q") or "").split())[:MAX_SEARCH_LENGTH],
            source=source if source in LeadSource.values() else "",
            campaign=attribution.clean_value(args.get("campaign")) or "",
            organization_size=size if size in OrganizationSize.values() else "",
            period=period if period in PERIODS else "",
            owner=owner if owner != "mine" or viewer_id else "",
            overdue="1" if args.get("overdue") == "1" else "",
            sorts=sorts,
            viewer_id=viewer_id,
        )

    @property
    def is_empty(self) -> bool:
        """No condition on which leads show (column order does not count)."""
        conditions = (self.q, self.source, self.campaign, self.organization_size, self.period, self.owner, self.overdue)
        return not any(conditions)

    def as_args(self) -> dict[str, str]:
        args = {
            key: getattr(self, key)
            for key in ("q", "source", "campaign", "organization_size", "period", "owner", "overdue")
            if getattr(self, key)
        }
        args.update({f"sort_{status}": order for status, order in self.sorts})
        return args

    def sort_for(self, status: LeadStatus) -> str:
        return dict(self.sorts).get(status.value, default_sort(status))

    def conditions(self, now: datetime | None = None) -> list:
        conditions = []
        if self.q:
            pattern = "%" + self.q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            full_name = sa.func.lower(Lead.first_name + " " + Lead.last_name)
            conditions.append(
                sa.or_(
                    full_name.like(pattern, escape="\\"),
                    Lead.email.like(pattern, escape="\\"),
                    sa.func.lower(Lead.organization_name).like(pattern, escape="\\"),
                )
            )
        if self.source:
            conditions.append(Lead.source == self.source)
        if self.campaign:
            conditions.append(Lead.first_utm_campaign == self.campaign)
        if self.organization_size:
            conditions.append(Lead.organization_size == self.organization_size)
        if self.period:
            conditions.append(Lead.created_at >= (now or utcnow()) - PERIODS[self.period][1])
        if self.owner == "mine":
            conditions.append(Lead.owner_id == self.viewer_id)
        elif self.owner == "none":
            conditions.append(unassigned_condition())
        elif self.owner:
            conditions.append(Lead.owner_id == uuid.UUID(self.owner))
        if self.overdue:
            conditions.append(overdue_condition(now or utcnow()))
        return conditions


def overdue_count(board_filter: BoardFilter) -> int:
    """The header's «N forfalt»: open leads in this view whose next step is past due."""
    now = utcnow()
    return db.session.execute(
        sa.select(sa.func.count()).select_from(Lead).where(overdue_condition(now), *board_filter.conditions(now))
    ).scalar_one()


def past_due_count(board_filter: BoardFilter) -> int:
    """The «Ny» column's «N over svarfristen»: leads in this view still waiting for a first contact past its time."""
    now = utcnow()
    return db.session.execute(
        sa.select(sa.func.count())
        .select_from(Lead)
        .where(first_contact.past_due_condition(now), *board_filter.conditions(now))
    ).scalar_one()


@dataclass
class Card:
    lead: Lead
    mail_state: confirmation_mail.MailState
    mail_error: str | None = None
    owner: User | None = None
    now: datetime = field(default_factory=utcnow)
    hours: BusinessHours = DEFAULT_HOURS

    @property
    def clock(self) -> first_contact.Clock | None:
        """«Svar innen 1 t 20 min» while the lead waits in «Ny» for its first contact."""
        return first_contact.clock_of(self.lead, self.now, self.hours)

    @property
    def clock_is_the_next_step(self) -> bool:
        """The clock stands in for the next step «Første kontakt» (one line on the card, not two). An overdue step
        normally has a passed clock that says so; only a step staff dated before the clock keeps its «Forfalt» line."""
        if self.lead.next_step not in (None, FIRST_CONTACT):
            return False
        clock = self.clock
        return not self.is_overdue or (clock is not None and clock.passed)

    @property
    def has_newer_details(self) -> bool:
        """A later booking brought details that differ from the lead's, and staff have not taken them yet."""
        return self.lead.newer_details_booking_id is not None

    @property
    def value(self) -> int | None:
        """What the card shows as the deal's worth: the agreed value, else the estimate."""
        return self.lead.deal_value if self.lead.deal_value is not None else self.lead.estimated_value

    @property
    def allowed_moves(self) -> list[LeadStatus]:
        return allowed_moves(self.lead.status)

    @property
    def is_final(self) -> bool:
        return parse_status(self.lead.status) in FINAL_STATUSES

    @property
    def is_overdue(self) -> bool:
        return lead_is_overdue(self.lead, self.now)

    @property
    def demo_at(self) -> datetime | None:
        """The demo the card shows: only while the lead waits for it in «Demo avtalt»."""
        if self.lead.status != LeadStatus.DEMO_SCHEDULED.value or self.lead.demo_cancelled_at is not None:
            return None
        return self.lead.demo_at

    @property
    def demo_label(self) -> str | None:
        return labels.short_demo_label(self.demo_at, self.now) if self.demo_at else None

    @property
    def demo_is_today(self) -> bool:
        return labels.is_today(self.demo_at, self.now)

    @property
    def wants_new_time(self) -> bool:
        """«Ønsker ny tid»: the prospect asked for another time from the confirmation page."""
        return self.demo_at is not None and self.lead.demo_change_requested_at is not None


def _sort_key_columns(order: str):
    """The columns a column's cards are ordered by, ending with the id so the order is total."""
    if order == "due":
        return (Lead.next_step_due_at, Lead.id), False
    if order == "demo":
        return (Lead.demo_at, Lead.id), False
    if order == RESPOND_ORDER[0]:
        return (Lead.first_contact_due_at, Lead.id), False
    return (Lead.created_at, Lead.id), order == "newest"


@dataclass
class Column:
    status: LeadStatus
    count: int
    value_sum: int = 0
    order: str = "due"
    cards: list[Card] = field(default_factory=list)
    has_more: bool = False
    # «Ny»: how many of its leads (in this view) are past their first-contact time.
    past_due: int = 0

    @property
    def asks_for_details(self) -> bool:
        return self.status in MOVES_ASKING_FOR_DETAILS

    @property
    def requires_value(self) -> bool:
        """A move here asks for the agreed annual value (deal_value)."""
        return self.status in VALUE_REQUIRED

    @property
    def requires_reason(self) -> bool:
        return self.status in REASON_REQUIRED

    @property
    def asks_for_demo(self) -> bool:
        """A move here opens the scheduling dialog (templates/pipeline/_demo_dialog.html) first."""
        return self.status == LeadStatus.DEMO_SCHEDULED

    @property
    def sort_orders(self) -> dict[str, str]:
        return sort_orders_for(self.status)

    @property
    def cursor(self) -> str | None:
        if not self.cards:
            return None
        last = self.cards[-1].lead
        key = {"due": last.next_step_due_at, "demo": last.demo_at, RESPOND_ORDER[0]: last.first_contact_due_at}.get(
            self.order, last.created_at
        )
        return f"{key.isoformat() if key else ''}|{last.id}"


def column_totals(board_filter: BoardFilter) -> tuple[dict[str, int], dict[str, int]]:
    """Leads and the sum of their values per status: unfiltered from lead_status_counts (kept by triggers, so the
    header costs the same at any size), filtered from one grouped query over the filter's leads."""
    if board_filter.is_empty:
        rows = db.session.execute(
            sa.select(LeadStatusCount.status, LeadStatusCount.lead_count, LeadStatusCount.value_sum)
        )
    else:
        value = sa.func.coalesce(Lead.deal_value, Lead.estimated_value, 0)
        rows = db.session.execute(
            sa.select(Lead.status, sa.func.count(), sa.func.sum(value))
            .where(*board_filter.conditions())
            .group_by(Lead.status)
        )
    counts = dict.fromkeys(LeadStatus.values(), 0)
    sums = dict.fromkeys(LeadStatus.values(), 0)
    for status, count, total in rows:
        counts[status], sums[status] = count, int(total or 0)
    return counts, sums


def column_counts(board_filter: BoardFilter) -> dict[str, int]:
    return column_totals(board_filter)[0]


def _column_page(
    status: LeadStatus, board_filter: BoardFilter, after: tuple[datetime | None, uuid.UUID] | None, limit: int
):
    """One page of a column in its order, continuing after `after` (a keyset cursor: key value, id)."""
    order = board_filter.sort_for(status)
    (key, lead_id_column), descending = _sort_key_columns(order)
    query = sa.select(Lead.id).where(Lead.status == status.value, *board_filter.conditions())
    if after is not None:
        value, lead_id = after
        if value is None:
            # Past every dated card: only undated ones remain (they sort last).
            query = query.where(key.is_(None), lead_id_column > lead_id)
        elif descending:
            query = query.where(sa.or_(key < value, sa.and_(key == value, lead_id_column < lead_id)))
        else:
            query = query.where(sa.or_(key > value, sa.and_(key == value, lead_id_column > lead_id), key.is_(None)))
    if descending:
        return query.order_by(key.desc(), lead_id_column.desc()).limit(limit)
    return query.order_by(key.asc().nulls_last(), lead_id_column.asc()).limit(limit)


def _cards_for(lead_ids: list[uuid.UUID]) -> dict[uuid.UUID, Card]:
    """Leads, their owners and their mail state in three queries, whatever their number."""
    if not lead_ids:
        return {}
    lead_rows = list(db.session.execute(sa.select(Lead).where(Lead.id.in_(lead_ids))).scalars())
    owner_ids = {lead.owner_id for lead in lead_rows if lead.owner_id}
    owners = (
        {user.id: user for user in db.session.execute(sa.select(User).where(User.id.in_(owner_ids))).scalars()}
        if owner_ids
        else {}
    )
    # Every shown lead's unsent confirmations in one query: open ones (waiting or failing) and capped ones.
    mail_table = OutboxMessage.__table__.c
    is_open = mail_table.closed_at.is_(None)
    unsent = db.session.execute(
        sa.select(
            mail_table.lead_id,
            sa.func.max(sa.case((is_open, mail_table.attempts))),
            sa.func.max(sa.case((is_open, mail_table.last_error))),
            sa.func.count(sa.case((is_open, 1))),
            sa.func.count(sa.case((mail_table.closed_reason == confirmation_mail.CAPPED_REASON, 1))),
        )
        .where(
            mail_table.lead_id.in_(lead_ids),
            mail_table.kind == confirmation_mail.KIND,
            mail_table.sent_at.is_(None),
        )
        .group_by(mail_table.lead_id)
    )
    mail = {lead_id: (attempts, error, waiting, capped) for lead_id, attempts, error, waiting, capped in unsent}
    hours = team_settings.current().business_hours
    cards = {}
    for lead in lead_rows:
        attempts, error, waiting, capped = mail.get(lead.id, (0, None, 0, 0))
        state = confirmation_mail.mail_state(
            sent=lead.confirmation_sent_at is not None,
            waiting=bool(waiting),
            failed=bool(attempts and error),
            capped=bool(capped),
        )
        if state == confirmation_mail.MailState.CAPPED:
            error = confirmation_mail.CAPPED
        cards[lead.id] = Card(
            lead=lead,
            mail_state=state,
            mail_error=error
            if state in (confirmation_mail.MailState.FAILING, confirmation_mail.MailState.CAPPED)
            else None,
            owner=shown_owner(lead, owners.get(lead.owner_id)),
            hours=hours,
        )
    return cards


def board(board_filter: BoardFilter, per_column: int = CARDS_PER_COLUMN) -> list[Column]:
    """Every column with its count and first cards in its order: four queries, whatever the database holds."""
    pages = [_column_page(status, board_filter, None, per_column + 1).subquery().select() for status in LeadStatus]
    shown_ids = [row[0] for row in db.session.execute(sa.union_all(*pages))]
    cards = _cards_for(shown_ids)
    counts, sums = column_totals(board_filter)
    columns = {
        status: Column(
            status=status, count=counts[status.value], value_sum=sums[status.value], order=board_filter.sort_for(status)
        )
        for status in LeadStatus
    }
    for lead_id in shown_ids:
        columns[LeadStatus(cards[lead_id].lead.status)].cards.append(cards[lead_id])
    columns[LeadStatus.NEW].past_due = past_due_count(board_filter)
    for column in columns.values():
        # UNION ALL promises no order: each column is sorted again here, the same way the query did.
        column.cards.sort(key=_card_sort_key(column.order), reverse=column.order == "newest")
        column.has_more = len(column.cards) > per_column
        del column.cards[per_column:]
    return list(columns.values())


def _card_sort_key(order: str):
    if order == "due":
        return lambda card: (card.lead.next_step_due_at is None, card.lead.next_step_due_at or utcnow(), card.lead.id)
    if order == "demo":
        return lambda card: (card.lead.demo_at is None, card.lead.demo_at or utcnow(), card.lead.id)
    if order == RESPOND_ORDER[0]:
        return lambda card: (
            card.lead.first_contact_due_at is None,
            card.lead.first_contact_due_at or utcnow(),
            card.lead.id,
        )
    return lambda card: (card.lead.created_at, card.lead.id)


def parse_timestamp(value: str | None) -> datetime | None:
    """An ISO timestamp from a URL, in UTC; one without a zone is taken as UTC (what the board sends).

    None when it is not one, or lies beyond what a datetime holds once moved to UTC
    (0001-01-01T00:00:00+14:00): an unreadable cursor or `since` is ignored, never an error.
    """
    try:
        moment = datetime.fromisoformat(value or "")
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def parse_cursor(cursor: str | None) -> tuple[datetime | None, uuid.UUID] | None:
    key, separator, lead_id = (cursor or "").partition("|")
    moment = parse_timestamp(key)
    if not separator or (key and moment is None):
        return None
    try:
        return (moment, uuid.UUID(lead_id))
    except ValueError:
        return None


def more_cards(status: LeadStatus, board_filter: BoardFilter, cursor: str | None, per_page: int = CARDS_PER_COLUMN):
    after = parse_cursor(cursor)
    ids = list(db.session.execute(_column_page(status, board_filter, after, per_page + 1)).scalars())
    cards = _cards_for(ids[:per_page])
    column = Column(status=status, count=0, order=board_filter.sort_for(status))
    column.cards = [cards[lead_id] for lead_id in ids[:per_page]]
    column.has_more = len(ids) > per_page
    return column


def changed_cards(board_filter: BoardFilter, since: datetime, limit: int = 200) -> list[Card]:
    """Leads booked, rebooked, edited or moved since the board last looked (for the 30 s poll), and those whose
    first-contact time ran out meanwhile: their cards come back red."""
    now = utcnow()
    ids = list(
        db.session.execute(
            sa.select(Lead.id)
            .where(
                sa.or_(
                    Lead.updated_at > since,
                    sa.and_(first_contact.past_due_condition(now), Lead.first_contact_due_at > since),
                ),
                *board_filter.conditions(),
            )
            .order_by(Lead.updated_at)
            .limit(limit)
        ).scalars()
    )
    cards = _cards_for(ids)
    return [cards[lead_id] for lead_id in ids]


def running_clocks(board_filter: BoardFilter, limit: int = CARDS_PER_COLUMN) -> dict[uuid.UUID, first_contact.Clock]:
    """The first-contact clocks of the «Ny» column's leads that are due soonest, as of now: the 30 s poll brings
    their «Svar innen …» up to date on the page (business time moves on while nothing about the lead changes)."""
    now = utcnow()
    hours = team_settings.current().business_hours
    rows = db.session.execute(
        sa.select(Lead.id, Lead.first_contact_due_at)
        .where(first_contact.waiting_condition(), *board_filter.conditions())
        .order_by(Lead.first_contact_due_at, Lead.id)
        .limit(limit)
    )
    return {lead_id: first_contact.clock_at(due_at, now, hours) for lead_id, due_at in rows}


def get_card(lead_id: uuid.UUID) -> Card:
    cards = _cards_for([lead_id])
    if lead_id not in cards:
        raise LeadNotFound(lead_id)
    return cards[lead_id]


# --- changing leads -------------------------------------------------------------------------------
