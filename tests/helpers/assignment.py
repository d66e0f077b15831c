"""The assignment pool in tests: who takes new leads."""

import sqlalchemy as sa

from meander_site.accounts.models import User
from meander_site.extensions import db


def leave_the_pool(app, *user_ids) -> None:
    """«Tar imot nye leads» off for these users (all users without any): their tests are about leads nobody owns."""
    with app.app_context():
        statement = sa.update(User).values(takes_new_leads=False)
        if user_ids:
            statement = statement.where(User.id.in_(user_ids))
        db.session.execute(statement)
        db.session.commit()


def set_weights(app, weights: dict) -> None:
    """Each user id's weight in percent; everyone else leaves the pool."""
    with app.app_context():
        db.session.execute(sa.update(User).values(takes_new_leads=False))
        for user_id, weight in weights.items():
            db.session.execute(
                sa.update(User)
                .where(User.id == user_id)
                .values(takes_new_leads=True, assignment_weight_percent=weight, assignment_pass=0.0)
            )
        db.session.commit()
