"""Who may manage the team, and who may sign in: roles, deactivation and reactivation.

The team always keeps an active administrator. Demoting or deactivating one first locks every active
administrator's row, in id order, so two such transactions queue instead of deadlocking; then a
compare-and-set statement counts the others afresh. When two administrators demote each other at once,
the second one counts after the first commits, and finds nobody left. (The lock is a statement of its own:
folded into the count, PostgreSQL pushes the «not this one» filter below the lock, each side locks only the
other's row, and the two deadlock.)
"""

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from ..core.clock import utcnow
from ..extensions import db
from . import audit
from .models import AccountToken, Role, StaffSession, User


class AccountNotFound(LookupError):
    pass


class LastAdministrator(ValueError):
    MESSAGE = "Teamet må ha minst én aktiv administrator. Gjør en kollega til administrator først."

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


def parse_role(value: str | None) -> Role | None:
    try:
        return Role(value)
    except ValueError:
        return None


def _lock_active_administrators() -> None:
    """Hold every active administrator's row until commit (PostgreSQL; SQLite runs one writer at a time)."""
    db.session.execute(
        sa.select(User.id).where(User.role == Role.ADMIN.value, User.is_active).order_by(User.id).with_for_update()
    ).all()


def _another_active_administrator(user_id: uuid.UUID) -> sa.ColumnElement[bool]:
    """True while an active administrator besides `user_id` exists; call after _lock_active_administrators."""
    other = aliased(User)  # an alias, so the count is not correlated to the row being updated
    others = sa.select(sa.func.count()).where(other.role == Role.ADMIN.value, other.is_active, other.id != user_id)
    return others.scalar_subquery() >= 1


def _get(user_id: uuid.UUID) -> User:
    user = db.session.get(User, user_id, populate_existing=True)
    if user is None:
        raise AccountNotFound(user_id)
    return user


def change_role(user_id: uuid.UUID, role: Role, by_id: uuid.UUID | None) -> bool:
    """Give someone a role; False when they had it already. Raises LastAdministrator."""
    if role == Role.SELLER:
        _lock_active_administrators()
        statement = sa.update(User).where(
            User.id == user_id, User.role == Role.ADMIN.value, _another_active_administrator(user_id)
        )
    else:
        statement = sa.update(User).where(User.id == user_id, User.role != role.value)
    changed = db.session.execute(statement.values(role=role.value), execution_options={"synchronize_session": False})
    if changed.rowcount == 0:
        db.session.rollback()
        user = _get(user_id)
        if user.role == role.value:
            return False
        raise LastAdministrator()
    audit.record("role_changed", actor_id=by_id, subject_id=user_id, detail=role.value)
    db.session.commit()
    return True


def deactivate(user_id: uuid.UUID, by_id: uuid.UUID | None) -> bool:
    """Nobody can sign in as them any more, and every session of theirs ends at once; their open leads show as
    «Ufordelt» (pipeline.board). False when they were deactivated already. Raises LastAdministrator."""
    _lock_active_administrators()
    changed = db.session.execute(
        sa.update(User)
        .where(
            User.id == user_id,
            User.is_active,
            sa.or_(User.role != Role.ADMIN.value, _another_active_administrator(user_id)),
        )
        .values(is_active=False),
        execution_options={"synchronize_session": False},
    )
    if changed.rowcount == 0:
        db.session.rollback()
        if not _get(user_id).is_active:
            return False
        raise LastAdministrator()
    now = utcnow()
    db.session.execute(sa.delete(StaffSession).where(StaffSession.user_id == user_id))
    # A reset link mailed before cannot bring the account back.
    db.session.execute(
        sa.update(AccountToken)
        .where(AccountToken.user_id == user_id, AccountToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    audit.record("user_deactivated", actor_id=by_id, subject_id=user_id, now=now)
    db.session.commit()
    return True


def reactivate(user_id: uuid.UUID, by_id: uuid.UUID | None) -> bool:
    changed = db.session.execute(
        sa.update(User).where(User.id == user_id, sa.not_(User.is_active)).values(is_active=True),
        execution_options={"synchronize_session": False},
    )
    if changed.rowcount == 0:
        db.session.rollback()
        _get(user_id)
        return False
    audit.record("user_reactivated", actor_id=by_id, subject_id=user_id)
    db.session.commit()
    return True
