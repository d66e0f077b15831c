"""The report's computed figures, kept in Redis: a repeat render is served from there, and anything that changes
what the report reads — a move, a booking, a rebooking, an owner, a lost reason, an erasure, demo data, a first-
contact deadline passing — shows on the very next render. A Redis that is gone only means computing again.

Figures are kept only once the newest change is a few seconds old (cache.DataVersion.settled), so the tests
that need a kept entry first backdate every lead's updated_at by a minute («settle»), as if time had passed.
"""

import re
import socket
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers.assignment import leave_the_pool
from helpers.booking import book, make_lead
from helpers.staff import STAFF_PASSWORD, log_in, move, post, staff_csrf

from meander_site.core.clock import utcnow
from meander_site.core.redis_client import shared_redis
from meander_site.extensions import db
from meander_site.leads.models import Lead
from meander_site.reporting import cache, filters, queries

ARRIVED = re.compile(r"Leads som kom inn [^:]*: <strong>(\d+)</strong>")
COMPUTED = re.compile(r'Tall beregnet kl\. <time datetime="[^"]+Z">\d\d:\d\d</time>\.')


def settle(app) -> None:
    """As if the last change to any lead was made a minute ago."""
    with app.app_context():
        db.session.execute(sa.update(Lead).values(updated_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()


def report_page(client, **args) -> str:
    response = client.get("/pipeline/report", query_string=args)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def arrived(page: str) -> int:
    return int(ARRIVED.search(page).group(1))


def stage(page: str, label: str) -> int:
    return int(re.search(rf'<th scope="row">{label}</th><td>(\d+)</td>', page).group(1))


def bookings_in_weeks(page: str) -> int:
    table = page.split('<table class="report-table report-table--weeks">')[1].split("</table>")[0]
    return sum(int(count) for count in re.findall(r"</td><td>(\d+)</td></tr>", table))


def from_cache(page: str) -> bool:
    return COMPUTED.search(page) is not None


@pytest.fixture
def two_leads(app):
    leads = [make_lead(app, email=f"lead{index}@example.no") for index in range(2)]
    settle(app)
    return leads


def test_a_repeat_render_is_served_from_the_cache_and_says_when_it_was_computed(app, staff_client, two_leads):
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    first = report_page(staff_client)
    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", record)
        try:
            second = report_page(staff_client)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", record)

    assert not from_cache(first) and from_cache(second)
    assert arrived(first) == arrived(second) == 2
    # The figures came from Redis: only the data version's index probes touched leads, no aggregate over them.
    assert not [statement for statement in statements if "percentile" in statement or "GROUP BY" in statement]


def test_right_after_a_change_the_figures_are_computed_but_not_kept(app, staff_client):
    make_lead(app)

    assert not from_cache(report_page(staff_client))
    assert not from_cache(report_page(staff_client))


def test_a_move_and_its_lost_reason_show_on_the_very_next_render(app, staff_client, two_leads):
    token = staff_csrf(staff_client)
    report_page(staff_client)
    assert from_cache(report_page(staff_client))

    assert move(staff_client, two_leads[0]["id"], "contacted", token).status_code == 200
    after_move = report_page(staff_client)
    assert move(staff_client, two_leads[1]["id"], "lost", token, reason="price").status_code == 200
    after_loss = report_page(staff_client)

    assert not from_cache(after_move) and stage(after_move, "Kontaktet") == 1
    assert "Pris eller budsjett" in after_loss and "Ingen leads i perioden er tapt" not in after_loss


def test_a_new_booking_and_a_rebooking_show_on_the_very_next_render(app, client, staff_client, two_leads):
    before = report_page(staff_client)
    assert from_cache(report_page(staff_client))

    assert book(client, email="ny@example.no").status_code == 303
    after_booking = report_page(staff_client)
    settle(app)
    report_page(staff_client)
    assert from_cache(report_page(staff_client))
    # A rebooking adds a booking but no lead and no status: only updated_at tells.
    assert book(client, email="ny@example.no").status_code == 303
    after_rebooking = report_page(staff_client)

    assert (arrived(before), bookings_in_weeks(before)) == (2, 2)
    assert (arrived(after_booking), bookings_in_weeks(after_booking)) == (3, 3)
    assert (arrived(after_rebooking), bookings_in_weeks(after_rebooking)) == (3, 4)


@pytest.fixture
def two_unowned_leads(app, staff_user):
    leave_the_pool(app)
    leads = [make_lead(app, email=f"lead{index}@example.no") for index in range(2)]
    settle(app)
    return leads


def test_an_owner_change_shows_in_the_owner_filter_on_the_very_next_render(
    app, staff_client, staff_user, two_unowned_leads
):
    two_leads = two_unowned_leads
    token = staff_csrf(staff_client)
    mine = {"owner": str(staff_user["id"])}
    report_page(staff_client, **mine)
    assert arrived(report_page(staff_client, **mine)) == 0

    response = post(staff_client, f"/pipeline/leads/{two_leads[0]['id']}/owner", token, owner_id=str(staff_user["id"]))
    assert response.status_code in (200, 303)

    assert arrived(report_page(staff_client, **mine)) == 1


def test_an_erased_lead_leaves_the_figures_on_the_very_next_render(app, staff_client, two_leads):
    token = staff_csrf(staff_client)
    report_page(staff_client)
    assert from_cache(report_page(staff_client))

    response = staff_client.post(f"/pipeline/leads/{two_leads[0]['id']}/delete", data={"csrf_token": token})
    assert response.status_code == 303

    page = report_page(staff_client)
    assert arrived(page) == 1 and bookings_in_weeks(page) == 1


def test_demo_data_shows_on_the_very_next_render_though_its_leads_carry_old_times(app, staff_client, two_leads):
    everything = {"period": "custom", "from": "2000-01-01", "to": "2999-12-31"}
    report_page(staff_client, **everything)
    assert from_cache(report_page(staff_client, **everything))

    result = app.test_cli_runner().invoke(args=["demo-data", "--leads", "30", "--fresh", "0"])
    assert result.exit_code == 0, result.output

    with app.app_context():
        # A lost lead demo-data reopened entered the funnel twice: once per pass.
        reopened = db.session.execute(sa.select(sa.func.count()).select_from(Lead).where(Lead.pass_number > 1)).scalar()
    assert arrived(report_page(staff_client, **everything)) == 32 + reopened


def test_kept_figures_end_when_a_first_contact_deadline_passes(app, two_leads):
    """A lead still in «Ny» is counted in the promise once its deadline has passed, with no write at all."""
    with app.app_context():
        deadline = db.session.execute(sa.select(sa.func.min(Lead.first_contact_due_at))).scalar_one()
        report_filter = filters.ReportFilter.from_args({"period": "custom", "from": "2000-01-01", "to": "2999-12-31"})
        now = utcnow()
        first = cache.cached_build(report_filter, now=now)
        kept = cache.cached_build(report_filter, now=now + timedelta(seconds=1))
        after_deadline = cache.cached_build(report_filter, now=deadline + timedelta(seconds=1))

    assert first.valid_until == deadline
    assert (first.from_cache, kept.from_cache, after_deadline.from_cache) == (False, True, False)
    assert (first.promise_due, kept.promise_due) == (0, 0)
    assert after_deadline.promise_due >= 1


def test_two_people_filtering_on_their_own_leads_never_share_figures(app):
    now = utcnow()
    a, b = (filters.ReportFilter.from_args({"owner": "mine"}, viewer_id=viewer) for viewer in (1, 2))
    assert a.identity(now) != b.identity(now)


def unreachable_redis_urls():
    """A Redis that refuses (no such socket) and one that never answers (a listening socket nobody serves)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    return silent, ["unix:///tmp/nonexistent-meander-report.sock", f"redis://127.0.0.1:{silent.getsockname()[1]}/0"]


@pytest.mark.fault
def test_with_redis_unreachable_the_report_still_renders_the_right_figures(app, make_app, staff_user, two_leads):
    with app.app_context():
        expected = queries.build(filters.ReportFilter.from_args({}))
    silent, urls = unreachable_redis_urls()
    try:
        for url in urls:
            broken = make_app(REDIS_URL=url, RATELIMIT_STORAGE_URI="memory://")
            client = broken.test_client()
            assert log_in(client, staff_user["email"], STAFF_PASSWORD).status_code == 303

            started = time.monotonic()
            page = report_page(client)
            elapsed = time.monotonic() - started

            assert arrived(page) == expected.arrived == 2
            assert not from_cache(page)
            # Not a speed target (bench/ has those): a bound only a report waiting on Redis without timeouts
            # would break. At 2 s it failed on a busy 2-core machine (3.9 s with every core taken).
            assert elapsed < 10, f"{url}: {elapsed:.2f} s"
            assert client.get("/pipeline/report.xlsx").status_code == 200
    finally:
        silent.close()


def test_figures_that_cannot_be_read_are_computed_again(app, staff_client, two_leads):
    report_page(staff_client)
    with app.app_context():
        redis = shared_redis()
        keys = list(redis.scan_iter(match=app.config["REPORT_CACHE_KEY_PREFIX"] + "*"))
        for key in keys:
            redis.set(key, b'{"first_day": "not a day"}')

    page = report_page(staff_client)

    assert keys and arrived(page) == 2 and not from_cache(page)
