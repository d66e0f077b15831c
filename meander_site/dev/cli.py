"""`flask demo-data`: a Flask CLI plugin (pyproject.toml's flask.commands), so the production app factory never
imports the dev package."""

import random

import click
from flask import current_app
from flask.cli import with_appcontext

from ..core.money import kroner
from ..leads.statuses import LeadStatus
from . import demo_data


@click.command("demo-data")
@click.option("--leads", "lead_count", type=click.IntRange(1, 1_000_000), default=100, show_default=True)
@click.option(
    "--fresh",
    "fresh_count",
    type=click.IntRange(0, 50),
    default=demo_data.FRESH_LEADS,
    show_default=True,
    help="Website leads booked now through the booking itself: owners in rotation, two of them past their time.",
)
@with_appcontext
def demo_data_command(lead_count: int, fresh_count: int):
    """Create realistic Norwegian demo leads spread over every status and the past year (never in production)."""
    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException(
            "demo-data does not run with MEANDER_ENV=production: it would mix made-up leads and colleagues "
            "into the real pipeline."
        )
    added = demo_data.create_demo_leads(lead_count)
    demo_data.book_fresh_leads(added, random.Random(), fresh_count)
    click.echo(describe_demo_data(added))


def describe_demo_data(added: demo_data.DemoDataAdded) -> str:
    statuses = ", ".join(f"{added.by_status[status.value]} {status.label}" for status in LeadStatus)
    colleagues = f"{added.owning_colleagues} demo colleagues"
    colleagues += f" ({added.colleagues_added} added now)" if added.colleagues_added else ""
    return "\n".join(
        [
            f"Created {added.leads} demo leads (emails @demo.meander.no; their confirmations count as sent):",
            f"  by status: {statuses}",
            f"  owners: {added.owned} leads spread over {colleagues}, who cannot sign in, and "
            f"{added.owning_staff} staff account(s); {added.leads - added.owned} «Ufordelt»",
            f"  next steps: {added.next_steps}, {added.overdue_next_steps} of them overdue",
            f"  demos: {added.demos} booked, all within the next two weeks",
            f"  campaigns: {added.from_campaigns} website leads came by {len(added.campaigns)} campaigns",
            f"  values: {added.valued} leads with an estimate, {kroner(added.won_value)} won",
            f"  channels: {len(added.channels)}; {added.reopened} lost leads reopened for a new pass",
        ]
        + (
            [
                f"Booked {len(added.fresh_owners)} website leads just now, owners in rotation: "
                f"{', '.join(added.fresh_owners)}; {added.fresh_overdue} of them past their first-contact time "
                "(the worker sends the reminder and the escalation: see /dev/mail)",
            ]
            if added.fresh_owners
            else []
        )
    )
