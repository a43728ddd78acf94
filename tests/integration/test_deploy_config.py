"""The instance configs of deploy/ load into real instances; production's runs on PostgreSQL."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from diag_assets.core.storage.catalog import upgrade
from diag_assets.core.storage.catalog.catalog import PostgresCatalog
from tests.services import PG_HOST, PG_PORT, PG_USER, fresh_database, pg_dsn

ROOT = Path(__file__).resolve().parents[2]


def connect(dsn: str):
    import psycopg2

    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    return connection


def production_instance_home(database: str, home: Path, monkeypatch) -> Path:
    """DAGSTER_HOME with deploy/dagster.production.yaml, its env vars naming ``database``."""
    for name, value in {
        "DIAG_PG_HOST": PG_HOST,
        "DIAG_PG_PORT": str(PG_PORT),
        "DIAG_PG_DB": database,
        "DIAG_PG_USER": PG_USER,
        "DIAG_PG_PASSWORD": "",
    }.items():
        monkeypatch.setenv(name, value)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "deploy" / "dagster.production.yaml", home / "dagster.yaml")
    return home


@pytest.fixture
def throwaway_database() -> Iterator[str]:
    """A database of its own, created for one test and dropped afterwards. Yields its name."""
    with fresh_database("diag_instance") as name:
        yield name


@dg.asset
def small_table() -> list[int]:
    """Three numbers: enough for a run with a step, an output and a materialization."""
    return [1, 2, 3]


@pytest.mark.postgres
def test_production_instance_config_loads_and_limits_one_run_per_cell(
    postgres_dsn, tmp_path, monkeypatch
):
    database = dict(part.split("=", 1) for part in postgres_dsn.split())["dbname"]
    home = production_instance_home(database, tmp_path, monkeypatch)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        (limit,) = coordinator.get_run_queue_config().tag_concurrency_limits
        assert limit["key"] == "dagster/partition" and limit["limit"] == 1


@pytest.mark.postgres
def test_production_instance_runs_on_psycopg2_and_records_a_run_in_postgres(
    throwaway_database, tmp_path, monkeypatch
):
    home = production_instance_home(throwaway_database, tmp_path / "home", monkeypatch)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for storage in (instance.run_storage, instance.event_log_storage):
            assert storage.postgres_url.startswith("postgresql+psycopg2://")  # type: ignore[attr-defined]
        result = dg.materialize([small_table], instance=instance)
        assert result.success
        run_id = result.run_id
        stored = instance.get_run_by_id(run_id)
        assert stored is not None and stored.status == dg.DagsterRunStatus.SUCCESS

    # Read back from PostgreSQL itself, not through the instance.
    database = connect(pg_dsn(throwaway_database))
    try:
        with database.cursor() as cursor:
            cursor.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
            assert cursor.fetchall() == [("SUCCESS",)]
            cursor.execute(
                "SELECT dagster_event_type, asset_key FROM event_logs"
                " WHERE run_id = %s AND dagster_event_type IS NOT NULL ORDER BY id",
                (run_id,),
            )
            events = cursor.fetchall()
    finally:
        database.close()
    kinds = [kind for kind, _ in events]
    # Stored under the enum's values (a run's start is still "PIPELINE_START" there).
    run_start, step_success, run_success = (
        dg.DagsterEventType.RUN_START.value,
        dg.DagsterEventType.STEP_SUCCESS.value,
        dg.DagsterEventType.RUN_SUCCESS.value,
    )
    assert kinds.index(run_start) < kinds.index(step_success) < kinds.index(run_success)
    assert dg.DagsterEventType.STEP_START.value in kinds
    assert (dg.DagsterEventType.ASSET_MATERIALIZATION.value, '["small_table"]') in events


@pytest.mark.postgres
def test_the_catalog_shares_the_production_instance_database(
    throwaway_database, tmp_path, monkeypatch
):
    home = production_instance_home(throwaway_database, tmp_path / "home", monkeypatch)
    dsn = pg_dsn(throwaway_database)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert dg.materialize([small_table], instance=instance).success
    database = connect(dsn)
    try:
        with database.cursor() as cursor:
            cursor.execute("SELECT version_num FROM alembic_version")
            dagster_history = cursor.fetchall()
            assert len(dagster_history) == 1
            with PostgresCatalog(dsn) as catalog:
                assert catalog.migrate() == 3
            cursor.execute(f"SELECT version_num FROM {upgrade.VERSION_TABLE}")
            assert cursor.fetchall() == [("0003",)]
            cursor.execute("SELECT version_num FROM alembic_version")
            assert cursor.fetchall() == dagster_history
    finally:
        database.close()
    # And the instance still opens on the database the catalog now shares.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert dg.materialize([small_table], instance=instance).success


def test_local_instance_config_loads(tmp_path):
    shutil.copy(ROOT / "deploy" / "dagster.local.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
