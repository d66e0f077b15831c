"""Operator commands for staff accounts: `flask --app app users …`. The browser is the way (the team page,
invitations and reset links by mail); these are the fallback, e.g. for the first administrator, or when the last
one has lost their password or phone."""

import sys

import click
from flask.cli import AppGroup

from . import resets, roles, two_factor, users
from .models import Role

users_cli = AppGroup("users", help="Sales team accounts (the team page in the browser is the usual way).")


def read_new_password() -> str:
    """Ask twice at a terminal; take one line when the password is piped in (scripts, provisioning)."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt="Repeat password")


def existing_user(email: str):
    user = users.user_by_email(email)
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    return user


@users_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="Name shown on the board and in the status history.")
@click.option("--admin", is_flag=True, help="An administrator (the first account of an installation always is one).")
def create_user_command(email: str, name: str, admin: bool):
    """Create a sales team account; asks for the password."""
    try:
        user = users.create_user(
            email, name, read_new_password(), admin=admin or users.no_active_administrator(), by_operator=True
        )
    except users.AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Created {user.email} ({user.name}).")
    if user.is_admin:
        click.echo("An administrator: sign in and invite the rest of the team from the team page (/pipeline/team).")


@users_cli.command("set-password")
@click.argument("email")
def set_password_command(email: str):
    """Give an account a new password (asked twice, or one piped line); its sessions end."""
    try:
        user = resets.set_password_by_operator(email, read_new_password())
    except users.AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"New password set for {user.email}; their sessions are ended.")


@users_cli.command("list")
def list_users_command():
    """List accounts."""
    for user in users.all_users():
        state = "active" if user.is_active else "deactivated"
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
        role = Role(user.role).name.lower()
        two_step = "two-factor" if user.has_two_factor else "password only"
        click.echo(f"{user.email}\t{user.name}\t{role}\t{state}\t{two_step}\tlast login: {last}")


@users_cli.command("deactivate")
@click.argument("email")
def deactivate_user_command(email: str):
    """Deactivate an account and end its sessions (never the last active administrator)."""
    try:
        user = users.deactivate(email)
    except users.AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Deactivated {user.email}; their sessions are ended.")


@users_cli.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice([role.name.lower() for role in Role]))
def set_role_command(email: str, role: str):
    """Make an account an administrator or a seller (never the last active administrator a seller)."""
    user = existing_user(email)
    try:
        roles.change_role(user.id, Role[role.upper()], by_id=None)
    except roles.LastAdministrator:
        raise click.ClickException(f"{user.email} is the last active administrator.") from None
    click.echo(f"{user.email} is now {role}.")


@users_cli.command("reset-two-factor")
@click.argument("email")
def reset_two_factor_command(email: str):
    """Turn off an account's two-factor sign-in (a lost phone); they set it up again at their next sign-in if the
    team requires it."""
    user = existing_user(email)
    if two_factor.turn_off(user.id, by_id=None):
        click.echo(f"Two-factor sign-in of {user.email} is reset.")
    else:
        click.echo(f"{user.email} has no two-factor sign-in.")
