"""The Nu Html Checker (vnu.jar, the W3C's checker), run by the machine's java: what the HTML validity tests of
every area share. `make test` installs vnu.jar from the npm registry into tools/html-checker."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.paths import PROJECT_ROOT

VNU_JAR = Path(os.environ.get("VNU_JAR") or PROJECT_ROOT / "tools/html-checker/node_modules/vnu-jar/build/dist/vnu.jar")
JAVA = shutil.which("java")
# htmx's attributes are not in the HTML standard; it reads them all the same.
HTMX_ATTRIBUTE = re.compile(r"^Attribute “hx-[a-z-]+” not allowed on element “[a-z]+” at this point\.$")

NEEDS_THE_CHECKER = [
    pytest.mark.subprocess,
    pytest.mark.skipif(
        JAVA is None or not VNU_JAR.is_file(),
        reason=f"the Nu Html Checker needs java and {VNU_JAR} (`make test` installs it with npm)",
    ),
]


def check_html(pages: dict[str, str], directory: Path) -> list[str]:
    """Every error vnu reports for `pages` (name -> HTML), as 'name:line: message'."""
    files = []
    for name, html in pages.items():
        path = directory / f"{name}.html"
        path.write_text(html, encoding="utf-8")
        files.append(str(path))
    result = subprocess.run(
        [JAVA, "-Xss8m", "-jar", str(VNU_JAR), "--format", "json", "--exit-zero-always", *files],
        capture_output=True,
        text=True,
        timeout=300,
    )
    messages = json.loads(result.stderr)["messages"]
    return [
        f"{Path(message.get('url', '')).stem}:{message.get('lastLine')}: {message['message']}"
        for message in messages
        if message["type"] == "error" and not HTMX_ATTRIBUTE.match(message["message"])
    ]
