"""The catalog's schema history on a real PostgreSQL: the contract of
tests/unit/test_catalog_migrations.py, plus the migration lock only a server has."""

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from diag_assets.core.storage.catalog.catalog import PostgresCatalog
from diag_assets.core.storage.catalog.dialects import PG_MIGRATION_LOCK_KEY
from tests.services import pg_query
from tests.unit.test_catalog_migrations import LEGACY, MigrationContract

pytestmark = pytest.mark.postgres


def connect(dsn: str) -> Any:
    import psycopg2

    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    return connection


def legacy_script() -> str:
    # pg_dump's \restrict and \unrestrict lines are psql meta-commands, not SQL.
    lines = (LEGACY / "catalog.postgres.sql").read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith("\\"))


def hold_migration_lock(dsn: str) -> Any:
    """A connection holding the catalog's migration lock until it is closed."""
    holder = connect(dsn)
    with holder.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", (PG_MIGRATION_LOCK_KEY,))
    return holder


def migrate_in_background(dsn: str) -> tuple[threading.Thread, list[int]]:
    """Opens and migrates the catalog in a thread; the list gets migrate()'s result."""
    opened: list[int] = []

    def open_and_migrate() -> None:
        with PostgresCatalog(dsn) as catalog:
            opened.append(catalog.migrate())

    worker = threading.Thread(target=open_and_migrate, daemon=True)
    worker.start()
    return worker, opened


class TestPostgresMigrations(MigrationContract):
    @pytest.fixture
    def location(self, postgres_dsn) -> tuple[str, str]:
        return ("postgres", postgres_dsn)

    @pytest.fixture
    def query(self, postgres_dsn) -> Callable[[str], list[tuple[Any, ...]]]:
        return pg_query(postgres_dsn)

    @pytest.fixture
    def execute(self, postgres_dsn) -> Callable[[str], None]:
        def run(sql: str) -> None:
            connection = connect(postgres_dsn)
            try:
                with connection.cursor() as cursor:
                    cursor.execute(sql)
            finally:
                connection.close()

        return run

    @pytest.fixture
    def engine(self, postgres_dsn) -> Iterator[sa.Engine]:
        import psycopg2

        engine = sa.create_engine(
            "postgresql+psycopg2://", creator=lambda: psycopg2.connect(postgres_dsn)
        )
        yield engine
        engine.dispose()

    @pytest.fixture
    def restore_legacy(self, execute) -> Callable[[], None]:
        return lambda: execute(legacy_script())

    @pytest.fixture
    def wipe(self, execute) -> Callable[[], None]:
        return lambda: execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")

    def test_the_legacy_dump_is_the_hand_written_schema(self, restore_legacy, query):
        restore_legacy()
        assert query(
            "SELECT data_type, is_identity, identity_generation FROM information_schema.columns"
            " WHERE table_name = 'diag_drift_checks' AND column_name = 'id'"
        ) == [("bigint", "YES", "ALWAYS")]
        assert query("SELECT to_regclass('diag_catalog_alembic_version')") == [(None,)]

    def test_opening_an_up_to_date_catalog_takes_no_migration_lock(self, postgres_dsn):
        PostgresCatalog(postgres_dsn).close()
        holder = hold_migration_lock(postgres_dsn)
        try:
            worker, opened = migrate_in_background(postgres_dsn)
            worker.join(timeout=20)
            assert opened == [3], "opening an up-to-date catalog waited for the migration lock"
        finally:
            holder.close()

    def test_a_migration_waits_for_the_lock_of_another(self, postgres_dsn, query):
        holder = hold_migration_lock(postgres_dsn)
        try:
            worker, opened = migrate_in_background(postgres_dsn)
            worker.join(timeout=1)
            assert worker.is_alive() and opened == []
            assert query("SELECT to_regclass('diagnostic_capture')") == [(None,)]
        finally:
            holder.close()
        worker.join(timeout=20)
        assert opened == [3]
