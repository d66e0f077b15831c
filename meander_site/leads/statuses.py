"""A lead's statuses and the one rule for moving between them: forward only, within a pass through the pipeline."""

import functools

from ..core.columns import LabelledEnum


class LeadStatus(LabelledEnum):
    NEW = "new", "Ny"
    CONTACTED = "contacted", "Kontaktet"
    QUALIFIED = "qualified", "Kvalifisert"
    DEMO_SCHEDULED = "demo_scheduled", "Demo avtalt"
    CONVERTED = "converted", "Kunde"
    LOST = "lost", "Tapt"


PIPELINE_ORDER = (
    LeadStatus.NEW,
    LeadStatus.CONTACTED,
    LeadStatus.QUALIFIED,
    LeadStatus.DEMO_SCHEDULED,
    LeadStatus.CONVERTED,
)
FINAL_STATUSES = frozenset({LeadStatus.CONVERTED, LeadStatus.LOST})
OPEN_STATUSES = tuple(status for status in LeadStatus if status not in FINAL_STATUSES)


class StatusTransitionError(ValueError):
    """A move the pipeline does not allow; the message is Norwegian and meant for the salesperson."""

    def __init__(self, from_status: str, to_status: str, message: str):
        super().__init__(message)
        self.from_status = from_status
        self.to_status = to_status
        self.message = message


class UnknownStatusError(ValueError):
    def __init__(self, status: object):
        super().__init__(f"Ukjent status: {status!r}. Gyldige verdier: {', '.join(LeadStatus.values())}.")
        self.status = status


def parse_status(value: object) -> LeadStatus:
    try:
        return LeadStatus(value)
    except ValueError:
        raise UnknownStatusError(value) from None


def can_move(from_status: str, to_status: str) -> bool:
    """Forward only: skipping ahead is fine, lost is reachable from any open status, finals stay final."""
    origin, target = parse_status(from_status), parse_status(to_status)
    if origin in FINAL_STATUSES or origin == target:
        return False
    if target == LeadStatus.LOST:
        return True
    return PIPELINE_ORDER.index(target) > PIPELINE_ORDER.index(origin)


@functools.cache
def allowed_moves(from_status: str) -> tuple[LeadStatus, ...]:
    # Asked for every card on the board: six statuses, so the answers are worth keeping.
    return tuple(status for status in LeadStatus if can_move(from_status, status))


def check_transition(from_status: str, to_status: str) -> None:
    """Raise StatusTransitionError with a reason a salesperson understands, or return for an allowed move."""
    origin, target = parse_status(from_status), parse_status(to_status)
    if can_move(origin, target):
        return
    if origin == target:
        message = f"Leaden står allerede i «{origin.label}»."
    elif origin in FINAL_STATUSES:
        message = f"«{origin.label}» er en sluttstatus. En lead kan ikke flyttes derfra."
    else:
        message = f"En lead kan bare flyttes fremover i løpet. «{target.label}» ligger før «{origin.label}»."
    raise StatusTransitionError(origin.value, target.value, message)


LOST_REASONS = {
    "other_solution": "Valgte en annen løsning",
    "price": "Pris eller budsjett",
    "no_need": "Ikke behov nå",
    "no_response": "Fikk ikke kontakt",
    "not_a_fit": "Passer ikke for organisasjonen",
    "other": "Annet",
}
