"""The assignment pool as an administrator sets it on the team page: who takes new leads («Tar imot nye leads») and
their share. The rotation itself (who is next) is assignment/pool.py's."""

import uuid
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import undefer_group

from ..extensions import db
from . import audit
from .absences import absent_user_ids
from .models import Absence, User
from .team_settings import WEIGHT_CHOICES


@dataclass(frozen=True)
class PoolMember:
    user: User
    absent_today: bool

    @property
    def in_pool(self) -> bool:
        return self.user.takes_new_leads and self.user.assignment_weight_percent > 0 and not self.absent_today


def pool_members(today: date) -> list[PoolMember]:
    """Every active member, by name, with whether they are away today."""
    away = absent_user_ids(today)
    people = db.session.scalars(
        sa.select(User).options(undefer_group("pool")).where(User.is_active).order_by(User.name, User.email)
    )
    return [PoolMember(user=user, absent_today=user.id in away) for user in people]


def upcoming_absences(today: date) -> list[tuple[Absence, User]]:
    """Everyone's absences that have not ended, earliest first (for the team page)."""
    query = (
        sa.select(Absence, User)
        .join(User, User.id == Absence.user_id)
        .where(Absence.ends_on >= today)
        .order_by(Absence.starts_on, User.name)
    )
    return [(absence, user) for absence, user in db.session.execute(query)]


class PoolRefused(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def set_membership(user_id: uuid.UUID, *, takes_new_leads: bool, weight_percent: int, by_id: uuid.UUID) -> None:
    """«Tar imot nye leads» and the member's share; commits. Someone joining the pool starts at the rotation's
    current place (the lowest of the others'), so they get the next lead, not a run of them."""
    if weight_percent not in WEIGHT_CHOICES:
        raise PoolRefused("Velg en av andelene i listen.")
    table = User.__table__
    others = table.alias("others")
    current_place = (
        sa.select(sa.func.coalesce(sa.func.min(others.c.assignment_pass), 0.0))
        .where(others.c.is_active.is_(True), others.c.takes_new_leads.is_(True), others.c.id != user_id)
        .scalar_subquery()
    )
    values = {"takes_new_leads": takes_new_leads, "assignment_weight_percent": weight_percent}
    if takes_new_leads:
        joining = table.c.takes_new_leads.is_(False)
        values["assignment_pass"] = sa.case((joining, current_place), else_=table.c.assignment_pass)
    db.session.execute(sa.update(table).where(table.c.id == user_id).values(**values))
    detail = f"tar imot nye leads, andel {weight_percent} %" if takes_new_leads else "tar ikke imot nye leads"
    audit.record("lead_pool_changed", actor_id=by_id, subject_id=user_id, detail=detail)
    db.session.commit()
