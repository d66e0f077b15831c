"""What the house by area changed that an operator or a developer meets: the mail settings' new names (the
old ones still read, with a warning), /dev/mail only in the app `make run` serves, links in mail built on
SITE_URL whatever Host a request came with, and the worker's periodic jobs each on a clock of its own."""

import logging
import threading

import pytest

from meander_site import create_app
from meander_site.config import Config
from meander_site.core.links import external_url
from meander_site.worker.runner import PERIODIC_JOBS, Periodic, Stop, run_every


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("CONFIRMATION_SWEEP_SECONDS", "MAIL_SWEEP_SECONDS"),
        ("CONFIRMATION_SWEEP_GRACE_SECONDS", "MAIL_SWEEP_GRACE_SECONDS"),
        ("CONFIRMATION_SEND_LEASE_SECONDS", "MAIL_SEND_LEASE_SECONDS"),
    ],
)
def test_a_mail_setting_under_its_old_name_still_counts_and_the_log_says_to_rename_it(
    old, new, monkeypatch, make_app, caplog
):
    monkeypatch.setenv(old, "42")
    assert Config().as_dict()[new] == 42
    with caplog.at_level(logging.WARNING):
        make_app()
    warnings = [record for record in caplog.records if getattr(record, "event", None) == "deprecated_setting"]
    assert [record.getMessage() for record in warnings] == [f"setting {old} is deprecated: set {new} instead"]


def test_the_retry_schedule_under_its_old_name_still_counts(monkeypatch):
    monkeypatch.setenv("CONFIRMATION_RETRY_INTERVALS", "5,10")
    config = Config().as_dict()
    assert config["MAIL_RETRY_INTERVALS"] == [5, 10]
    assert config["DEPRECATED_SETTINGS"] == {"CONFIRMATION_RETRY_INTERVALS": "MAIL_RETRY_INTERVALS"}


def test_the_new_name_wins_over_the_old_one(monkeypatch):
    monkeypatch.setenv("CONFIRMATION_SWEEP_SECONDS", "42")
    monkeypatch.setenv("MAIL_SWEEP_SECONDS", "7")
    assert Config().as_dict()["MAIL_SWEEP_SECONDS"] == 7


def test_without_the_old_names_nothing_is_said(monkeypatch, make_app, caplog):
    for old in (
        "CONFIRMATION_SWEEP_SECONDS",
        "CONFIRMATION_SWEEP_GRACE_SECONDS",
        "CONFIRMATION_SEND_LEASE_SECONDS",
        "CONFIRMATION_RETRY_INTERVALS",
    ):
        monkeypatch.delenv(old, raising=False)
    with caplog.at_level(logging.WARNING):
        make_app()
    assert not [record for record in caplog.records if getattr(record, "event", None) == "deprecated_setting"]


def test_the_production_factory_never_serves_the_dev_mail_page_and_the_dev_app_does(make_app, app, tmp_path):
    production = create_app({**app.config, "MAIL_SINK_DIR": str(tmp_path)})
    assert production.test_client().get("/dev/mail/").status_code == 404
    assert make_app(MAIL_SINK_DIR=str(tmp_path)).test_client().get("/dev/mail/").status_code == 200


def test_links_in_mail_are_built_on_site_url_even_inside_a_request_for_another_host(app):
    with app.test_request_context("/", base_url="http://evil.example"):
        assert external_url("booking.confirmation", masked_ref="abc") == "https://demo.meander.test/confirm/abc"
        assert external_url("pipeline.board") == "https://demo.meander.test/pipeline"


def test_the_digest_and_the_sweep_each_have_a_clock_of_their_own():
    assert {job.name: job.interval_setting for job in PERIODIC_JOBS} == {
        "mail sweep": "MAIL_SWEEP_SECONDS",
        "morning digest": "DIGEST_CHECK_SECONDS",
        "calendar feeds": "CALENDAR_FEED_CHECK_SECONDS",
        "first-contact escalation": "ESCALATION_CHECK_SECONDS",
    }


def test_a_periodic_job_keeps_its_schedule_after_a_failure_and_stops_when_asked(app):
    runs = []
    enough = threading.Event()

    def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("the database went away")
        if len(runs) >= 3:
            enough.set()

    app.config["TEST_INTERVAL_SECONDS"] = 0.01
    stop = Stop()
    thread = threading.Thread(target=run_every, args=(app, Periodic("flaky", "TEST_INTERVAL_SECONDS", flaky), stop))
    thread.start()
    assert enough.wait(10), "the job ran again after it failed"
    stop.request()
    thread.join(10)
    assert not thread.is_alive()
