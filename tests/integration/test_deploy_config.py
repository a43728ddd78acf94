"""The production instance config loads into a real instance on PostgreSQL."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from tests.services import PG_HOST, PG_PORT, PG_USER

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
def test_production_instance_config_loads_and_limits_one_run_per_cell(
    postgres_dsn, tmp_path, monkeypatch
):
    database = dict(part.split("=", 1) for part in postgres_dsn.split())["dbname"]
    for name, value in {
        "DIAG_PG_HOST": PG_HOST,
        "DIAG_PG_PORT": str(PG_PORT),
        "DIAG_PG_DB": database,
        "DIAG_PG_USER": PG_USER,
        "DIAG_PG_PASSWORD": "",
    }.items():
        monkeypatch.setenv(name, value)
    shutil.copy(ROOT / "deploy" / "dagster.production.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        (limit,) = coordinator.get_run_queue_config().tag_concurrency_limits
        assert limit["key"] == "dagster/partition" and limit["limit"] == 1


def test_local_instance_config_loads(tmp_path):
    shutil.copy(ROOT / "deploy" / "dagster.local.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
