"""Realistic Norwegian demo leads for trying the board and for benchmarks (`flask --app app demo-data`)."""

import random
import uuid
from datetime import timedelta

import sqlalchemy as sa

from .extensions import db
from .models import Booking, Lead, LeadSource, LeadStatus, LeadStatusChange, OrganizationSize, new_masked_ref, utcnow

FIRST_NAMES = [
    "Kari", "Ola", "Ingrid", "Lars", "Sigrid", "Jonas", "Nora", "Henrik", "Emma", "Magnus", "Ida", "Sander",
    "Thea", "Eirik", "Maja", "Håkon", "Sofie", "Øyvind", "Astrid", "Bjørn", "Solveig", "Åse", "Tobias", "Hanne",
]
LAST_NAMES = [
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen", "Jensen", "Karlsen",
    "Berg", "Haugen", "Hagen", "Eriksen", "Bakken", "Solberg", "Strand", "Lie", "Dahl", "Lunde", "Sæther", "Moen",
]
ORGANIZATION_KINDS = [
    "Kreftforeningen", "Mental Helse", "LHL", "Norges Blindeforbund", "Røde Kors", "Kirkens Bymisjon",
    "Landsforeningen for hjertesyke", "Norsk Revmatikerforbund", "Diabetesforbundet", "Foreningen for hjertesyke barn",
    "Pårørendealliansen", "Frivillighetssentralen", "Hørselshemmedes Landsforbund", "Astma- og Allergiforbundet",
]
PLACES = [
    "Oslo", "Bergen", "Trondheim", "Stavanger", "Tromsø", "Bodø", "Kristiansand", "Drammen", "Ålesund", "Hamar",
    "Lillehammer", "Molde", "Alta", "Fredrikstad", "Haugesund", "Gjøvik", "Harstad", "Narvik", "Arendal", "Skien",
]
ROLES = ["Koordinator", "Frivillighetskoordinator", "IT-ansvarlig", "Daglig leder", "Fagansvarlig", "Rådgiver"]
SOLUTIONS = ["Excel og e-post", "Papirskjemaer", "Et eget system", "Ingenting ennå", "Google Sheets", None]
TIMINGS = ["Tirsdager etter kl. 12", "Så snart som mulig", "Uke 3 eller 4", "Formiddag passer best", None]
NOTES = [
    "Vi har rundt 80 likepersoner spredt over hele landet.",
    "Vil gjerne se hvordan oppfølgingssamtaler registreres.",
    "Styret vurderer nytt system til våren.",
    None,
    None,
]
# Roughly what a real pipeline looks like: most leads are early.
STATUS_WEIGHTS = {
    LeadStatus.NEW: 30,
    LeadStatus.CONTACTED: 20,
    LeadStatus.QUALIFIED: 15,
    LeadStatus.DEMO_SCHEDULED: 12,
    LeadStatus.CONVERTED: 10,
    LeadStatus.LOST: 13,
}
SOURCE_WEIGHTS = {
    LeadSource.WEBSITE: 60,
    LeadSource.REFERRAL: 12,
    LeadSource.EVENT: 12,
    LeadSource.PHONE: 8,
    LeadSource.EMAIL: 5,
    LeadSource.OTHER: 3,
}
BATCH_SIZE = 2000
ASCII_LETTERS = str.maketrans({"æ": "ae", "ø": "o", "å": "a", " ": "-"})


def _email_local(first: str, last: str, serial: int) -> str:
    return f"{first}.{last}.{serial}".lower().translate(ASCII_LETTERS)


def _fake_lead(serial: int, run_tag: str, now, rng: random.Random) -> tuple[dict, dict, dict | None]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    organization = f"{rng.choice(ORGANIZATION_KINDS)} {rng.choice(PLACES)}"
    status = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
    source = rng.choices(list(SOURCE_WEIGHTS), weights=list(SOURCE_WEIGHTS.values()))[0]
    created_at = now - timedelta(seconds=rng.randint(60, 365 * 24 * 3600))
    status_changed_at = created_at + (now - created_at) * rng.random() if status != LeadStatus.NEW else created_at
    contact = {
        "first_name": first,
        "last_name": last,
        "email": f"{_email_local(first, last, serial)}.{run_tag}@demo.meander.no",
        "phone": f"+479{rng.randint(1000000, 9999999)}",
        "organization_name": organization,
        "role_title": rng.choice(ROLES),
        "organization_size": rng.choice(OrganizationSize.values() + [None]),
        "current_solution": rng.choice(SOLUTIONS),
        "preferred_demo_timing": rng.choice(TIMINGS),
        "notes": rng.choice(NOTES),
    }
    lead_id = uuid.uuid4()
    lead = {
        "id": lead_id,
        **contact,
        "status": status.value,
        "source": source.value,
        "masked_ref": new_masked_ref(),
        "ip_address": f"192.0.2.{rng.randint(1, 254)}",  # TEST-NET-1: never a real address
        "confirmation_sent_at": created_at + timedelta(seconds=2),
        "created_at": created_at,
        "updated_at": status_changed_at,
        "status_changed_at": status_changed_at,
        "booking_count": 1,
    }
    booking = {
        "id": uuid.uuid4(),
        "lead_id": lead_id,
        **contact,
        "ip_address": lead["ip_address"],
        "created_at": created_at,
        "confirmation_sent_at": lead["confirmation_sent_at"],
        "confirmation_attempts": 1,
    }
    change = None
    if status != LeadStatus.NEW:
        change = {
            "id": uuid.uuid4(),
            "lead_id": lead_id,
            "from_status": LeadStatus.NEW.value,
            "to_status": status.value,
            "changed_by_name": "Demodata",
            "changed_at": status_changed_at,
            "reason": "other" if status == LeadStatus.LOST else None,
        }
    return lead, booking, change


def create_demo_leads(count: int, seed: int | None = None) -> int:
    rng = random.Random(seed)
    run_tag = uuid.uuid4().hex[:6]  # emails stay unique across repeated runs
    now = utcnow()
    for start in range(0, count, BATCH_SIZE):
        rows = [_fake_lead(serial, run_tag, now, rng) for serial in range(start, min(start + BATCH_SIZE, count))]
        db.session.execute(sa.insert(Lead), [lead for lead, _, _ in rows])
        db.session.execute(sa.insert(Booking), [booking for _, booking, _ in rows])
        changes = [change for _, _, change in rows if change]
        if changes:
            db.session.execute(sa.insert(LeadStatusChange), changes)
        db.session.commit()
    return count
