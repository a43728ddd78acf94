"""The catalog's schema history (alembic), run here on SQLite.

:class:`MigrationContract` is written once and run here on SQLite and in
``tests/integration/test_catalog_migrations_postgres.py`` on PostgreSQL. A subclass provides
``location`` (``(kind, where)`` of a fresh, empty database), ``query`` and ``execute`` (SQL
through a connection of their own), ``engine`` (an SQLAlchemy engine on that database),
``restore_legacy`` (writes ``tests/data/legacy_catalog`` into it: a catalog as the
hand-written schema history before alembic left it) and ``wipe`` (empties it again).
"""

import json
import multiprocessing
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from diag_assets.core.storage.catalog import upgrade
from diag_assets.core.storage.catalog.catalog import CaptureCatalog
from diag_assets.core.storage.catalog.model import (
    CaptureFenced,
    CaptureStatus,
    CatalogEntry,
    CatalogUnavailable,
)
from diag_assets.core.storage.catalog.schema import metadata
from tests.unit.test_catalog import begin, ck, complete, open_catalog

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_catalog"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())
HEAD = "0003"
CATALOG_TABLES = {"diagnostic_capture", "diag_drift_checks", upgrade.VERSION_TABLE}


def migrate_in_process(kind: str, where: str, barrier: Any, results: Any) -> None:
    """Run in a spawned process: open (and so migrate) the catalog once all peers are ready."""
    try:
        barrier.wait(timeout=60)
        with open_catalog(kind, where) as catalog:
            results.put(("ok", catalog.migrate()))
    except BaseException as error:  # every failure must reach the parent
        results.put(("error", repr(error)))


def describe(engine: sa.Engine) -> dict[str, Any]:
    """Every table's columns, keys, indexes and checks, as the database reports them."""
    inspector = sa.inspect(engine)
    tables: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        columns = []
        for column in inspector.get_columns(table):
            nullable = column["nullable"]
            if engine.dialect.name == "sqlite" and column["name"] == "id":
                # SQLite reports its rowid alias (INTEGER PRIMARY KEY) as nullable unless it
                # was declared NOT NULL; it can never hold NULL either way.
                nullable = False
            columns.append(
                (column["name"], str(column["type"]), nullable, column.get("default"))
                + (str(column.get("identity")),)
            )
        tables[table] = {
            "columns": columns,
            "primary_key": inspector.get_pk_constraint(table),
            "indexes": sorted(
                (index["name"], tuple(index["column_names"]), bool(index["unique"]))
                for index in inspector.get_indexes(table)
            ),
            "checks": sorted(
                (check["name"] or "", check["sqltext"])
                for check in inspector.get_check_constraints(table)
            ),
            "foreign_keys": inspector.get_foreign_keys(table),
        }
    return tables


def stored_drift_checks(query: Callable[[str], list[tuple[Any, ...]]]) -> list[list[Any]]:
    rows = query(
        "SELECT id, capture_key, cell_ref, drifted, checked_at FROM diag_drift_checks ORDER BY id"
    )
    return [
        [int(i), key, cell, bool(drifted), _utc_text(checked_at)]
        for i, key, cell, drifted, checked_at in rows
    ]


def _utc_text(value: str | datetime) -> str:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).isoformat()


class MigrationContract:
    @pytest.fixture
    def catalog(self, location: tuple[str, str]) -> Iterator[CaptureCatalog]:
        with open_catalog(*location) as catalog:
            yield catalog

    # -- a new catalog ---------------------------------------------------------------------

    def test_a_new_catalog_is_created_at_the_newest_revision(self, catalog, engine, query):
        assert catalog.migrate() == 3
        assert set(sa.inspect(engine).get_table_names()) == CATALOG_TABLES
        assert query(f"SELECT version_num FROM {upgrade.VERSION_TABLE}") == [(HEAD,)]
        assert query("SELECT COUNT(*) FROM diagnostic_capture") == [(0,)]
        assert query("SELECT COUNT(*) FROM diag_drift_checks") == [(0,)]

    def test_a_second_open_changes_nothing(self, catalog, location, engine, query):
        begin(catalog, ck(1))
        schema, rows = describe(engine), query("SELECT * FROM diagnostic_capture")
        with open_catalog(*location) as again:
            assert again.migrate() == 3
            assert again.migrate() == 3
        assert describe(engine) == schema
        assert query("SELECT * FROM diagnostic_capture") == rows
        assert query(f"SELECT version_num FROM {upgrade.VERSION_TABLE}") == [(HEAD,)]

    def test_the_table_definitions_describe_the_migrated_schema(self, catalog, engine):
        options = {"compare_type": True, "compare_server_default": True}
        options["version_table"] = upgrade.VERSION_TABLE
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=options)
            differences = compare_metadata(context, metadata)
        if engine.dialect.name == "sqlite":
            # SQLite has no identity columns: the INTEGER PRIMARY KEY is its rowid.
            differences = [
                difference
                for difference in differences
                if not (
                    isinstance(difference, list)
                    and difference[0][0] == "modify_default"
                    and isinstance(difference[0][-1], sa.Identity)
                )
            ]
        assert differences == []

    def test_concurrent_migrate_from_processes_ends_at_the_newest_version(self, location, query):
        context = multiprocessing.get_context("spawn")
        processes = 4
        barrier = context.Barrier(processes)
        results = context.Queue()
        workers = [
            context.Process(target=migrate_in_process, args=(*location, barrier, results))
            for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
            assert worker.exitcode == 0
        assert outcomes == [("ok", 3)] * processes
        assert query(f"SELECT version_num FROM {upgrade.VERSION_TABLE}") == [(HEAD,)]

    def test_failed_migration_is_rolled_back(self, catalog, location, query, tmp_path, monkeypatch):
        # Statements that succeed, then one that fails: none of them may stay.
        history = tmp_path / "migrations"
        shutil.copytree(upgrade.MIGRATIONS_PATH, history)
        (history / "versions" / "0004_broken.py").write_text(
            '"""broken on purpose"""\n'
            "from alembic import op\n"
            'revision = "0004"\n'
            'down_revision = "0003"\n'
            "def upgrade():\n"
            '    op.execute("INSERT INTO diag_drift_checks (capture_key, cell_ref, drifted,'
            " checked_at) VALUES ('ck-x', 'cell', TRUE, '2026-01-01T00:00:00+00:00')\")\n"
            '    op.execute("CREATE TABLE diag_broken (x INTEGER PRIMARY KEY)")\n'
            '    op.execute("INSERT INTO diag_broken (x) VALUES (1)")\n'
            '    op.execute("INSERT INTO diag_broken (x) VALUES (1)")\n'
        )
        monkeypatch.setattr(upgrade, "MIGRATIONS_PATH", history)
        with pytest.raises(Exception) as raised:
            open_catalog(*location)
        assert not isinstance(raised.value, CatalogUnavailable)
        assert "diag_broken" in str(raised.value)
        monkeypatch.undo()
        assert query(f"SELECT version_num FROM {upgrade.VERSION_TABLE}") == [(HEAD,)]
        assert query("SELECT COUNT(*) FROM diag_drift_checks") == [(0,)]
        with pytest.raises(Exception, match="diag_broken"):
            query("SELECT * FROM diag_broken")
        assert catalog.migrate() == 3

    def test_downgrade_to_nothing_and_back(self, catalog, engine, location):
        with engine.begin() as connection:
            command.downgrade(upgrade.alembic_config(connection), "base")
        assert set(sa.inspect(engine).get_table_names()) == {upgrade.VERSION_TABLE}
        with open_catalog(*location) as again:
            assert again.migrate() == 3
            assert begin(again, ck(1)).status == CaptureStatus.CAPTURING

    def test_a_database_migrated_by_a_newer_release_is_used_as_it_is(
        self, catalog, location, execute, query
    ):
        execute(f"UPDATE {upgrade.VERSION_TABLE} SET version_num = '0007'")
        with open_catalog(*location) as newer:
            assert newer.migrate() == 7
            assert begin(newer, ck(1)).status == CaptureStatus.CAPTURING
        assert query(f"SELECT version_num FROM {upgrade.VERSION_TABLE}") == [("0007",)]

    def test_another_alembic_history_in_the_same_database_is_left_alone(
        self, location, execute, query, engine
    ):
        # What Dagster's own PostgreSQL storage keeps in the database it may share with us.
        execute(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);"
            " INSERT INTO alembic_version VALUES ('7e2f3204cf8e')"
        )
        with open_catalog(*location) as catalog:
            assert catalog.migrate() == 3
        assert query("SELECT version_num FROM alembic_version") == [("7e2f3204cf8e",)]
        assert set(sa.inspect(engine).get_table_names()) == CATALOG_TABLES | {"alembic_version"}

    # -- a catalog of the hand-written schema history --------------------------------------

    def test_a_legacy_catalog_upgrades_with_every_row(self, restore_legacy, location, query):
        restore_legacy()
        legacy_versions = query("SELECT version FROM diag_schema_migrations ORDER BY 1")
        assert legacy_versions == [(1,), (2,)]
        with open_catalog(*location) as catalog:
            assert EXPECTED["schema_version"] == 2  # the legacy catalog's own version
            assert catalog.migrate() == 3
            entries = [CatalogEntry.model_validate(entry) for entry in EXPECTED["entries"]]
            assert catalog.entries() == entries
            for entry in entries:
                assert catalog.get(entry.key) == entry
            assert {entry.status for entry in entries} == set(CaptureStatus)
            assert catalog.drift_counts() == tuple(EXPECTED["drift_counts"]) == (5, 2)
            third = datetime.fromisoformat(EXPECTED["drift_checks"][2][4])
            assert catalog.drift_counts(since=third) == (3, 1)
        assert stored_drift_checks(query) == EXPECTED["drift_checks"]
        assert query(f"SELECT version_num FROM {upgrade.VERSION_TABLE}") == [(HEAD,)]
        # Left as it was, so that the release before alembic can still open the catalog.
        assert query("SELECT version FROM diag_schema_migrations ORDER BY 1") == legacy_versions

    def test_a_legacy_catalog_works_after_the_upgrade(self, restore_legacy, location, query):
        restore_legacy()
        with open_catalog(*location) as catalog:
            latest = catalog.latest_complete("rq-shared")
            assert latest is not None and latest.key == ck(2)
            begin(catalog, ck(20))
            done = complete(catalog, ck(20), bytes=7)
            assert done.status == CaptureStatus.COMPLETE
            assert catalog.get(ck(20)) == done
            catalog.record_use(ck(1))
            used = catalog.get(ck(1))
            assert used is not None and used.use_count == 4
            stale = catalog.get(ck(6))
            assert stale is not None and stale.status == CaptureStatus.STALE
            again = begin(catalog, ck(6), run_id="run-6-again")
            assert (again.status, again.created_at, again.use_count) == (
                CaptureStatus.CAPTURING,
                stale.created_at,
                2,
            )
            catalog.record_drift_check(ck(20), drifted=True, cell_ref="defi_top5/X/fold-0")
            assert catalog.drift_counts() == (6, 3)
            # A row begun before attempts existed belongs to no attempt: a writer of that
            # release can never complete it, a new begin takes it over.
            capturing = catalog.get(ck(8))
            assert capturing is not None and capturing.attempt_id is None
            with pytest.raises(CaptureFenced, match="attempt none"):
                complete(catalog, ck(8))
            assert catalog.get(ck(8)) == capturing
            begin(catalog, ck(8), attempt_id="at-8")
            assert complete(catalog, ck(8), attempt_id="at-8").status == CaptureStatus.COMPLETE
        assert query("SELECT MAX(id) FROM diag_drift_checks") == [(6,)]

    def test_an_upgraded_legacy_catalog_has_the_schema_of_a_new_one(
        self, catalog, location, engine, restore_legacy, wipe
    ):
        fresh = describe(engine)
        catalog.close()
        engine.dispose()
        wipe()
        restore_legacy()
        with open_catalog(*location):
            pass
        upgraded = describe(engine)
        assert set(upgraded) - set(fresh) == {upgrade.LEGACY_VERSION_TABLE}
        upgraded.pop(upgrade.LEGACY_VERSION_TABLE)
        assert upgraded == fresh

    def test_a_legacy_catalog_at_version_1_gets_the_drift_checks(
        self, restore_legacy, location, execute, query
    ):
        restore_legacy()
        execute(
            "DROP TABLE diag_drift_checks; DELETE FROM diag_schema_migrations WHERE version = 2"
        )
        with open_catalog(*location) as catalog:
            assert catalog.migrate() == 3
            assert catalog.entries() == [
                CatalogEntry.model_validate(entry) for entry in EXPECTED["entries"]
            ]
            assert catalog.drift_counts() == (0, 0)
            catalog.record_drift_check(ck(1), drifted=False, cell_ref="defi_top5/X/fold-0")
            assert catalog.drift_counts() == (1, 0)
        assert query(f"SELECT version_num FROM {upgrade.VERSION_TABLE}") == [(HEAD,)]


class TestSqliteMigrations(MigrationContract):
    @pytest.fixture
    def location(self, tmp_path) -> tuple[str, str]:
        return ("sqlite", str(tmp_path / "not" / "yet" / "there" / "catalog.sqlite"))

    @pytest.fixture
    def query(self, location) -> Callable[[str], list[tuple[Any, ...]]]:
        def run(sql: str) -> list[tuple[Any, ...]]:
            with closing(sqlite3.connect(location[1])) as connection:
                return connection.execute(sql).fetchall()

        return run

    @pytest.fixture
    def execute(self, location) -> Callable[[str], None]:
        def run(sql: str) -> None:
            Path(location[1]).parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(location[1])) as connection:
                connection.executescript(sql)

        return run

    @pytest.fixture
    def engine(self, location) -> Iterator[sa.Engine]:
        engine = sa.create_engine(sa.URL.create("sqlite+pysqlite", database=location[1]))
        yield engine
        engine.dispose()

    @pytest.fixture
    def restore_legacy(self, location) -> Callable[[], None]:
        def restore() -> None:
            path = Path(location[1])
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(LEGACY / "catalog.sqlite", path)

        return restore

    @pytest.fixture
    def wipe(self, location) -> Callable[[], None]:
        def run() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(location[1] + suffix).unlink(missing_ok=True)

        return run

    def test_the_legacy_file_is_the_hand_written_schema_in_wal_mode(self, restore_legacy, query):
        restore_legacy()
        assert query("PRAGMA journal_mode") == [("wal",)]
        (sql,) = query("SELECT sql FROM sqlite_master WHERE name = 'diag_drift_checks'")[0]
        assert "id INTEGER PRIMARY KEY AUTOINCREMENT" in sql
        assert query(f"SELECT name FROM sqlite_master WHERE name = '{upgrade.VERSION_TABLE}'") == []
