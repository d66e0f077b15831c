"""Realistic Norwegian demo leads for trying the board and for benchmarks (`flask --app app demo-data`)."""

import random
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa

from .. import business_days, business_hours
from ..accounts.models import User
from ..booking import book_demo, confirmation_mail
from ..core.clock import utcnow
from ..extensions import db
from ..leads import attribution, passes, validation
from ..leads.channel import channel_of
from ..leads.models import Booking, Lead, LeadSource, LeadStatusChange, OrganizationSize, new_masked_ref
from ..leads.next_step import first_step
from ..leads.statuses import LeadStatus
from ..mail.models import OutboxMessage

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
    ("Kari Salg", "kari.salg@demo.meander.no"),
    ("Ola Oppfølging", "ola.oppfolging@demo.meander.no"),
    ("Ingrid Innsalg", "ingrid.innsalg@demo.meander.no"),
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
    """A lead in «Demo avtalt» has its demo within two weeks, on the half hour in office hours (scheduling/)."""
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


def _fake_lead(
    serial: int, run_tag: str, now, rng: random.Random, owners: list, within_days: int = 365
) -> tuple[dict, dict, dict, list[dict]]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    organization = f"{rng.choice(ORGANIZATION_KINDS)} {rng.choice(PLACES)}"
    source = rng.choices(list(SOURCE_WEIGHTS), weights=list(SOURCE_WEIGHTS.values()))[0]
    # More leads lately than a year ago: the site is growing.
    created_at = now - timedelta(seconds=int(within_days * 24 * 3600 * rng.random() ** 1.3) + 60)
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
    value = _fake_value(status, moves, now, rng)
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
        # The first-contact clock in business time; the worker's escalation is for today's leads (book_fresh_leads),
        # not a year of history.
        "first_contact_due_at": business_hours.first_contact_due(created_at),
        "first_contact_reminder_at": business_hours.halfway(created_at),
        "escalation_stage": 2,
        **{f"first_{name}": value for name, value in touch.items()},
        **{f"latest_{name}": value for name, value in touch.items()},
        "first_channel": channel_of(attribution.Touch(**touch)),
        "latest_channel": channel_of(attribution.Touch(**touch)),
        **demo,
        **value,
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
        "kind": confirmation_mail.KIND,
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


# Annual values a deal here tends to have, in whole kroner.
DEAL_SIZES = (12000, 18000, 24000, 36000, 48000, 60000, 96000, 120000, 180000)
ESTIMATED_FROM = {LeadStatus.QUALIFIED, LeadStatus.DEMO_SCHEDULED, LeadStatus.CONVERTED}
# Lost leads that booked again later and got a new pass (leads/passes.py).
REOPEN_SHARE = 0.04


def _fake_value(status: LeadStatus, moves, now, rng: random.Random) -> dict:
    """An estimate and close month once a lead reached «Kvalifisert»; the agreed value at «Kunde»."""
    reached = {target for _, target, _ in moves}
    value = {"estimated_value": None, "expected_close_month": None, "deal_value": None}
    if not reached & ESTIMATED_FROM:
        return value
    estimate = rng.choice(DEAL_SIZES)
    value["estimated_value"] = estimate
    if status in (LeadStatus.QUALIFIED, LeadStatus.DEMO_SCHEDULED):
        month = now.date().replace(day=1)
        for _ in range(rng.randint(0, 5)):
            month = (month + timedelta(days=32)).replace(day=1)
        value["expected_close_month"] = month
    if status == LeadStatus.CONVERTED:
        value["deal_value"] = int(round(estimate * rng.uniform(0.8, 1.2), -3))
    return value


def _reopen_some(lost: list[dict], now, rng: random.Random) -> list[dict]:
    """A few lost leads booked again a while after they were lost: each starts a new pass (leads/passes.py).
    The leads reopened, each with its first-contact due time (a new pass starts without an estimate)."""
    reopened = []
    for lead in lost:
        lost_at = lead["status_changed_at"]
        if rng.random() >= REOPEN_SHARE or (now - lost_at).days < 14:
            continue
        reopen_at = lost_at + timedelta(days=rng.uniform(7, (now - lost_at).days - 1))
        if passes.reopen(lead["id"], reopen_at):
            # Reopened months ago: history, not today's work for the worker's escalation (see book_fresh_leads).
            db.session.execute(sa.update(Lead).where(Lead.id == lead["id"]).values(escalation_stage=2))
            reopened.append({**lead, "next_step_due_at": first_step(reopen_at).due_at})
    return reopened


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


def demo_owners() -> tuple[list[User], int]:
    """The active staff, plus demo colleagues (who cannot sign in) so the board shows several owners; and how
    many of those colleagues were added now (a second run finds them)."""
    added = 0
    for name, email in DEMO_COLLEAGUES:
        if db.session.execute(sa.select(User.id).where(User.email == email)).first() is None:
            # Not an argon2 hash, so no password matches it: nobody can sign in as a demo colleague.
            unusable = "!" + secrets.token_hex(16)
            db.session.add(User(email=email, name=name, password_hash=unusable, is_active=True, notify_new_leads=False))
            added += 1
    db.session.commit()
    return list(db.session.execute(sa.select(User).where(User.is_active).order_by(User.name)).scalars()), added


@dataclass
class DemoDataAdded:
    """What one run wrote, counted from its rows as they are written: what `flask demo-data` reports."""

    colleague_ids: frozenset
    colleagues_added: int
    by_status: Counter = field(default_factory=Counter)
    owned: int = 0
    owner_ids: set = field(default_factory=set)
    next_steps: int = 0
    overdue_next_steps: int = 0
    demos: int = 0
    from_campaigns: int = 0
    campaigns: set = field(default_factory=set)
    # Leads booked just now through the booking itself: their owners in the order the rotation gave them.
    fresh_owners: list = field(default_factory=list)
    fresh_overdue: int = 0
    valued: int = 0
    won_value: int = 0
    channels: set = field(default_factory=set)
    reopened: int = 0

    @property
    def leads(self) -> int:
        return sum(self.by_status.values())

    @property
    def owning_colleagues(self) -> int:
        return len(self.owner_ids & self.colleague_ids)

    @property
    def owning_staff(self) -> int:
        """Real accounts among the owners: whoever was active when the leads were made."""
        return len(self.owner_ids - self.colleague_ids)

    def count(self, lead: dict, now: datetime) -> None:
        self.by_status[lead["status"]] += 1
        self.valued += lead["estimated_value"] is not None
        self.won_value += lead["deal_value"] or 0
        self.channels.add(lead["first_channel"])
        if lead["owner_id"] is not None:
            self.owned += 1
            self.owner_ids.add(lead["owner_id"])
        if lead["next_step"] is not None:
            self.next_steps += 1
            self.overdue_next_steps += lead["next_step_due_at"] < now
        self.demos += lead["demo_at"] is not None
        if lead["first_utm_campaign"] is not None:
            self.from_campaigns += 1
            self.campaigns.add(lead["first_utm_campaign"])


def _insert(rows: list[tuple[dict, dict, dict, list[dict]]], added: DemoDataAdded, now) -> None:
    for lead, _, _, _ in rows:
        added.count(lead, now)
    db.session.execute(sa.insert(Lead), [lead for lead, _, _, _ in rows])
    db.session.execute(sa.insert(Booking), [booking for _, booking, _, _ in rows])
    db.session.execute(sa.insert(OutboxMessage), [confirmation for _, _, confirmation, _ in rows])
    changes = [change for _, _, _, lead_changes in rows for change in lead_changes]
    if changes:
        db.session.execute(sa.insert(LeadStatusChange), changes)


# Leads in an open column got there lately: a column short of leads is filled from arrivals of the last weeks.
RECENT_DAYS = 30
OPEN_COLUMNS = (LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED, LeadStatus.DEMO_SCHEDULED)


def create_demo_leads(count: int, seed: int | None = None, *, open_at_least: int = 0) -> DemoDataAdded:
    """`count` leads of the last year; with `open_at_least`, more recent ones where an open column would hold fewer
    (a small demo has few open leads: most of a year's leads are decided), so boards of any size show full columns.
    """
    rng = random.Random(seed)
    run_tag = uuid.uuid4().hex[:6]  # emails stay unique across repeated runs
    now = utcnow()
    owners, colleagues_added = demo_owners()
    colleague_emails = {email for _, email in DEMO_COLLEAGUES}
    added = DemoDataAdded(frozenset(u.id for u in owners if u.email in colleague_emails), colleagues_added)
    for start in range(0, count, BATCH_SIZE):
        rows = [
            _fake_lead(serial, run_tag, now, rng, owners) for serial in range(start, min(start + BATCH_SIZE, count))
        ]
        _insert(rows, added, now)
        reopened = _reopen_some([lead for lead, _, _, _ in rows if lead["status"] == "lost"], now, rng)
        added.reopened += len(reopened)
        added.by_status[LeadStatus.LOST.value] -= len(reopened)
        added.by_status[LeadStatus.NEW.value] += len(reopened)
        added.next_steps += len(reopened)
        added.overdue_next_steps += sum(lead["next_step_due_at"] < now for lead in reopened)
        added.valued -= sum(lead["estimated_value"] is not None for lead in reopened)
        db.session.commit()
    missing = {status.value: open_at_least - added.by_status[status.value] for status in OPEN_COLUMNS}
    extra, serial = [], count
    while any(short > 0 for short in missing.values()):
        row = _fake_lead(serial, run_tag, now, rng, owners, within_days=RECENT_DAYS)
        serial += 1
        if missing.get(row[0]["status"], 0) > 0:
            missing[row[0]["status"]] -= 1
            extra.append(row)
    if extra:
        _insert(extra, added, now)
        db.session.commit()
    return added


FRESH_LEADS = 6
FRESH_OVERDUE = 2


def book_fresh_leads(added: DemoDataAdded, rng: random.Random, count: int = FRESH_LEADS) -> None:
    """A few website leads booked now, through the booking itself: owners in rotation, the owners' mails, clocks on
    their cards. The first FRESH_OVERDUE are moved back past their first-contact time, so the worker escalates them
    (the reminder and the expiry mails appear in /dev/mail)."""
    run_tag = uuid.uuid4().hex[:6]
    for serial in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        details = validation.validate_contact_details(
            {
                "first_name": first,
                "last_name": last,
                "email": f"{_email_local(first, last, serial)}.fersk{run_tag}@demo.meander.no",
                "phone": f"+479{rng.randint(1000000, 9999999)}",
                "organization_name": f"{rng.choice(ORGANIZATION_KINDS)} {rng.choice(PLACES)}",
                "role_title": rng.choice(ROLES),
                "organization_size": "",
                "current_solution": "",
                "preferred_demo_timing": "",
                "notes": "",
            }
        )
        result = book_demo.book_demo(details, ip_address=f"192.0.2.{rng.randint(1, 254)}")
        lead = db.session.get(Lead, result.lead_id)
        owner = db.session.get(User, lead.owner_id) if lead.owner_id else None
        added.fresh_owners.append(owner.name if owner else "Ufordelt")
        if serial < min(FRESH_OVERDUE, count - 1):
            past = utcnow() - timedelta(minutes=5)
            db.session.execute(
                sa.update(Lead)
                .where(Lead.id == lead.id)
                .values(first_contact_reminder_at=past, first_contact_due_at=past)
            )
            db.session.commit()
            added.fresh_overdue += 1
