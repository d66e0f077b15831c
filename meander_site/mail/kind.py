"""What a kind of mail is: the builder that turns claimed outbox rows into a message, and what else changes
when one is sent. The kinds themselves live with their areas and are listed in mail/kinds.py."""

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from flask_mail import Message


@dataclass(frozen=True)
class Kind:
    name: str
    # Builds the mail from the claimed rows (one, or a batch for batched kinds): rows of outbox_messages'
    # columns plus lead_<field> for the job's LEAD_MAIL_FIELDS (None without a lead). None: nothing to send
    # any more (what it was about was erased), and the rows are closed without sending.
    build: Callable[[list[sa.Row]], Message | None]
    # A batched kind's unsent rows for one recipient go out as one mail.
    batched: bool = False
    # Keeps state elsewhere in step with the sent rows (the lead's «confirmation sent»): builds a statement from
    # the sent rows' lead ids, their ids (expanding bind parameters) and the time; run with the send's record,
    # after the job has locked those leads' rows (so two jobs recording mails of one lead take turns).
    on_sent: Callable[[sa.BindParameter, sa.BindParameter, sa.BindParameter], sa.Executable] | None = None
    # A kind delivered otherwise than by SMTP (a chat webhook): called with the claimed rows instead of `build` and
    # the SMTP send. It returns None when delivered, or a reason to close the rows without retrying; it raises to be
    # retried on the outbox's schedule, like a failed send.
    deliver: Callable[[list[sa.Row]], str | None] | None = None
