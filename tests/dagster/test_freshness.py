"""Market data is observed: a change to the candles marks the cells it touches out of date.

Real candles are copied into a folder the code location reads, a cell is audited, and the
instance's stale status resolver (what the UI's GraphQL asks) is read before and after an
observation of edited candles.
"""

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest
from dagster._core.remote_representation.external import RemoteRepository
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._core.remote_representation.handle import RepositoryHandle

from diag_assets.core.cells import CellRef
from diag_assets.core.names import (
    CAPTURED_FOLD,
    MARKET_BARS,
    MARKET_DATA_JOB,
    MARKET_DATA_SCHEDULE,
    S22A1_ANCHOR,
    S40_VERDICT,
)
from diag_assets.definitions import build_definitions
from diag_assets.partitions import cell_partition_key
from tests.dagster.conftest import APPROVED, KLINES, TINY_RUN_CONFIG, local_resources
from resources.market_data import DirectoryMarketDataResource

CELL = CellRef.parse("binance/BTCUSDT/fold-3")
OTHER = CellRef.parse("binance/ETHUSDT/fold-3")
BTC_FILE = "BTC_USDT-1h.feather"


@pytest.fixture
def candles(tmp_path) -> Path:
    folder = tmp_path / "candles"
    folder.mkdir()
    for name in (BTC_FILE, "ETH_USDT-1h.feather"):
        shutil.copy(KLINES / name, folder / name)
    return folder


@pytest.fixture
def location(tmp_path, candles) -> dg.Definitions:
    market_data = DirectoryMarketDataResource(
        directory=str(candles), universe="binance", min_train_bars=800, validation_bars=150
    )
    return build_definitions(resources=local_resources(tmp_path / "store", market_data))


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", ["BTCUSDT", "ETHUSDT"])
        yield instance


def _observe(location: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """One observation as the schedule launches it: the market_data job, no partition."""
    schedule = location.resolve_schedule_def(MARKET_DATA_SCHEDULE)
    assert schedule.job_name == MARKET_DATA_JOB
    job = location.resolve_job_def(MARKET_DATA_JOB)
    return job.execute_in_process(instance=instance, raise_on_error=False)


def _audit(
    location: dg.Definitions, instance: dg.DagsterInstance, cell: CellRef, *assets: str
) -> None:
    result = location.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(asset) for asset in assets],
        partition_key=cell_partition_key(cell),
        run_config=TINY_RUN_CONFIG,
        tags=APPROVED,
    )
    assert result.success


def _resolver(location: dg.Definitions, instance: dg.DagsterInstance):
    """The resolver the webserver's GraphQL builds for one request, on the location's snapshot.

    The asset graph is the one the webserver holds: the code location's repository snapshot,
    as it crosses the process boundary. A new resolver per question, since it caches reads.
    """
    snapshot = RepositorySnap.from_def(location.get_repository_def())
    remote = RemoteRepository(
        snapshot, RepositoryHandle.for_test(), auto_materialize_use_sensors=True
    )
    return CachingStaleStatusResolver(
        instance, asset_graph=remote.asset_graph, loading_context=LoadingContextForTest(instance)
    )


def _status(location, instance, asset: str, cell: CellRef) -> StaleStatus:
    return _resolver(location, instance).get_status(
        dg.AssetKey(asset), cell_partition_key(cell)
    )


def _edit_a_bar(candles: Path) -> None:
    frame = pd.read_feather(candles / BTC_FILE)
    frame.loc[700, "volume"] = frame.loc[700, "volume"] * 2 + 1
    frame.to_feather(candles / BTC_FILE)


def test_changed_candles_mark_the_cells_out_of_date_after_an_observation(
    location, instance, candles
):
    first = _observe(location, instance)
    assert first.success
    _audit(location, instance, CELL, CAPTURED_FOLD, S22A1_ANCHOR, S40_VERDICT)
    _audit(location, instance, OTHER, CAPTURED_FOLD)
    for asset in (CAPTURED_FOLD, S40_VERDICT):
        assert _status(location, instance, asset, CELL) == StaleStatus.FRESH, asset

    # The schedule observes again and the candles are the same: nothing is out of date.
    assert _observe(location, instance).success
    for asset in (CAPTURED_FOLD, S40_VERDICT):
        assert _status(location, instance, asset, CELL) == StaleStatus.FRESH, asset

    _edit_a_bar(candles)
    # Nothing has run yet: Dagster cannot know.
    assert _status(location, instance, CAPTURED_FOLD, CELL) == StaleStatus.FRESH
    assert _observe(location, instance).success
    for asset in (CAPTURED_FOLD, S40_VERDICT):
        assert _status(location, instance, asset, CELL) == StaleStatus.STALE, asset
        causes = _resolver(location, instance).get_stale_root_causes(
            dg.AssetKey(asset), cell_partition_key(CELL)
        )
        assert [(c.asset_key.to_user_string(), c.partition_key) for c in causes] == [
            (MARKET_BARS, "BTCUSDT")
        ], asset
    # The other symbol's bars did not change: its cells are not out of date.
    assert _status(location, instance, CAPTURED_FOLD, OTHER) == StaleStatus.FRESH
