"""Security headers on every response: pages, fragments, errors, static files and the ops endpoints.

The CSP allows no inline script or style: every script and stylesheet is a file under static/, and htmx
is configured (meta htmx-config in base.html) to need neither eval nor its injected indicator style.
A view that sets a header itself (the confirmation page's `no-referrer`) keeps its value.

A page that carries a form token, or sets a cookie, is personal: it is sent with `Cache-Control: no-store`,
so no shared cache keeps one visitor's token, cookie or echoed query string (`/demo?utm_source=…`,
`/login?next=…`) for the next.
"""

from flask import Flask, current_app, g

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "object-src 'none'",
    ]
)
# Powerful features the site never uses, switched off for it and anything it might embed.
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
HSTS = "max-age=31536000; includeSubDomains"

DEFAULT_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
    "Permissions-Policy": PERMISSIONS_POLICY,
}


def headers_for_every_response(site_url: str) -> dict[str, str]:
    """HSTS follows the configured public URL, never the request."""
    if site_url.startswith("https://"):
        return {**DEFAULT_HEADERS, "Strict-Transport-Security": HSTS}
    return dict(DEFAULT_HEADERS)


def register(app: Flask) -> None:
    @app.after_request
    def _security_headers(response):
        # Read per request, not at start-up.
        for name, value in headers_for_every_response(current_app.config["SITE_URL"]).items():
            response.headers.setdefault(name, value)
        if is_personal(response):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def is_personal(response) -> bool:
    """The page holds this visitor's CSRF token (rendered into it during this request) or sets a cookie."""
    token_rendered = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token") in g
    return token_rendered or "Set-Cookie" in response.headers
