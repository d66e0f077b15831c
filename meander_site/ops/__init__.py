"""Endpoints for the platform, not for people: /healthz (the process is alive), /readyz (it can serve)."""
