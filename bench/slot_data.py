"""The slot benchmark's data, written into the bench's database by `python -m bench.slot_data` (run with the stack's
environment): 10 hosts, 2,000 booked demos (about 2 per host per business day within the horizon, the rest in the
past), and 500 calendar busy times within the horizon. Prints what it wrote as JSON."""

import json
import random
import secrets
import uuid
from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa

from meander_site import create_app
from meander_site.accounts.models import User
from meander_site.business_days import OSLO
from meander_site.core.clock import utcnow
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.slots import availability, rules
from meander_site.slots.models import HostBusy

HOSTS = 10
DEMOS = 2000
EVENTS = 500
DEMOS_PER_HOST_DAY = 2


def _at(day, minutes: int) -> datetime:
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=OSLO).astimezone(UTC)


def seed(seed_value: int = 19) -> dict:
    rng = random.Random(seed_value)
    now = utcnow()
    tag = uuid.uuid4().hex[:6]
    hosts = [
        User(
            id=uuid.uuid4(),
            email=f"vert{n}-{tag}@bench.meander.no",
            name=f"Vert {n}",
            password_hash="!" + secrets.token_hex(16),
            is_active=True,
            notify_new_leads=False,
        )
        for n in range(HOSTS)
    ]
    db.session.add_all(hosts)
    db.session.flush()
    days = availability.horizon_days(now, rules.current())
    grid = list(range(9 * 60, 15 * 60 + 31, 30))
    demo_times = []
    for host in hosts:
        for day in days:
            for minutes in rng.sample(grid, DEMOS_PER_HOST_DAY):
                demo_times.append((host.id, _at(day, minutes)))
    while len(demo_times) < DEMOS:
        host = rng.choice(hosts)
        demo_times.append((host.id, now - timedelta(days=rng.randint(1, 300), minutes=rng.randint(0, 600))))
    leads = []
    for n, (host_id, demo_at) in enumerate(demo_times[:DEMOS]):
        created = min(demo_at, now) - timedelta(days=rng.randint(1, 20))
        leads.append(
            {
                "id": uuid.uuid4(),
                "first_name": "Bench",
                "last_name": f"Demo {n}",
                "email": f"demo{n}-{tag}@bench.meander.no",
                "organization_name": f"Organisasjon {n}",
                "role_title": "Leder",
                "status": "demo_scheduled",
                "source": "website",
                "masked_ref": secrets.token_urlsafe(16),
                "created_at": created,
                "updated_at": created,
                "status_changed_at": created,
                "booking_count": 1,
                "owner_id": host_id,
                "demo_at": demo_at,
                "demo_minutes": 30,
                "demo_location": "https://meet.meander.no/demo",
                "demo_host_id": host_id,
                "demo_sequence": 0,
            }
        )
    db.session.execute(sa.insert(Lead), leads)
    busy = []
    for n in range(EVENTS):
        host = hosts[n % HOSTS]
        day = rng.choice(days)
        start = _at(day, rng.choice(grid))
        busy.append({"id": uuid.uuid4(), "user_id": host.id, "starts_at": start, "ends_at": start + timedelta(hours=1)})
    db.session.execute(sa.insert(HostBusy), busy)
    db.session.commit()
    return {
        "hosts": HOSTS,
        "demos": len(leads),
        "demos_in_horizon": HOSTS * len(days) * DEMOS_PER_HOST_DAY,
        "events": EVENTS,
        "days": len(days),
    }


def main() -> None:
    app = create_app()
    with app.app_context():
        print(json.dumps(seed()))


if __name__ == "__main__":
    main()
