"""Absolute links for mail and calendars: the route's path (url_for's rules) on SITE_URL.

Never built from a request's Host header, and the same in the worker, which has no request at all.
"""

import functools
from urllib.parse import urlsplit

from flask import current_app
from werkzeug.routing import MapAdapter


@functools.cache
def _site_adapter(url_map, site_url: str) -> MapAdapter:
    site = urlsplit(site_url)
    return url_map.bind(site.netloc, script_name=site.path or "/", url_scheme=site.scheme)


def external_url(endpoint: str, **values) -> str:
    """url_for(endpoint, _external=True), against SITE_URL."""
    adapter = _site_adapter(current_app.url_map, current_app.config["SITE_URL"])
    return adapter.build(endpoint, values, force_external=True)
