"""The models and the migrations describe one schema: a model change without its migration fails here."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from meander_site.extensions import db


def schema_differences(metadata: sa.MetaData) -> list:
    """What autogenerate would write into a new migration (`flask db check`), against the migrated test database."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def test_the_models_match_the_schema_the_migrations_build(app):
    with app.app_context():
        assert schema_differences(db.metadata) == []


def test_a_model_column_without_a_migration_is_found(app):
    # The canary: the comparison above would pass vacuously if it saw no difference at all.
    metadata = sa.MetaData()
    for table in db.metadata.tables.values():
        table.to_metadata(metadata)
    metadata.tables["leads"].append_column(sa.Column("favourite_colour", sa.String(40)))

    with app.app_context():
        differences = schema_differences(metadata)

    assert [(kind, table, column.name) for kind, _, table, column in differences] == [
        ("add_column", "leads", "favourite_colour")
    ]
