"""The client's address as the rate limiter and the lead record see it."""

from flask import request


def client_ip() -> str:
    # ProxyFix (installed only when TRUSTED_PROXY_COUNT > 0) has already rewritten remote_addr from
    # X-Forwarded-For; without trusted proxies the header is ignored and the socket's peer counts.
    return request.remote_addr or "unknown"
