"""No log stream carries a password, a one-time link's secret, a two-factor secret or a recovery code: not the
app's, not the worker's, not gunicorn's access log. The whole story runs through gunicorn and the worker as in
production, with the access log on and everything at DEBUG: an invitation accepted, two-factor turned on, a
sign-in with a recovery code, a forgotten password reset by mail."""

import re
import subprocess
import sys

import pyotp
import pytest
from helpers.accounts import ADMIN_PASSWORD, LINK, NEW_PASSWORD, RECOVERY_CODE, TOTP_SECRET, make_user
from helpers.gunicorn_client import Browser, wait_until_serving
from helpers.paths import PROJECT_ROOT
from helpers.servers import procfile, procfile_env, stop

from meander_site.dev.embedded import find_free_port

SECOND_PASSWORD = "regnbue-kaffekopp-tursti-9"


def link_in_newest_mail(smtp_server, subject: str, count: int) -> str:
    mails = [mail for mail in smtp_server.wait_for(count, timeout=30) if mail["Subject"].startswith(subject)]
    assert mails, [mail["Subject"] for mail in smtp_server.messages()]
    return LINK.search(mails[-1].get_body(preferencelist=("plain",)).get_content()).group(3)


@pytest.mark.subprocess
def test_a_whole_account_story_logs_no_secret_anywhere(app, migrated_database, redis_url, smtp_server, scratch_dir):
    make_user(app, "sjef@meander.no", "Sara Sjef", ADMIN_PASSWORD, admin=True)
    port = find_free_port()
    env = procfile_env(
        PORT=str(port),
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="4",
        GUNICORN_ACCESS_LOG="1",
        LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",
        DATABASE_URL=migrated_database,
        REDIS_URL=redis_url,
        MAIL_SERVER=smtp_server.host,
        MAIL_PORT=str(smtp_server.port),
        MAIL_SWEEP_SECONDS="0.5",
    )
    env["SITE_URL"] = f"http://127.0.0.1:{port}"
    web_log, worker_log = scratch_dir / "secrets-web.log", scratch_dir / "secrets-worker.log"
    secrets_seen: list[str] = [ADMIN_PASSWORD, NEW_PASSWORD, SECOND_PASSWORD]
    with open(web_log, "w") as web_out, open(worker_log, "w") as worker_out:
        web = subprocess.Popen(procfile()["web"], cwd=PROJECT_ROOT, env=env, stdout=web_out, stderr=web_out)
        worker = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=PROJECT_ROOT, env=env, stdout=worker_out, stderr=worker_out
        )
        try:
            wait_until_serving(port, web, web_log)
            admin = Browser(port)
            status, _ = admin.submit(
                "/login", "/login?next=/pipeline", {"email": "sjef@meander.no", "password": ADMIN_PASSWORD}
            )
            assert status == 303
            status, page = admin.submit(
                "/pipeline/team", "/pipeline/team/invitations", {"email": "ny@meander.no", "role": "seller"}
            )
            assert status == 303, page
            invitation = link_in_newest_mail(smtp_server, "Du er invitert", 1)
            secrets_seen.append(invitation)

            newcomer = Browser(port)
            assert newcomer.submit("/invitasjon", "/invitasjon/lenke", {"secret": invitation})[0] == 303
            status, page = newcomer.submit("/invitasjon", "/invitasjon", {"name": "Nina Ny", "password": NEW_PASSWORD})
            assert status == 303, page
            status, page = newcomer.request("GET", "/pipeline/settings/two-factor")
            totp_secret = TOTP_SECRET.search(page).group(1).replace(" ", "")
            secrets_seen.append(totp_secret)
            code = pyotp.TOTP(totp_secret).now()
            status, page = newcomer.submit(
                "/pipeline/settings/two-factor", "/pipeline/settings/two-factor", {"code": code}
            )
            recovery_codes = RECOVERY_CODE.findall(page)
            assert status == 200 and len(recovery_codes) == 10
            secrets_seen += recovery_codes

            again = Browser(port)
            status, _ = again.submit(
                "/login", "/login?next=/pipeline", {"email": "ny@meander.no", "password": NEW_PASSWORD}
            )
            assert status == 303
            assert again.submit("/login/kode", "/login/kode", {"code": recovery_codes[0]})[0] == 303

            forgetful = Browser(port)
            assert forgetful.submit("/glemt-passord", "/glemt-passord", {"email": "ny@meander.no"})[0] == 303
            assert forgetful.submit("/glemt-passord", "/glemt-passord", {"email": "ingen@meander.no"})[0] == 303
            reset = link_in_newest_mail(smtp_server, "Velg nytt passord", 2)  # none for the unknown address
            secrets_seen.append(reset)
            assert forgetful.submit("/nytt-passord", "/nytt-passord/lenke", {"secret": reset})[0] == 303
            assert forgetful.submit("/nytt-passord", "/nytt-passord", {"password": SECOND_PASSWORD})[0] == 303
            assert forgetful.submit("/login/kode", "/login/kode", {"code": recovery_codes[1]})[0] == 303
            assert forgetful.request("GET", "/pipeline")[0] == 200
            smtp_server.wait_for(3, timeout=30)  # «Passordet ditt er endret»
        finally:
            web_exit, worker_exit = stop(web), stop(worker)

    assert (web_exit, worker_exit) == (0, 0)
    web_text, worker_text = web_log.read_text(), worker_log.read_text()
    # The run did log what it should, so finding nothing proves something.
    assert re.search(r"POST /invitasjon/lenke HTTP", web_text), "the access log was on"
    assert "GET /pipeline/settings/two-factor" in web_text
    for kind in ("account_invitation", "password_reset", "password_changed"):
        assert f"mail sent ({kind})" in worker_text, kind
    for name, text in (("web, access and gunicorn", web_text), ("worker", worker_text)):
        for line in text.splitlines():
            for secret in secrets_seen:
                assert secret not in line, f"a secret ({secret[:4]}…) in the {name} log: {line}"
            assert "ny@meander.no" not in line and "sjef@meander.no" not in line, line
