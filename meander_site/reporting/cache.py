"""The report's figures, computed once and shown many times: kept in Redis (JSON, never HTML) under a key made
of the period, the filters and a data version that every change the report can see moves.

A Redis that is down, slow (the client gives up after REDIS_SOCKET_TIMEOUT_SECONDS) or full just means
"compute it": every error is logged (no figures, no filters — they can name a campaign) and swallowed, never a
failed page.
"""

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from flask import current_app
from redis import Redis
from redis.exceptions import RedisError

from ..accounts.models import TeamSettings
from ..accounts.team_settings import ROW_ID
from ..core.clock import utcnow
from ..core.redis_client import shared_redis
from ..extensions import db
from ..leads.models import Lead, LeadStatusCount, StageWeight
from ..leads.statuses import LeadStatus
from .filters import ReportFilter
from .queries import FunnelStep, Report, Segment, Timing, Week, build
from .speed import SpeedFigures
from .value import ValueFigures

log = logging.getLogger(__name__)


def load(key: str) -> bytes | None:
    return _attempt(lambda redis, config: redis.get(config["REPORT_CACHE_KEY_PREFIX"] + key))


def store(key: str, value: bytes) -> None:
    _attempt(
        lambda redis, config: redis.set(
            config["REPORT_CACHE_KEY_PREFIX"] + key, value, ex=config["REPORT_CACHE_SECONDS"]
        )
    )


def _attempt(operation: Callable[[Redis, Mapping], object]) -> object:
    try:
        return operation(shared_redis(), current_app.config)
    except (RedisError, OSError) as error:
        log.warning("report cache unavailable", extra={"event": "report_cache_error", "error": type(error).__name__})
        return None


CACHE_FORMAT = 3  # bump when Report's fields change: entries of the old shape are then never read


@dataclass(frozen=True)
class DataVersion:
    """A fingerprint of everything the report reads, in one statement of index probes (no scan at any size).

    - the newest leads.updated_at (idx_lead_updated_at, migration 0010: a backward index probe). Every write
      to a lead bumps it: ORM changes and Core UPDATEs get it from the column's onupdate, the booking upsert
      sets it on a rebooking, moves, owner changes and edits set it, and the board's 30 s poll already relies
      on it. The journey trigger's own UPDATE does not, but it only runs inside a move or an insert that does.
      A new booking always comes with its lead's upsert, so bookings need no probe of their own.
    - the leads per status (lead_status_counts, kept by triggers on every insert, delete and status change:
      six rows). It catches what updated_at cannot: an erased lead (deleted, so its updated_at is gone) and
      demo leads inserted with a backdated updated_at.
    - the team's business hours and first-contact target (team_settings, one row): speed to lead is business time.
    Cheaper than a count(*) or a scan, and it adds no write anywhere: no counter row for bookings to queue on.
    What it cannot see is a change made outside the app by hand in SQL without updated_at: the TTL bounds that.
    """

    newest_change: datetime | None
    status_counts: tuple[tuple[str, int, int], ...]  # status, leads, sum of values (migration 0016)
    weights: tuple[tuple[str, int], ...] = ()  # the administrator's stage weights
    hours: tuple[int | None, ...] = ()  # opening and closing minute, first-contact target (None: no row, defaults)

    def settled(self, now: datetime, settle_seconds: float) -> bool:
        """Whether figures for this version may be kept. updated_at is taken before a transaction commits, so a
        transaction that stamped an earlier time can still be committing just after a later one did: while the
        newest change is fresh, figures are computed but not kept."""
        return self.newest_change is None or (now - self.newest_change).total_seconds() >= settle_seconds


HOURS_SETTINGS = ("opens_at_minute", "closes_at_minute", "first_contact_target_minutes")


def data_version() -> DataVersion:
    newest = sa.select(sa.func.max(Lead.updated_at)).scalar_subquery()
    hours = [
        sa.select(getattr(TeamSettings, name)).where(TeamSettings.id == ROW_ID).scalar_subquery()
        for name in HOURS_SETTINGS
    ]
    rows = db.session.execute(
        sa.select(
            LeadStatusCount.status, LeadStatusCount.lead_count, LeadStatusCount.value_sum, newest, *hours
        ).order_by(LeadStatusCount.status)
    ).all()
    weight_rows = db.session.execute(sa.select(StageWeight.status, StageWeight.percent).order_by(StageWeight.status))
    return DataVersion(
        newest_change=rows[0][3] if rows else None,
        status_counts=tuple((status, count, int(total)) for status, count, total, *_ in rows),
        weights=tuple((status, percent) for status, percent in weight_rows),
        hours=tuple(rows[0][4:]) if rows else (),
    )


def _cache_key(report_filter: ReportFilter, now: datetime, version: DataVersion) -> str:
    newest = version.newest_change.isoformat() if version.newest_change else ""
    identity = [
        CACHE_FORMAT,
        *report_filter.identity(now),
        newest,
        version.status_counts,
        version.weights,
        version.hours,
    ]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()


def _encode(value: object) -> object:
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, SpeedFigures):
        return value.to_json()
    if dataclasses.is_dataclass(value):
        return {item.name: getattr(value, item.name) for item in dataclasses.fields(value)}
    raise TypeError(type(value).__name__)


def _dump(report: Report) -> bytes:
    figures = {
        item.name: getattr(report, item.name)
        for item in dataclasses.fields(report)
        if item.name not in ("report_filter", "from_cache")
    }
    return json.dumps(figures, default=_encode).encode()


def _load(data: bytes, report_filter: ReportFilter) -> Report:
    figures = json.loads(data)

    def instant(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return Report(
        report_filter=report_filter,
        first_day=date.fromisoformat(figures["first_day"]),
        last_day=date.fromisoformat(figures["last_day"]),
        arrived=figures["arrived"],
        funnel=[FunnelStep(**{**step, "status": LeadStatus(step["status"])}) for step in figures["funnel"]],
        promise_kept=figures["promise_kept"],
        promise_due=figures["promise_due"],
        by_source=[Segment(**segment) for segment in figures["by_source"]],
        by_campaign=[Segment(**segment) for segment in figures["by_campaign"]],
        by_size=[Segment(**segment) for segment in figures["by_size"]],
        timings=[Timing(**timing) for timing in figures["timings"]],
        stage_medians=[Timing(**timing) for timing in figures["stage_medians"]],
        lost_reasons=[(reason, count) for reason, count in figures["lost_reasons"]],
        weeks=[Week(**{**week, "starts_on": date.fromisoformat(week["starts_on"])}) for week in figures["weeks"]],
        computed_at=instant(figures["computed_at"]),
        valid_until=instant(figures["valid_until"]),
        from_cache=True,
        no_show_counts=[(channel, demos, missed) for channel, demos, missed in figures["no_show_counts"]],
        value=ValueFigures.from_json(figures["value"]) if figures.get("value") else None,
        speed=SpeedFigures.from_json(figures["speed"]),
    )


def cached_build(report_filter: ReportFilter, now: datetime | None = None) -> Report:
    """build(), served from Redis while nothing the report reads has changed (see DataVersion), the period and
    the filters are the same, and no first-contact deadline has passed since; else computed and kept."""
    now = now or utcnow()
    config = current_app.config
    version = data_version()
    key = _cache_key(report_filter, now, version)
    cached = load(key)
    if cached is not None:
        try:
            report = _load(cached, report_filter)
        except (ValueError, KeyError, TypeError):
            report = None  # not figures this code wrote: compute them again
        if report is not None and (report.valid_until is None or now < report.valid_until):
            return report
    report = build(report_filter, now)
    if version.settled(now, config["REPORT_CACHE_SETTLE_SECONDS"]):
        store(key, _dump(report))
    return report
