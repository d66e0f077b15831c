"""Only the site's own host names are served, and no URL is ever built from the request's Host header.

Flask's TRUSTED_HOSTS refuses any other Host with a 400 (SITE_URL's host, plus EXTRA_TRUSTED_HOSTS for
probes and the local machine). The one URL Werkzeug builds from the Host itself, the redirect to a
route's canonical path (`//confirm//x` -> `/confirm/x`), is made relative.
"""

from urllib.parse import urlsplit, urlunsplit

from flask import Flask, request
from werkzeug.exceptions import SecurityError

# No url_for here: a request for a host we do not serve has no URL adapter to build one with.
UNKNOWN_HOST_PAGE = """<!doctype html>
<html lang="nb">
<head><meta charset="utf-8"><title>Ukjent adresse</title></head>
<body>
<h1>Ukjent adresse</h1>
<p>Denne adressen hører ikke til Meander. Sjekk adressen, eller bruk lenken du har fått fra oss.</p>
</body>
</html>
"""


def trusted_hosts(site_url: str, extra_hosts: list[str]) -> list[str]:
    """SITE_URL's host name and the extra names, as Werkzeug compares them (IPv6 in brackets)."""
    names = [urlsplit(site_url).hostname or "", *extra_hosts]
    return [f"[{name}]" if ":" in name and not name.startswith("[") else name for name in names if name]


def register(app: Flask) -> None:
    if app.config.get("TRUSTED_HOSTS") is None:
        app.config["TRUSTED_HOSTS"] = trusted_hosts(app.config["SITE_URL"], app.config["EXTRA_TRUSTED_HOSTS"])

    @app.errorhandler(SecurityError)
    def unknown_host(_error):
        return UNKNOWN_HOST_PAGE, 400, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}

    @app.after_request
    def _relative_redirects(response):
        location = response.headers.get("Location")
        if location:
            parts = urlsplit(location)
            if parts.netloc and parts.netloc == request.host:
                # One leading slash only: "//x" would be read as another host.
                path = "/" + parts.path.lstrip("/")
                response.headers["Location"] = urlunsplit(("", "", path, parts.query, parts.fragment))
        return response
