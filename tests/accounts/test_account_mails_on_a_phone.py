"""The account mails (an invitation, a reset link, «Passordet ditt er endret») have a text part and an HTML part,
in Norwegian, and the HTML fits a 375 px phone even with a long address and name (see test_mail_layout)."""

import re

from helpers.accounts import NEW_PASSWORD, invite, mails, make_user, open_link, sent_link, signed_in, submit
from helpers.jobs import run_jobs
from helpers.mail import PHONE_WIDTH, parts, widest

LONG_ADDRESS = "kari.nordmann.likepersonskoordinator.region.nord@hjerneslagforeningen-i-troms-og-finnmark.no"
LONG_NAME = "Karianne Likepersonskoordinatorsen-Hjerneslagforeningsdottir"


def test_every_account_mail_reads_on_a_phone(app, smtp_server, phone):
    admin = make_user(app, "sjef@meander.no", LONG_NAME, "styrer-teamet-med-glede-42", admin=True)
    invite(signed_in(app, admin), LONG_ADDRESS)
    run_jobs(app)
    submit(app.test_client(), "/glemt-passord", email=admin["email"])
    url, secret = sent_link(app, smtp_server, "Velg nytt passord", admin["email"])
    browser = app.test_client()
    open_link(browser, url, secret)
    submit(browser, "/nytt-passord", password=NEW_PASSWORD)
    run_jobs(app)

    kinds = {
        "invitation": mails(smtp_server, "Du er invitert til Meanders salgsteam"),
        "reset link": mails(smtp_server, "Velg nytt passord for Meander"),
        "password changed": mails(smtp_server, "Passordet ditt er endret"),
    }
    for kind, found in kinds.items():
        assert len(found) == 1, kind
        text, html = parts(found[0])
        assert text.strip() and "Vennlig hilsen" in text, kind
        assert re.search(r'<meta name="viewport" content="width=device-width, initial-scale=1">', html), kind
        measured = widest(phone, html)
        assert measured["scrollWidth"] <= PHONE_WIDTH, f"the {kind} mail scrolls sideways: {measured}"
        assert measured["offenders"] == [], f"the {kind} mail is wider than the screen: {measured}"
