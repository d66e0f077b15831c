"""Operator commands: `flask --app app mail …`."""

import sys

import click
from flask.cli import AppGroup, with_appcontext

from . import accounts, demo_data, outbox

mail_cli = AppGroup("mail", help="The outbox: confirmations, staff notifications, every mail the site sends.")


@mail_cli.command("retry-pending")
def retry_pending_command():
    """Re-enqueue every mail in the outbox that has not been sent yet (closed ones stay closed)."""
    count = outbox.retry_pending()
    click.echo(f"Re-enqueued {count} unsent mail(s).")


@mail_cli.command("sweep")
def sweep_command():
    """Enqueue mail that is due and unsent (the worker does this every half minute)."""
    count = outbox.sweep_due()
    click.echo(f"Enqueued {count} due mail(s).")


users_cli = AppGroup("users", help="Sales team accounts.")


def read_new_password() -> str:
    """Ask twice at a terminal; take one line when the password is piped in (scripts, provisioning)."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt="Repeat password")


@users_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="Name shown on the board and in the status history.")
def create_user_command(email: str, name: str):
    """Create a sales team account; asks for the password."""
    try:
        user = accounts.create_user(email, name, read_new_password())
    except accounts.AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Created {user.email} ({user.name}).")


@users_cli.command("set-password")
@click.argument("email")
def set_password_command(email: str):
    """Give an account a new password (asked twice, or one piped line); its sessions end."""
    try:
        user = accounts.set_password(email, read_new_password())
    except accounts.AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"New password set for {user.email}; their sessions are ended.")


@users_cli.command("list")
def list_users_command():
    """List accounts."""
    for user in accounts.all_users():
        state = "active" if user.is_active else "deactivated"
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
        click.echo(f"{user.email}\t{user.name}\t{state}\tlast login: {last}")


@users_cli.command("deactivate")
@click.argument("email")
def deactivate_user_command(email: str):
    """Deactivate an account and end its sessions."""
    try:
        user = accounts.deactivate(email)
    except accounts.AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Deactivated {user.email}; their sessions are ended.")


@click.command("demo-data")
@click.option("--leads", "lead_count", type=click.IntRange(1, 1_000_000), default=100, show_default=True)
@with_appcontext
def demo_data_command(lead_count: int):
    """Create realistic Norwegian demo leads spread over every status and the past year."""
    created = demo_data.create_demo_leads(lead_count)
    click.echo(f"Created {created} demo leads.")
