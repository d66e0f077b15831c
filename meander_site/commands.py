"""Operator commands: `flask --app app mail …`."""

import click
from flask.cli import AppGroup

from . import confirmations

mail_cli = AppGroup("mail", help="Confirmation mail.")


@mail_cli.command("retry-pending")
def retry_pending_command():
    """Re-enqueue every confirmation that has not been sent yet."""
    count = confirmations.retry_pending()
    click.echo(f"Re-enqueued {count} unsent confirmation(s).")


@mail_cli.command("sweep")
def sweep_command():
    """Enqueue confirmations that are due and unsent (the worker does this every half minute)."""
    count = confirmations.sweep_due_confirmations()
    click.echo(f"Enqueued {count} due confirmation(s).")
