"""The one MetaData every table joins: the areas' models (through `extensions.db`) and core's own tables (the
shared rate-limit counts in `rate_limits.py`), with the constraint names that keep migrations stable."""

import sqlalchemy as sa

# Named constraints so Alembic migrations are stable on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
