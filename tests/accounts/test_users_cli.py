"""`flask users create/list/deactivate`: how a salesperson gets (and loses) an account."""

import os
import pty
import select
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from helpers.staff import log_in

from meander_site.accounts import users
from meander_site.accounts.models import StaffSession, User
from meander_site.config import PROJECT_ROOT
from meander_site.extensions import db

PASSWORD = "korrekt-hest-batteri"  # a test account


def users_cli(app, *args, input=None):
    return app.test_cli_runner().invoke(args=["users", *args], input=input)


def stored_user(app, email: str) -> User | None:
    with app.app_context():
        user = db.session.execute(sa.select(User).where(User.email == email)).scalar_one_or_none()
        if user is not None:
            db.session.expunge(user)
        return user


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(User))


def test_create_with_the_password_given_twice_makes_an_account_that_can_sign_in(app):
    result = users_cli(
        app, "create", "Siri.Selger@Meander.no", "--name", "Siri Selger", input=f"{PASSWORD}\n{PASSWORD}\n"
    )

    assert result.exit_code == 0, result.output
    assert "Created siri.selger@meander.no (Siri Selger)." in result.output
    user = stored_user(app, "siri.selger@meander.no")
    assert (user.name, user.is_active, user.last_login_at) == ("Siri Selger", True, None)
    assert log_in(app.test_client(), "siri.selger@meander.no", PASSWORD).status_code == 303
    assert stored_user(app, "siri.selger@meander.no").last_login_at is not None


def test_create_with_the_password_piped_as_one_line(app):
    result = users_cli(app, "create", "ola@meander.no", input=f"{PASSWORD}\n")

    assert result.exit_code == 0, result.output
    user = stored_user(app, "ola@meander.no")
    assert user.name == "ola"  # defaults to the email's local part
    assert log_in(app.test_client(), "ola@meander.no", PASSWORD).status_code == 303


def test_the_password_is_stored_as_an_argon2id_hash_never_in_plain(app):
    users_cli(app, "create", "ola@meander.no", "--name", "Ola", input=f"{PASSWORD}\n")

    with app.app_context():
        row = db.session.execute(sa.select(User.__table__)).mappings().one()
    assert row["password_hash"].startswith("$argon2id$")
    assert all(PASSWORD not in str(value) for value in row.values())


@pytest.mark.subprocess
def test_production_hashes_at_the_rfc_9106_low_memory_profile_and_only_the_suite_goes_cheaper():
    # A fresh interpreter, without the cheap hasher conftest swaps in.
    production = subprocess.run(
        [sys.executable, "-c", "from meander_site.accounts import users; print(users.password_hasher.hash('x'))"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert production.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert users.password_hasher.hash("x").startswith("$argon2id$v=19$m=8,t=1,p=1$")


def test_a_too_short_password_is_refused_with_a_message(app):
    result = users_cli(app, "create", "ola@meander.no", input="kort-pass\n")

    assert result.exit_code == 1
    assert "at least 12 characters" in result.output
    assert user_count(app) == 0


@pytest.mark.parametrize("password", ["", "\n"])
def test_an_empty_password_is_refused(app, password):
    result = users_cli(app, "create", "ola@meander.no", input=password)

    assert result.exit_code != 0
    assert user_count(app) == 0


def test_an_email_that_exists_already_is_refused(app):
    users_cli(app, "create", "ola@meander.no", "--name", "Ola", input=f"{PASSWORD}\n")

    result = users_cli(app, "create", " OLA@meander.no ", "--name", "Ola igjen", input=f"{PASSWORD}-2\n")

    assert result.exit_code == 1
    assert "exists already" in result.output
    assert user_count(app) == 1
    assert stored_user(app, "ola@meander.no").name == "Ola"


def test_something_that_is_not_an_email_is_refused(app):
    result = users_cli(app, "create", "ola", input=f"{PASSWORD}\n")

    assert result.exit_code == 1
    assert "not an email address" in result.output
    assert user_count(app) == 0


def test_list_shows_each_account_its_role_state_second_factor_and_last_login(app):
    users_cli(app, "create", "siri@meander.no", "--name", "Siri Selger", input=f"{PASSWORD}\n")  # the first: admin
    users_cli(app, "create", "ola@meander.no", "--name", "Ola Hansen", input=f"{PASSWORD}\n")
    log_in(app.test_client(), "siri@meander.no", PASSWORD)
    users_cli(app, "deactivate", "ola@meander.no")

    result = users_cli(app, "list")

    assert result.exit_code == 0
    ola, siri = result.output.splitlines()
    assert ola == "ola@meander.no\tOla Hansen\tseller\tdeactivated\tpassword only\tlast login: never"
    assert siri.startswith("siri@meander.no\tSiri Selger\tadmin\tactive\tpassword only\tlast login: 20")
    assert PASSWORD not in result.output and "argon2" not in result.output


def test_deactivate_ends_every_session_and_refuses_sign_in(app):
    users_cli(app, "create", "sjef@meander.no", "--name", "Sjef", input=f"{PASSWORD}\n")  # the administrator
    users_cli(app, "create", "ola@meander.no", "--name", "Ola", input=f"{PASSWORD}\n")
    browser = app.test_client()
    assert log_in(browser, "ola@meander.no", PASSWORD).status_code == 303

    result = users_cli(app, "deactivate", "OLA@meander.no")

    assert result.exit_code == 0
    assert "Deactivated ola@meander.no" in result.output
    assert stored_user(app, "ola@meander.no").is_active is False
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(StaffSession)) == 0
    assert browser.get("/pipeline").status_code == 302
    assert log_in(app.test_client(), "ola@meander.no", PASSWORD).status_code == 401


def test_deactivating_an_unknown_email_is_an_error(app):
    result = users_cli(app, "deactivate", "ukjent@meander.no")

    assert result.exit_code == 1
    assert "No user with email ukjent@meander.no" in result.output


# --- at a real terminal ----------------------------------------------------------------------------


def run_at_a_terminal(args: list[str], env: dict, replies: list[tuple[str, str]], limit: float = 60) -> tuple[int, str]:
    """Run a command on a pseudo-terminal; when a prompt appears, type its reply. Returns (exit code, output)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=PROJECT_ROOT)
    os.close(slave)
    output, answered_up_to = b"", 0
    deadline = time.monotonic() + limit  # a safety net against a hung prompt, not a measurement
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if replies and replies[0][0].encode() in output[answered_up_to:]:
                answered_up_to = output.rindex(replies[0][0].encode()) + len(replies[0][0])
                os.write(master, (replies.pop(0)[1] + "\n").encode())
            if not ready and process.poll() is not None:
                break
        return process.wait(timeout=10), output.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)


@pytest.mark.subprocess
def test_at_a_terminal_create_asks_twice_hides_the_password_and_asks_again_on_a_mismatch(
    app, migrated_database, redis_url
):
    env = {**os.environ, "DATABASE_URL": migrated_database, "REDIS_URL": redis_url, "MEANDER_ENV": "development"}
    env.pop("SITE_URL", None)

    code, output = run_at_a_terminal(
        [sys.executable, "-m", "flask", "--app", "app", "users", "create", "terminal@meander.no", "--name", "Tor"],
        env,
        [
            ("Password:", "forste-passord-123"),
            ("Repeat password:", "et-helt-annet-passord"),
            ("Password:", PASSWORD),
            ("Repeat password:", PASSWORD),
        ],
    )

    assert code == 0, output
    assert "do not match" in output
    assert "Created terminal@meander.no (Tor)." in output
    assert PASSWORD not in output and "forste-passord-123" not in output  # never echoed
    assert log_in(app.test_client(), "terminal@meander.no", PASSWORD).status_code == 303
