"""Operator commands for the outbox: `flask --app app mail …`."""

import click
from flask.cli import AppGroup

from . import sweep

mail_cli = AppGroup("mail", help="The outbox: confirmations, staff notifications, every mail the site sends.")


@mail_cli.command("retry-pending")
def retry_pending_command():
    """Re-enqueue every mail in the outbox that has not been sent yet (closed ones stay closed)."""
    count = sweep.retry_pending()
    click.echo(f"Re-enqueued {count} unsent mail(s).")


@mail_cli.command("sweep")
def sweep_command():
    """Enqueue mail that is due and unsent (the worker does this every half minute)."""
    count = sweep.sweep_due()
    click.echo(f"Enqueued {count} due mail(s).")
