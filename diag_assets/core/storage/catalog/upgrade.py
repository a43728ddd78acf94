"""Brings a catalog's schema to the newest revision of its alembic history.

The history is the alembic script folder ``migrations/`` beside this module (shipped in the
package). Revision ids are the schema versions, zero-padded (``0001``, ``0002``, ...), so
that :func:`schema_version` can report them as numbers as the catalog always has. The version
is kept in :data:`VERSION_TABLE`, not alembic's default ``alembic_version``, which Dagster's
PostgreSQL storage uses when the catalog shares its database.

Catalogs created before the alembic history kept their version in
:data:`LEGACY_VERSION_TABLE`, written by a hand-written migration list whose versions 1 and 2
created exactly what revisions ``0001`` and ``0002`` create. Such a catalog is *adopted*: the
revision of its highest legacy version is stamped, then the newer revisions run as on any
catalog. Its legacy table is left as it was, so that the release before this one can still
open the catalog; nothing reads it again.

A new revision is a file in ``migrations/versions`` whose ``revision`` is the next number and
whose ``down_revision`` is the previous one; ``alembic.command.revision(alembic_config(None),
message, rev_id="0004")`` writes one from ``script.py.mako``.
"""

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS_PATH = Path(__file__).with_name("migrations")
VERSION_TABLE = "diag_catalog_alembic_version"
LEGACY_VERSION_TABLE = "diag_schema_migrations"
# Version of the hand-written history -> the revision that creates the same schema.
LEGACY_REVISIONS = {1: "0001", 2: "0002"}


def alembic_config(connection: sa.Connection | None, path: Path | None = None) -> Config:
    """An alembic configuration of the catalog's history that migrates ``connection``.

    Args:
        connection: An open connection inside a transaction, or None for commands that do
            not touch a database (``revision``, ``history``).
        path: The script folder; :data:`MIGRATIONS_PATH` unless given.
    """
    config = Config()
    # Config values go through configparser interpolation, where % is special.
    config.set_main_option("script_location", str(path or MIGRATIONS_PATH).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@cache
def head_revision(path: Path = MIGRATIONS_PATH) -> str:
    """The newest revision of the history in ``path``; read once per process."""
    head = ScriptDirectory.from_config(alembic_config(None, path)).get_current_head()
    if head is None:
        raise RuntimeError(f"the catalog's migration history in {path} has no revisions")
    return head


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the database is at, or None if it has none (yet)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def schema_version(revision: str | None) -> int:
    """The schema version a revision stands for (0: nothing migrated)."""
    return int(revision) if revision else 0


def upgrade(connection: sa.Connection, path: Path | None = None) -> str:
    """Adopts a legacy catalog if needed, then applies every pending revision.

    Runs inside the caller's transaction, which must hold the schema lock (see the dialect's
    ``lock_schema``), so that concurrent calls apply each revision once.

    Args:
        connection: An open connection inside a transaction.
        path: The script folder; :data:`MIGRATIONS_PATH` unless given (tests).

    Returns:
        The revision the database is at afterwards. A database at a revision this history
        does not know (migrated by a newer release) is left as it is.
    """
    path = path or MIGRATIONS_PATH
    config = alembic_config(connection, path)
    current = current_revision(connection)
    if current is None:
        legacy = _legacy_revision(connection)
        if legacy is not None:
            command.stamp(config, legacy)
    elif _is_unknown(current, path):
        return current
    command.upgrade(config, "head")
    revision = current_revision(connection)
    if revision is None:
        raise RuntimeError(f"the catalog's migrations in {path} recorded no revision")
    return revision


def _legacy_revision(connection: sa.Connection) -> str | None:
    """The revision matching a hand-written-history catalog's version, or None if not one."""
    if not sa.inspect(connection).has_table(LEGACY_VERSION_TABLE):
        return None
    legacy = sa.table(LEGACY_VERSION_TABLE, sa.column("version", sa.Integer()))
    version = connection.execute(sa.select(sa.func.max(legacy.c.version))).scalar()
    if version is None:
        return None
    if version not in LEGACY_REVISIONS:
        raise RuntimeError(
            f"{LEGACY_VERSION_TABLE} records version {version}, which no revision of the "
            f"catalog's history matches (known: {sorted(LEGACY_REVISIONS)})"
        )
    return LEGACY_REVISIONS[version]


def _is_unknown(revision: str, path: Path) -> bool:
    script = ScriptDirectory.from_config(alembic_config(None, path))
    return revision not in {known.revision for known in script.walk_revisions()}
