"""A lead's channel: where its touch came from, in one short name the report, the board and the mails share.

The campaign parameters when the link had them (utm_source, and utm_medium after a slash), else the site
that referred the prospect, else «Direkte». Stored on the lead for its first touch and its latest
(`first_channel`, `latest_channel`, written by leads/upsert.py), so the report groups by a column instead of
restating this rule in SQL. The campaign stays its own column (`first_utm_campaign`), the second level.
"""

from .attribution import Touch

DIRECT = "Direkte"
MAX_CHANNEL_LENGTH = 210  # utm_source (100) + " / " + utm_medium (100), with room to spare


def channel_of(touch: Touch) -> str:
    if touch.utm_source:
        return f"{touch.utm_source} / {touch.utm_medium}" if touch.utm_medium else touch.utm_source
    if touch.referrer_host:
        return touch.referrer_host.removeprefix("www.")
    return DIRECT
