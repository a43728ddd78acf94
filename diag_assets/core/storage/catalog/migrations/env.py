"""Alembic's entry point for the catalog's migrations, run by the catalog, never by hand.

The caller (:func:`diag_assets.core.storage.catalog.upgrade.upgrade`) passes an open
connection, inside a transaction that holds the schema lock, in
``config.attributes["connection"]``: every revision then runs in that one transaction and is
committed (or rolled back) with it. The version is kept in the catalog's own table, so that
the catalog can share a database with Dagster's storage, whose alembic history lives in the
default ``alembic_version``.
"""

from alembic import context

from diag_assets.core.storage.catalog.schema import metadata
from diag_assets.core.storage.catalog.upgrade import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "The capture catalog's migrations run on the connection the catalog passes in. "
        "Fix: open the catalog (SqliteCatalog or PostgresCatalog) or call its migrate()."
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
)
with context.begin_transaction():
    context.run_migrations()
