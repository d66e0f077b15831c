"""Chromium for the browser tests: Debian's build, driven by Playwright for Python (whose own browser download is
not used), and the page's Content-Security-Policy violations collected so a test can assert there were none."""

import os
import shutil

from helpers.waiting import wait_until

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
CHROMIUM_MISSING = "Chromium not found: browser tests skipped (install Debian's chromium package)"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# How long a page may take to show what a test waits for: a does-not-hang bound, not a speed target (speed is
# bench/'s job), so it is generous enough for a busy two-core machine running the suite in parallel.
TIMEOUT_MS = 15_000


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)


# Violation events arrive asynchronously, after whatever caused them. To know every report so far is in,
# the page causes one more violation of its own, a marker, and we wait for that one: the events come in order.
CSP_FLUSH_MARKER = "https://csp-flush.invalid/marker.png"
CSP_VIOLATION_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  const blocked = event.blockedURI || "inline";
  if (blocked === "CSP_FLUSH_MARKER") {
    window.cspReportsFlushed = true;
    return;
  }
  window.reportCspViolation(`${event.effectiveDirective}: ${blocked} at ${event.sourceFile}:${event.lineNumber}`);
});
""".replace("CSP_FLUSH_MARKER", CSP_FLUSH_MARKER)


def flush_csp_reports(page) -> None:
    """Return once every violation the page has caused so far has reached page.csp_violations."""
    if not page.url.startswith("http"):
        return  # never left about:blank: no policy, nothing to report
    page.evaluate(f"window.cspReportsFlushed = false; new Image().src = {CSP_FLUSH_MARKER!r};")
    # Polled from here: wait_for_function re-evaluates its predicate in the page with eval, which the CSP blocks.
    wait_until(lambda: page.evaluate("window.cspReportsFlushed === true"), timeout=5, what="the CSP reports")
    page.evaluate("0")  # one more round trip: the reports' callbacks, sent before it, have run
