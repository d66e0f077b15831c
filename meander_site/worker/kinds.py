"""Every kind of mail the site sends, listed here and nowhere else.

A kind lives with its area (the confirmation with the booking, invitations with scheduling); this list is what
the worker's send job knows how to build, so which mails exist never depends on what happened to be imported.
"""

from ..accounts import mails as account_mails
from ..assignment.chat import CHAT
from ..assignment.escalation import FIRST_CONTACT
from ..booking.confirmation_mail import CONFIRMATION
from ..booking.team_notice import NEW_LEADS
from ..mail.kind import Kind
from ..pipeline.digest import DIGEST
from ..scheduling import mails as demo_mails
from ..scheduling.reminders import REMINDER
from ..slots import mails as slot_mails

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        CONFIRMATION,
        NEW_LEADS,
        DIGEST,
        FIRST_CONTACT,
        CHAT,
        *demo_mails.KINDS,
        REMINDER,
        *slot_mails.KINDS,
        *account_mails.KINDS,
    )
}
