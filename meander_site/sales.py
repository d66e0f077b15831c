"""The sales pipeline: what the board shows, and every change staff make to a lead. Knows nothing of HTTP.

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

from . import attribution, confirmations, follow_up, leads, next_steps, scheduling
from .extensions import db
from .leads import ContactDetails, LeadValidationError, StatusTransitionError
from .models import (
    CONTACT_FIELDS,
    AuditEvent,
    Booking,
    Lead,
    LeadSource,
    LeadStatus,
    LeadStatusChange,
    LeadStatusCount,
    OrganizationSize,
    OutboxMessage,
    User,
    utcnow,
)

log = logging.getLogger(__name__)

CARDS_PER_COLUMN = 50
MAX_SEARCH_LENGTH = 100

PERIODS = {
    "7d": ("Siste 7 dager", timedelta(days=7)),
    "30d": ("Siste 30 dager", timedelta(days=30)),
    "90d": ("Siste 90 dager", timedelta(days=90)),
    "365d": ("Siste 12 måneder", timedelta(days=365)),
}

LOST_REASONS = {
    "other_solution": "Valgte en annen løsning",
    "price": "Pris eller budsjett",
    "no_need": "Ikke behov nå",
    "no_response": "Fikk ikke kontakt",
    "not_a_fit": "Passer ikke for organisasjonen",
    "other": "Annet",
}
MAX_NOTE_LENGTH = 1000
# Moves the board asks details for before it posts them: «Tapt» needs a reason, «Kunde» may carry a note.
MOVES_ASKING_FOR_DETAILS = frozenset({LeadStatus.LOST, LeadStatus.CONVERTED})
REASON_REQUIRED = frozenset({LeadStatus.LOST})

# Staff type in leads from every channel but the website form, which only the public booking creates.
STAFF_SOURCES = tuple(source for source in LeadSource if source != LeadSource.WEBSITE)
EMAIL_TAKEN = "En annen lead har allerede denne e-postadressen. Søk den opp i stedet."


class LeadNotFound(LookupError):
    pass


# --- what the board shows --------------------------------------------------------------------------


def _printable(text: str) -> str:
    # Control characters never match a name, and a NUL is refused by PostgreSQL: drop them from searches.
    return "".join(" " if leads.has_control_characters(character) else character for character in text)


SORT_ORDERS = {
    "due": "Forfaller først",
    "oldest": "Eldste først",
    "newest": "Nyeste først",
}
# «Demo avtalt» can also read in the order the demos happen, and does by default.
DEMO_ORDER = ("demo", "Demotid")
OWNER_FILTERS = {"mine": "Mine", "none": "Ufordelt"}


def default_sort(status: LeadStatus) -> str:
    # Open columns are worked in the order things fall due; final ones are read newest first.
    if status == LeadStatus.DEMO_SCHEDULED:
        return DEMO_ORDER[0]
    return "newest" if status in leads.FINAL_STATUSES else "due"


def sort_orders_for(status: LeadStatus) -> dict[str, str]:
    if status == LeadStatus.DEMO_SCHEDULED:
        return {DEMO_ORDER[0]: DEMO_ORDER[1], **SORT_ORDERS}
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
            conditions.append(Lead.owner_id.is_(None))
        elif self.owner:
            conditions.append(Lead.owner_id == uuid.UUID(self.owner))
        if self.overdue:
            conditions.append(overdue_condition(now))
        return conditions


def overdue_condition(now: datetime | None = None):
    return sa.and_(
        Lead.status.notin_([status.value for status in leads.FINAL_STATUSES]),
        Lead.next_step_due_at < (now or utcnow()),
    )


def overdue_count(board_filter: BoardFilter) -> int:
    """The header's «N forfalt»: open leads in this view whose next step is past due."""
    now = utcnow()
    return db.session.execute(
        sa.select(sa.func.count()).select_from(Lead).where(overdue_condition(now), *board_filter.conditions(now))
    ).scalar_one()


@dataclass
class Card:
    lead: Lead
    mail_state: str  # "sent", "pending", "failing", "capped" or "none"
    mail_error: str | None = None
    owner: User | None = None
    now: datetime = field(default_factory=utcnow)

    @property
    def has_newer_details(self) -> bool:
        """A later booking brought details that differ from the lead's, and staff have not taken them yet."""
        return self.lead.newer_details_booking_id is not None

    @property
    def allowed_moves(self) -> list[LeadStatus]:
        return leads.allowed_moves(self.lead.status)

    @property
    def is_final(self) -> bool:
        return leads.parse_status(self.lead.status) in leads.FINAL_STATUSES

    @property
    def is_overdue(self) -> bool:
        due = self.lead.next_step_due_at
        return not self.is_final and due is not None and next_steps.is_overdue(due, self.now)

    @property
    def demo_at(self) -> datetime | None:
        """The demo the card shows: only while the lead waits for it in «Demo avtalt»."""
        if self.lead.status != LeadStatus.DEMO_SCHEDULED.value or self.lead.demo_cancelled_at is not None:
            return None
        return self.lead.demo_at

    @property
    def demo_label(self) -> str | None:
        return scheduling.short_demo_label(self.demo_at, self.now) if self.demo_at else None

    @property
    def demo_is_today(self) -> bool:
        return scheduling.is_today(self.demo_at, self.now)

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
    return (Lead.created_at, Lead.id), order == "newest"


@dataclass
class Column:
    status: LeadStatus
    count: int
    order: str = "due"
    cards: list[Card] = field(default_factory=list)
    has_more: bool = False

    @property
    def asks_for_details(self) -> bool:
        return self.status in MOVES_ASKING_FOR_DETAILS

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
        key = {"due": last.next_step_due_at, "demo": last.demo_at}.get(self.order, last.created_at)
        return f"{key.isoformat() if key else ''}|{last.id}"


def column_counts(board_filter: BoardFilter) -> dict[str, int]:
    if board_filter.is_empty:
        rows = db.session.execute(sa.select(LeadStatusCount.status, LeadStatusCount.lead_count))
    else:
        rows = db.session.execute(
            sa.select(Lead.status, sa.func.count()).where(*board_filter.conditions()).group_by(Lead.status)
        )
    counts = dict.fromkeys(LeadStatus.values(), 0)
    counts.update({status: count for status, count in rows})
    return counts


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
            sa.func.count(sa.case((mail_table.closed_reason == confirmations.CAPPED_REASON, 1))),
        )
        .where(
            mail_table.lead_id.in_(lead_ids),
            mail_table.kind == confirmations.KIND,
            mail_table.sent_at.is_(None),
        )
        .group_by(mail_table.lead_id)
    )
    mail = {lead_id: (attempts, error, due, capped) for lead_id, attempts, error, due, capped in unsent}
    cards = {}
    for lead in lead_rows:
        attempts, error, due, capped = mail.get(lead.id, (0, None, 0, 0))
        if due and attempts and error:
            state = "failing"
        elif due:
            state = "pending"
        elif capped:
            state, error = "capped", confirmations.CAPPED
        else:
            state = "sent" if lead.confirmation_sent_at else "none"
        cards[lead.id] = Card(
            lead=lead,
            mail_state=state,
            mail_error=error if state in ("failing", "capped") else None,
            owner=owners.get(lead.owner_id),
        )
    return cards


def board(board_filter: BoardFilter, per_column: int = CARDS_PER_COLUMN) -> list[Column]:
    """Every column with its count and first cards in its order: four queries, whatever the database holds."""
    pages = [_column_page(status, board_filter, None, per_column + 1).subquery().select() for status in LeadStatus]
    shown_ids = [row[0] for row in db.session.execute(sa.union_all(*pages))]
    cards = _cards_for(shown_ids)
    counts = column_counts(board_filter)
    columns = {
        status: Column(status=status, count=counts[status.value], order=board_filter.sort_for(status))
        for status in LeadStatus
    }
    for lead_id in shown_ids:
        columns[LeadStatus(cards[lead_id].lead.status)].cards.append(cards[lead_id])
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
    """Leads booked, rebooked, edited or moved since the board last looked (for the 30 s poll)."""
    ids = list(
        db.session.execute(
            sa.select(Lead.id)
            .where(Lead.updated_at > since, *board_filter.conditions())
            .order_by(Lead.updated_at)
            .limit(limit)
        ).scalars()
    )
    cards = _cards_for(ids)
    return [cards[lead_id] for lead_id in ids]


def get_card(lead_id: uuid.UUID) -> Card:
    cards = _cards_for([lead_id])
    if lead_id not in cards:
        raise LeadNotFound(lead_id)
    return cards[lead_id]


# --- changing leads -------------------------------------------------------------------------------


def get_lead(lead_id: uuid.UUID) -> Lead:
    lead = db.session.get(Lead, lead_id)
    if lead is None:
        raise LeadNotFound(lead_id)
    return lead


@dataclass(frozen=True)
class MoveDetails:
    reason: str | None = None
    note: str | None = None
    # What comes next, as staff set it in the move dialog; None: the proposal for the new status.
    next_step: next_steps.NextStep | None = None
    # The demo a move to «Demo avtalt» schedules.
    demo: scheduling.DemoPlan | None = None


def validate_move_details(
    to_status: LeadStatus, raw: Mapping[str, str], default_host_id: uuid.UUID | None = None
) -> MoveDetails:
    reason = (raw.get("reason") or "").strip() or None
    note = (raw.get("note") or "").strip() or None
    errors = {}
    if to_status in REASON_REQUIRED and reason not in LOST_REASONS:
        errors["reason"] = "Velg hvorfor leaden er tapt."
    if to_status not in REASON_REQUIRED:
        reason = None
    problem = note and leads.text_problem("notes", note, "Notatet", MAX_NOTE_LENGTH)
    if problem:
        errors["note"] = problem
    next_step = None
    if to_status not in leads.FINAL_STATUSES and (raw.get("next_step") or raw.get("next_step_due")):
        try:
            next_step = follow_up.validate_next_step(raw.get("next_step"), raw.get("next_step_due"))
        except LeadValidationError as error:
            errors.update(error.errors)
    demo = None
    if to_status == LeadStatus.DEMO_SCHEDULED:
        try:
            demo = scheduling.validate_demo(raw, default_host_id)
        except LeadValidationError as error:
            errors.update(error.errors)
    if errors:
        raise LeadValidationError(errors)
    return MoveDetails(reason=reason, note=note, next_step=next_step, demo=demo)


def move(lead_id: uuid.UUID, to_status: str, by: User, details: MoveDetails = MoveDetails()) -> Lead:
    """Move a lead forward with a compare-and-set, so two people moving one card never move it backward."""
    target = leads.parse_status(to_status)
    lead = get_lead(lead_id)
    current = lead.status
    leads.check_transition(current, target)
    scheduling.require_plan(target, details.demo)
    now = utcnow()
    demo_at = details.demo.starts_at if details.demo else None
    step = details.next_step or next_steps.proposal_after_move(target.value, now, demo_at=demo_at)
    if target in leads.FINAL_STATUSES:
        step = None
    moved = db.session.execute(
        sa.update(Lead)
        .where(Lead.id == lead_id, Lead.status == current)
        .values(
            status=target.value,
            status_changed_at=now,
            updated_at=now,
            next_step=step.text if step else None,
            next_step_due_at=step.due_at if step else None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        db.session.rollback()
        latest = get_lead(lead_id)
        db.session.refresh(latest)
        raise StatusTransitionError(
            current,
            target.value,
            f"Noen andre flyttet nettopp leaden til «{latest.status_label}». Kortet står nå der.",
        )
    db.session.add(
        LeadStatusChange(
            lead_id=lead_id,
            from_status=current,
            to_status=target.value,
            changed_by_id=by.id,
            changed_by_name=by.name,
            changed_at=now,
            reason=details.reason,
            note=details.note,
        )
    )
    mails = scheduling.apply_move(lead, current, target, details.demo, by, now)
    # Read before the commit expires `by`: logging must not cost a query.
    moved_by = str(by.id)
    db.session.commit()
    scheduling.dispatch(mails)
    log.info(
        "lead moved",
        extra={
            "event": "status_moved",
            "lead_id": str(lead_id),
            "from_status": current,
            "to_status": target.value,
            "user_id": moved_by,
        },
    )
    db.session.refresh(lead)
    return lead


@dataclass
class BookingWithChanges:
    booking: Booking
    changed: dict[str, tuple[str | None, str | None]]  # field -> (before, after)
    mail: OutboxMessage | None = None  # its confirmation, if one was ordered

    @property
    def mail_state(self) -> str:
        return booking_mail_state(self.mail)

    @property
    def mail_note(self) -> str | None:
        """Why a capped confirmation did not go, in staff's words."""
        return confirmations.CAPPED if confirmations.is_capped(self.mail) else None


def booking_mail_state(mail: OutboxMessage | None) -> str:
    """One booking's confirmation, from its outbox row: "sent", "pending" (ordered, not sent yet), "capped"
    (never to be sent: too many to one address) or "not_ordered" (no row, or one closed for another reason)."""
    if mail is None:
        return "not_ordered"
    if mail.sent_at is not None:
        return "sent"
    if mail.closed_at is None:
        return "pending"
    return "capped" if confirmations.is_capped(mail) else "not_ordered"


def booking_history(lead_id: uuid.UUID) -> list[BookingWithChanges]:
    """Every submission, each with what it changed compared with the one before."""
    bookings = list(
        db.session.execute(
            sa.select(Booking).where(Booking.lead_id == lead_id).order_by(Booking.created_at, Booking.id)
        ).scalars()
    )
    mails = confirmations.messages_for([booking.id for booking in bookings])
    history, previous = [], None
    for booking in bookings:
        changed = {}
        if previous is not None:
            for name in CONTACT_FIELDS:
                before, after = getattr(previous, name), getattr(booking, name)
                if before != after:
                    changed[name] = (before, after)
        history.append(BookingWithChanges(booking=booking, changed=changed, mail=mails.get(booking.id)))
        previous = booking
    return list(reversed(history))


def update_contact(lead_id: uuid.UUID, raw: Mapping[str, object]) -> Lead:
    """Staff edit the contact fields; the same rules as the public form. Nothing else is editable here."""
    lead = get_lead(lead_id)
    details = leads.validate_contact_details(raw, for_staff=True)
    if _email_taken(details.email, lead_id):
        raise LeadValidationError({"email": EMAIL_TAKEN})
    for name, value in details.as_dict().items():
        setattr(lead, name, value)
    # From now on the lead's details are staff's: a public rebooking only offers its own.
    lead.staff_edited_at = utcnow()
    lead.newer_details_booking_id = None
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        # Another edit or booking took the address between our check and our commit: the unique index
        # decided, and the salesperson gets the same answer as when the check catches it.
        db.session.rollback()
        if _email_taken(details.email, lead_id):
            raise LeadValidationError({"email": EMAIL_TAKEN}) from None
        raise
    return lead


def _email_taken(email: str, lead_id: uuid.UUID) -> bool:
    return db.session.execute(sa.select(Lead.id).where(Lead.email == email, Lead.id != lead_id)).first() is not None


def newer_details(lead: Lead) -> tuple[Booking, dict[str, tuple[str | None, str | None]]] | None:
    """The booking waiting for staff's decision and how its details differ: field -> (lead's, booking's)."""
    if lead.newer_details_booking_id is None:
        return None
    booking = db.session.get(Booking, lead.newer_details_booking_id)
    if booking is None or booking.lead_id != lead.id:
        return None
    differences = {
        name: (getattr(lead, name), getattr(booking, name))
        for name in CONTACT_FIELDS
        if getattr(lead, name) != getattr(booking, name)
    }
    return booking, differences


def apply_booking_details(lead_id: uuid.UUID, booking_id: uuid.UUID, by: User) -> Lead:
    """«Bruk disse opplysningene»: the booking's details become the lead's, recorded on the booking."""
    lead = get_lead(lead_id)
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.lead_id != lead.id:
        raise LeadNotFound(booking_id)
    if booking.email != lead.email:
        taken = db.session.execute(sa.select(Lead.id).where(Lead.email == booking.email, Lead.id != lead_id)).first()
        if taken:
            raise LeadValidationError(
                {"email": "En annen lead har allerede e-postadressen fra denne bookingen. Søk den opp i stedet."}
            )
    now = utcnow()
    for name in CONTACT_FIELDS:
        setattr(lead, name, getattr(booking, name))
    lead.staff_edited_at = now
    if lead.newer_details_booking_id == booking.id:
        lead.newer_details_booking_id = None
    booking.details_applied_at = now
    booking.details_applied_by_name = by.name
    applied_by = str(by.id)
    db.session.commit()
    log.info(
        "booking details applied",
        extra={
            "event": "booking_details_applied",
            "lead_id": str(lead_id),
            "booking_id": str(booking_id),
            "user_id": applied_by,
        },
    )
    return lead


def staff_source(value: object) -> LeadSource:
    """The channel of a lead staff type in: any of STAFF_SOURCES, never the website form's."""
    try:
        source = LeadSource(value)
    except ValueError:
        source = None
    if source not in STAFF_SOURCES:
        raise LeadValidationError({"source": "Velg hvor leaden kom fra."})
    return source


def validate_staff_lead(raw: Mapping[str, object]) -> tuple[ContactDetails, LeadSource]:
    """The new-lead form's fields, every problem reported at once."""
    errors, details, source = {}, None, None
    try:
        details = leads.validate_contact_details(raw, for_staff=True)
    except LeadValidationError as error:
        errors.update(error.errors)
    try:
        source = staff_source(raw.get("source"))
    except LeadValidationError as error:
        errors.update(error.errors)
    if errors:
        raise LeadValidationError(errors)
    return details, source


def create_by_staff(details: ContactDetails, source: object, send_confirmation: bool) -> leads.BookingResult:
    """A lead from the phone, an event or a referral: the same upsert as the public form, no rate limit."""
    channel = staff_source(source)
    return leads.book_demo(details, ip_address=None, source=channel, with_confirmation=send_confirmation, by_staff=True)


def erase(lead_id: uuid.UUID, by: User) -> set[uuid.UUID]:
    """GDPR erasure: the lead, its bookings and status history go; an audit entry without personal data stays.

    Returns the ids of the bookings erased. A booking racing the erasure is never lost with it: the first
    statement writes the lead row, so its row lock (SQLite: the write lock) makes every booking for this
    lead wait until the erasure commits, and that booking then makes a new lead. Without it, a booking
    committed between our DELETEs would be removed by the lead's ON DELETE CASCADE.
    """
    now = utcnow()
    locked = db.session.execute(
        sa.update(Lead).where(Lead.id == lead_id).values(updated_at=now).execution_options(synchronize_session=False)
    ).rowcount
    if locked != 1:
        db.session.rollback()
        raise LeadNotFound(lead_id)
    db.session.execute(sa.delete(LeadStatusChange).where(LeadStatusChange.lead_id == lead_id))
    erased = set(
        db.session.execute(
            sa.delete(Booking)
            .where(Booking.lead_id == lead_id)
            .returning(Booking.id)
            .execution_options(synchronize_session=False)
        ).scalars()
    )
    db.session.execute(sa.delete(Lead).where(Lead.id == lead_id))
    erased_by = by.id
    db.session.add(AuditEvent(action="lead_erased", subject_id=lead_id, actor_id=erased_by, at=now))
    db.session.commit()
    log.info(
        "lead erased",
        extra={"event": "lead_erased", "lead_id": str(lead_id), "user_id": str(erased_by), "bookings": len(erased)},
    )
    return erased


def erased_at(lead_id: uuid.UUID) -> datetime | None:
    """When this lead was erased, if it was: the audit entry is all that is left of it."""
    return db.session.execute(
        sa.select(sa.func.max(AuditEvent.at)).where(
            AuditEvent.action == "lead_erased", AuditEvent.subject_id == lead_id
        )
    ).scalar_one_or_none()


def latest_booking(lead_id: uuid.UUID) -> Booking | None:
    return db.session.execute(
        sa.select(Booking).where(Booking.lead_id == lead_id).order_by(Booking.created_at.desc()).limit(1)
    ).scalar_one_or_none()


def confirmation_to_resend(lead_id: uuid.UUID) -> Booking | None:
    """What «Send bekreftelsen nå» sends: the latest booking's confirmation, while it is unsent."""
    booking = latest_booking(lead_id)
    if booking is None:
        return None
    mail = confirmations.message_for(booking.id)
    return booking if mail is None or mail.sent_at is None else None
