"""The models and the migrations describe one schema: a model change without its migration fails here."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from meander_site.extensions import db


def schema_differences(metadata: sa.MetaData) -> list:
    """What autogenerate would write into a new migration (`flask db check`), against the migrated test database."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
        if connection.dialect.name == "sqlite":
            differences = _without_inline_foreign_keys_that_match(differences, connection)
        return differences


def _without_inline_foreign_keys_that_match(differences: list, connection) -> list:
    """SQLite's reflection reads ON DELETE only from table-level FOREIGN KEY clauses. A column added later
    (ALTER TABLE … ADD COLUMN … REFERENCES … ON DELETE …, since a table copy would drop the triggers) carries
    its foreign key inline: reflected without its ON DELETE, it looks removed and re-added. Such a pair is no
    difference when SQLite itself (PRAGMA foreign_key_list) enforces exactly what the model declares."""

    def signature(fk) -> tuple:
        return fk.table.name, tuple(column.name for column in fk.columns), fk.elements[0].column.table.name

    foreign_keys = [d for d in differences if len(d) == 2 and d[0] in ("add_fk", "remove_fk")]
    added = {signature(fk): fk for kind, fk in foreign_keys if kind == "add_fk"}
    explained = set()
    for kind, fk in foreign_keys:
        table, columns, target = signature(fk)
        if kind == "remove_fk" and fk.name is None and (table, columns, target) in added and len(columns) == 1:
            enforced = {
                (row[2], row[3], row[6]) for row in connection.exec_driver_sql(f'PRAGMA foreign_key_list("{table}")')
            }
            declared = (added[table, columns, target].ondelete or "NO ACTION").upper()
            if (target, columns[0], declared) in enforced:
                explained.add((table, columns, target))
    return [d for d in differences if not (d in foreign_keys and signature(d[1]) in explained)]


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
