"""Moving a scheduled demo to another time, from the lead page and the board's scheduling dialog."""

import uuid

from flask import request
from flask_login import current_user

from ...leads.records import get_lead
from ...leads.validation import LeadValidationError
from ...scheduling import demos
from ...scheduling.labels import demo_label
from .blueprint import bp
from .responses import answer, conflict, refused


def demo_changed_message(lead) -> str:
    """What the loser of two moves at once reads: where the demo is now, as the other person left it."""
    if lead.demo_at is None or lead.demo_cancelled_at is not None:
        return "Noen andre endret nettopp demoen. Last siden på nytt og se hva som gjelder nå."
    return (
        f"Noen andre flyttet nettopp demoen til {demo_label(lead.demo_at)}. Kontakten har fått den tiden. "
        "Vil du likevel flytte den, velg tidspunkt på nytt."
    )


@bp.post("/leads/<uuid:lead_id>/demo")
def reschedule_demo(lead_id: uuid.UUID):
    lead = get_lead(lead_id)
    try:
        plan = demos.validate_demo(request.form, default_host_id=lead.demo_host_id or lead.owner_id)
        seen = demos.seen_sequence(request.form.get("demo_sequence"))
        lead = demos.reschedule(lead_id, plan, by=current_user.user, seen=seen)
    except LeadValidationError as error:
        return refused(lead_id, error)
    except demos.DemoNotScheduled:
        return answer(
            lead_id, f"«{lead.organization_name}» står ikke i «Demo avtalt». Flytt leaden dit først.", 409, "error"
        )
    except demos.DemoChanged:
        return conflict(lead_id, "demo_at", demo_changed_message(get_lead(lead_id)))
    text = (
        f"Demoen med «{lead.organization_name}» er flyttet til {demo_label(lead.demo_at)}. "
        "Kontakten og verten får en oppdatert invitasjon."
    )
    if clash := demos.host_clash_note(lead):
        text += " " + clash
    return answer(lead_id, text)
