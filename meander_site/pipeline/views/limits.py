"""The limits the staff forms render (maxlength, min, max), read from the rules that enforce them."""

from types import MappingProxyType

from ...assignment.first_contact import MAX_ATTEMPT_NOTE_LENGTH
from ...leads.models import MAX_NOTE_LENGTH
from ...scheduling.demos import MAX_LOCATION_LENGTH, MINUTES_RANGE
from ..board import MAX_SEARCH_LENGTH
from ..follow_up import MAX_NEXT_STEP_LENGTH

FORM_LIMITS = MappingProxyType(
    {
        "note": MAX_NOTE_LENGTH,
        "attempt_note": MAX_ATTEMPT_NOTE_LENGTH,
        "next_step": MAX_NEXT_STEP_LENGTH,
        "search": MAX_SEARCH_LENGTH,
        "demo_location": MAX_LOCATION_LENGTH,
        "demo_minutes_min": MINUTES_RANGE.start,
        "demo_minutes_max": MINUTES_RANGE.stop - 1,
    }
)
