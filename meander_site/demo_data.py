"""Realistic Norwegian demo leads for trying the board and for benchmarks (`flask --app app demo-data`)."""

import random
import secrets
import uuid
from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa

from . import attribution, business_days, confirmations
from .extensions import db
from .models import (
    Booking,
    Lead,
    LeadSource,
    LeadStatus,
    LeadStatusChange,
    OrganizationSize,
    OutboxMessage,
    User,
    new_masked_ref,
    utcnow,
)

FIRST_NAMES = [
    "Kari",
    "Ola",
    "Ingrid",
    "Lars",
    "Sigrid",
    "Jonas",
    "Nora",
    "Henrik",
    "Emma",
    "Magnus",
    "Ida",
    "Sander",
    "Thea",
    "Eirik",
    "Maja",
    "Håkon",
    "Sofie",
    "Øyvind",
    "Astrid",
    "Bjørn",
    "Solveig",
    "Åse",
    "Tobias",
    "Hanne",
]
LAST_NAMES = [
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Kristiansen",
    "Jensen",
    "Karlsen",
    "Berg",
    "Haugen",
    "Hagen",
    "Eriksen",
    "Bakken",
    "Solberg",
    "Strand",
    "Lie",
    "Dahl",
    "Lunde",
    "Sæther",
    "Moen",
]
ORGANIZATION_KINDS = [
    "Kreftforeningen",
    "Mental Helse",
    "LHL",
    "Norges Blindeforbund",
    "Røde Kors",
    "Kirkens Bymisjon",
    "Landsforeningen for hjertesyke",
    "Norsk Revmatikerforbund",
    "Diabetesforbundet",
    "Foreningen for hjertesyke barn",
    "Pårørendealliansen",
    "Frivillighetssentralen",
    "Hørselshemmedes Landsforbund",
    "Astma- og Allergiforbundet",
]
PLACES = [
    "Oslo",
    "Bergen",
    "Trondheim",
    "Stavanger",
    "Tromsø",
    "Bodø",
    "Kristiansand",
    "Drammen",
    "Ålesund",
    "Hamar",
    "Lillehammer",
    "Molde",
    "Alta",
    "Fredrikstad",
    "Haugesund",
    "Gjøvik",
    "Harstad",
    "Narvik",
    "Arendal",
    "Skien",
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
SOURCE_WEIGHTS = {
    LeadSource.WEBSITE: 60,
    LeadSource.REFERRAL: 12,
    LeadSource.EVENT: 12,
    LeadSource.PHONE: 8,
    LeadSource.EMAIL: 5,
    LeadSource.OTHER: 3,
}
LOST_REASON_WEIGHTS = {
    "other_solution": 25,
    "price": 20,
    "no_need": 25,
    "no_response": 20,
    "not_a_fit": 7,
    "other": 3,
}
# How far a lead gets, and how long each stage takes (median days): what a B2B pipeline of ours looks like.
ADVANCE_CHANCE = {
    LeadStatus.NEW: 0.85,
    LeadStatus.CONTACTED: 0.7,
    LeadStatus.QUALIFIED: 0.75,
    LeadStatus.DEMO_SCHEDULED: 0.45,
}
MEDIAN_STAGE_DAYS = {
    LeadStatus.NEW: 1.5,
    LeadStatus.CONTACTED: 5,
    LeadStatus.QUALIFIED: 8,
    LeadStatus.DEMO_SCHEDULED: 12,
}
SKIP_CHANCE = 0.08  # e.g. a call that qualifies on the spot
NEXT_STEP_TEXT = {
    LeadStatus.NEW: "Første kontakt",
    LeadStatus.CONTACTED: "Følg opp og kvalifiser",
    LeadStatus.QUALIFIED: "Avtal demo",
    LeadStatus.DEMO_SCHEDULED: "Følg opp etter demoen",
}
DEMO_COLLEAGUES = [
    ("Kari Salg", "kari.salg"),
    ("Ola Oppfølging", "ola.oppfolging"),
    ("Ingrid Innsalg", "ingrid.innsalg"),
]
# Where website leads came from: (utm_source, utm_medium, campaign, months it ran, weight, how well it converts).
CAMPAIGNS = [
    ("nyhetsbrev", "e-post", "vinter", (12, 1, 2), 14, 1.1),
    ("nyhetsbrev", "e-post", "var", (3, 4, 5), 12, 1.1),
    ("nyhetsbrev", "e-post", "host", (9, 10, 11), 12, 1.1),
    ("google", "cpc", "likepersoner-sok", tuple(range(1, 13)), 18, 0.8),
    ("facebook", "social", "frivillighetsuka", (5, 6), 8, 0.7),
    ("linkedin", "social", "ledere-frivillighet", (1, 2, 3, 9, 10), 7, 0.9),
    ("frivillighetnorge", "partner", "partnerseminar", (4, 10, 11), 6, 1.4),
]
# Website leads without campaign parameters: some arrive from a search or a link, most typed the address.
REFERRER_WEIGHTS = {
    None: 60,
    "www.google.com": 20,
    "www.frivillighetnorge.no": 8,
    "www.facebook.com": 7,
    "www.bing.com": 5,
}
CAMPAIGN_SHARE = 0.55
BATCH_SIZE = 2000
ASCII_LETTERS = str.maketrans({"æ": "ae", "ø": "o", "å": "a", " ": "-"})


def _email_local(first: str, last: str, serial: int) -> str:
    return f"{first}.{last}.{serial}".lower().translate(ASCII_LETTERS)


def _stage_duration(status: LeadStatus, rng: random.Random) -> timedelta:
    return timedelta(days=MEDIAN_STAGE_DAYS[status] * rng.lognormvariate(0, 0.8))


def _journey(created_at, now, rng: random.Random, quality: float = 1.0) -> list[tuple[LeadStatus, LeadStatus, object]]:
    """The moves a lead made: forward, sometimes skipping a stage, possibly lost; none in the future."""
    moves, status, at = [], LeadStatus.NEW, created_at
    order = [
        LeadStatus.NEW,
        LeadStatus.CONTACTED,
        LeadStatus.QUALIFIED,
        LeadStatus.DEMO_SCHEDULED,
        LeadStatus.CONVERTED,
    ]
    while status in ADVANCE_CHANCE:
        at = at + _stage_duration(status, rng)
        if at >= now:
            break
        if rng.random() < min(0.95, ADVANCE_CHANCE[status] * quality):
            step = 2 if rng.random() < SKIP_CHANCE and status != LeadStatus.DEMO_SCHEDULED else 1
            target = order[min(order.index(status) + step, len(order) - 1)]
        else:
            target = LeadStatus.LOST
        moves.append((status, target, at))
        status = target
    return moves


def _fake_demo(status: LeadStatus, now, rng: random.Random, owner) -> dict:
    """A lead in «Demo avtalt» has its demo within two weeks, on the half hour in office hours (scheduling.py)."""
    if status != LeadStatus.DEMO_SCHEDULED:
        return {"demo_at": None, "demo_minutes": None, "demo_location": None, "demo_host_id": None}
    day = business_days.oslo_today(now) + timedelta(days=rng.randint(0, 14))
    local = datetime.combine(day, time(rng.randint(9, 15), rng.choice((0, 30))), tzinfo=business_days.OSLO)
    return {
        "demo_at": max(local.astimezone(UTC), now + timedelta(hours=1)),
        "demo_minutes": rng.choice((30, 30, 45, 60)),
        "demo_location": rng.choice(("https://meet.meander.no/demo", "Storgata 1, Oslo")),
        "demo_host_id": owner.id if owner else None,
    }


def _fake_lead(serial: int, run_tag: str, now, rng: random.Random, owners: list) -> tuple[dict, dict, dict, list[dict]]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    organization = f"{rng.choice(ORGANIZATION_KINDS)} {rng.choice(PLACES)}"
    source = rng.choices(list(SOURCE_WEIGHTS), weights=list(SOURCE_WEIGHTS.values()))[0]
    # More leads lately than a year ago: the site is growing.
    created_at = now - timedelta(seconds=int(365 * 24 * 3600 * rng.random() ** 1.3) + 60)
    touch, quality = _touch(source, created_at, rng)
    moves = _journey(created_at, now, rng, quality)
    status = moves[-1][1] if moves else LeadStatus.NEW
    status_changed_at = moves[-1][2] if moves else created_at
    owner = rng.choice(owners) if owners and (moves or rng.random() < 0.5) else None
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
    next_step, next_step_due_at = None, None
    if status in NEXT_STEP_TEXT:
        next_step = NEXT_STEP_TEXT[status]
        if status == LeadStatus.NEW:
            next_step_due_at = business_days.end_of_next_business_day(created_at)
        else:
            # Most next steps lie ahead; some have slipped, as they do.
            next_step_due_at = now + timedelta(days=rng.uniform(-3, 14))
    demo = _fake_demo(status, now, rng, owner)
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
        "owner_id": owner.id if owner else None,
        "next_step": next_step,
        "next_step_due_at": next_step_due_at,
        "first_contact_due_at": business_days.end_of_next_business_day(created_at),
        **{f"first_{name}": value for name, value in touch.items()},
        **{f"latest_{name}": value for name, value in touch.items()},
        **demo,
    }
    booking = {
        "id": uuid.uuid4(),
        "lead_id": lead_id,
        **contact,
        "ip_address": lead["ip_address"],
        "created_at": created_at,
        **touch,
    }
    # Every demo booking's confirmation went out, as a sent row in the one outbox.
    confirmation = {
        "id": uuid.uuid4(),
        "kind": confirmations.KIND,
        "recipient": contact["email"],
        "lead_id": lead_id,
        "booking_id": booking["id"],
        "created_at": created_at,
        "send_after": created_at,
        "attempts": 1,
        "sent_at": lead["confirmation_sent_at"],
    }
    changes = [
        {
            "id": uuid.uuid4(),
            "lead_id": lead_id,
            "from_status": origin.value,
            "to_status": target.value,
            "changed_by_id": owner.id if owner else None,
            "changed_by_name": owner.name if owner else "Demodata",
            "changed_at": at,
            "reason": rng.choices(list(LOST_REASON_WEIGHTS), weights=list(LOST_REASON_WEIGHTS.values()))[0]
            if target == LeadStatus.LOST
            else None,
        }
        for origin, target, at in moves
    ]
    return lead, booking, confirmation, changes


def _touch(source: LeadSource, created_at, rng: random.Random) -> tuple[dict, float]:
    """The campaign a website lead came by (one running in its month), or the site that sent it; and how well
    leads from there tend to convert. Staff-typed leads (phone, event, …) carry none."""
    touch = dict.fromkeys(attribution.TOUCH_FIELDS)
    if source != LeadSource.WEBSITE:
        return touch, 1.0
    running = [campaign for campaign in CAMPAIGNS if created_at.month in campaign[3]]
    if running and rng.random() < CAMPAIGN_SHARE:
        utm_source, medium, name, _, _, quality = rng.choices(running, weights=[c[4] for c in running])[0]
        touch.update(utm_source=utm_source, utm_medium=medium, utm_campaign=name)
        if utm_source == "google":
            touch["utm_term"] = rng.choice(["likepersoner system", "frivillig oppfølging", "likeperson app"])
        return touch, quality
    touch["referrer_host"] = rng.choices(list(REFERRER_WEIGHTS), weights=list(REFERRER_WEIGHTS.values()))[0]
    return touch, 1.0


def demo_owners() -> list[User]:
    """The active staff, plus demo colleagues (who cannot sign in) so the board shows several owners."""
    for name, local in DEMO_COLLEAGUES:
        email = f"{local}@demo.meander.no"
        if db.session.execute(sa.select(User.id).where(User.email == email)).first() is None:
            # Not an argon2 hash, so no password matches it: nobody can sign in as a demo colleague.
            unusable = "!" + secrets.token_hex(16)
            db.session.add(User(email=email, name=name, password_hash=unusable, is_active=True, notify_new_leads=False))
    db.session.commit()
    return list(db.session.execute(sa.select(User).where(User.is_active).order_by(User.name)).scalars())


def create_demo_leads(count: int, seed: int | None = None) -> int:
    rng = random.Random(seed)
    run_tag = uuid.uuid4().hex[:6]  # emails stay unique across repeated runs
    now = utcnow()
    owners = demo_owners()
    for start in range(0, count, BATCH_SIZE):
        rows = [
            _fake_lead(serial, run_tag, now, rng, owners) for serial in range(start, min(start + BATCH_SIZE, count))
        ]
        db.session.execute(sa.insert(Lead), [lead for lead, _, _, _ in rows])
        db.session.execute(sa.insert(Booking), [booking for _, booking, _, _ in rows])
        db.session.execute(sa.insert(OutboxMessage), [confirmation for _, _, confirmation, _ in rows])
        changes = [change for _, _, _, lead_changes in rows for change in lead_changes]
        if changes:
            db.session.execute(sa.insert(LeadStatusChange), changes)
        db.session.commit()
    return count
