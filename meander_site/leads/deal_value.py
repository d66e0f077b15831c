"""What a deal is worth: the estimate and expected close month from «Kvalifisert» on, the agreed annual value at
«Kunde», and the administrator's weights per open stage. Whole kroner, validated here once. Knows nothing of HTTP."""

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from ..accounts.models import User
from ..core.clock import utcnow
from ..core.money import kroner
from ..extensions import db
from . import records
from .models import Lead, StageWeight
from .statuses import OPEN_STATUSES, LeadStatus, parse_status
from .validation import LeadValidationError

# Whole kroner, 0 or more and below 100 million (the seed's bound for an annual value).
MAX_VALUE_EXCLUSIVE = 100_000_000
# Stages a lead may carry an estimate in: from «Kvalifisert» on, while it is open.
ESTIMATE_STATUSES = frozenset({LeadStatus.QUALIFIED, LeadStatus.DEMO_SCHEDULED})
DEFAULT_WEIGHTS = {
    LeadStatus.NEW.value: 5,
    LeadStatus.CONTACTED.value: 10,
    LeadStatus.QUALIFIED.value: 25,
    LeadStatus.DEMO_SCHEDULED.value: 50,
}
# Digits with spaces (or no-break spaces) between groups, as people type «48 000»; an optional «kr» in front.
_KRONER = re.compile(r"(?:kr\.?\s*)?(\d{1,3}(?:[ \u00a0\u202f]\d{3})+|\d+)(?:,-)?", re.IGNORECASE)
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def parse_kroner(raw: object, field: str, label: str, *, required: bool) -> int | None:
    """A whole number of kroner from a form field, or a LeadValidationError with a Norwegian message."""
    text = str(raw or "").strip()
    if not text:
        if required:
            raise LeadValidationError({field: f"Skriv {label} i hele kroner, for eksempel 48000."})
        return None
    match = _KRONER.fullmatch(text)
    if match is None:
        raise LeadValidationError(
            {field: f"Skriv {label} som et helt antall kroner uten øre, for eksempel 48000 (0 eller mer)."}
        )
    value = int(re.sub(r"\D", "", match.group(1)))
    if value >= MAX_VALUE_EXCLUSIVE:
        raise LeadValidationError({field: f"{label.capitalize()} må være under 100 millioner kroner."})
    return value


def validate_deal_value(raw: Mapping[str, str]) -> int:
    """The agreed annual value a move to «Kunde» asks for (form field `deal_value`): required."""
    value = parse_kroner(raw.get("deal_value"), "deal_value", "avtalt årsverdi", required=True)
    assert value is not None
    return value


@dataclass(frozen=True)
class Estimate:
    value: int | None
    close_month: date | None


def parse_month(raw: object) -> date | None:
    """«2027-03» (an <input type="month">) as the first day of that month; empty is None."""
    text = str(raw or "").strip()
    if not text:
        return None
    match = _MONTH.fullmatch(text)
    if match is None or not 1 <= int(match.group(2)) <= 12 or not 2000 <= int(match.group(1)) <= 2100:
        raise LeadValidationError({"expected_close_month": "Velg måned og år, for eksempel 2027-03."})
    return date(int(match.group(1)), int(match.group(2)), 1)


def validate_estimate(raw: Mapping[str, str]) -> Estimate:
    errors = {}
    value = month = None
    try:
        value = parse_kroner(raw.get("estimated_value"), "estimated_value", "anslått årsverdi", required=False)
    except LeadValidationError as error:
        errors.update(error.errors)
    try:
        month = parse_month(raw.get("expected_close_month"))
    except LeadValidationError as error:
        errors.update(error.errors)
    if errors:
        raise LeadValidationError(errors)
    return Estimate(value=value, close_month=month)


def can_estimate(status: str) -> bool:
    return parse_status(status) in ESTIMATE_STATUSES


def set_estimate(lead_id: uuid.UUID, estimate: Estimate, by: User) -> Lead:
    """Set (or clear) a lead's estimate and close month; only from «Kvalifisert» on, while the lead is open."""
    lead = records.get_lead(lead_id)
    if not can_estimate(lead.status):
        raise LeadValidationError(
            {"estimated_value": "Anslått verdi kan settes fra «Kvalifisert» til «Demo avtalt». Flytt leaden først."}
        )
    now = utcnow()
    db.session.execute(
        sa.update(Lead)
        .where(Lead.id == lead_id)
        .values(estimated_value=estimate.value, expected_close_month=estimate.close_month, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    detail = "Anslått verdi: " + (kroner(estimate.value) if estimate.value is not None else "ingen")
    if estimate.close_month:
        detail += f", forventet avsluttet {estimate.close_month:%m.%Y}"
    records.record_event(lead_id, "estimate_set", by, detail, now)
    db.session.commit()
    db.session.refresh(lead)
    return lead


# --- the weights ---------------------------------------------------------------------------------------------


def stage_weights() -> dict[str, int]:
    """Each open stage's probability in whole percent, the defaults where an administrator set none."""
    weights = dict(DEFAULT_WEIGHTS)
    weights.update(dict(db.session.execute(sa.select(StageWeight.status, StageWeight.percent)).all()))
    return {status.value: weights[status.value] for status in OPEN_STATUSES}


def validate_weights(raw: Mapping[str, str]) -> dict[str, int]:
    weights, errors = {}, {}
    for status in OPEN_STATUSES:
        text = str(raw.get(f"weight_{status.value}") or "").strip().rstrip("%").strip()
        if not text.isdigit() or int(text) > 100:
            errors[f"weight_{status.value}"] = (
                f"Skriv sannsynligheten for «{status.label}» som et helt tall fra 0 til 100."
            )
            continue
        weights[status.value] = int(text)
    if errors:
        raise LeadValidationError(errors)
    return weights


def set_stage_weights(weights: Mapping[str, int], by: User) -> None:
    now = utcnow()
    for status, percent in weights.items():
        row = db.session.get(StageWeight, status)
        if row is None:
            row = StageWeight(status=status)
            db.session.add(row)
        row.percent, row.updated_at, row.updated_by_id = percent, now, by.id
    db.session.commit()
