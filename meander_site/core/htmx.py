"""The one place that knows how htmx talks to us."""

from flask import Response, redirect, request


def is_htmx_request() -> bool:
    return request.headers.get("HX-Request") == "true"


def redirect_after_post(location: str) -> Response:
    """303 for a plain form post; for htmx the equivalent header, so the browser loads the page itself."""
    if is_htmx_request():
        response = Response(status=200)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location, code=303)
