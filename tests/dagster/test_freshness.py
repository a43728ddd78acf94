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
from dagster._core.definitions.data_version import (
    DATA_VERSION_TAG,
    CachingStaleStatusResolver,
    StaleStatus,
)
from dagster._core.loader import LoadingContextForTest
from dagster._core.remote_representation.external import RemoteRepository
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._core.remote_representation.handle import RepositoryHandle

from diag_assets.component.automation import refuse_automated_capture
from diag_assets.core.cells import CellRef
from diag_assets.core.names import (
    AUDIT_REPORT,
    AUDIT_SUMMARY,
    CAPTURED_FOLD,
    MARKET_BARS,
    MARKET_DATA_JOB,
    MARKET_DATA_SCHEDULE,
    REPLAYS_FINE_TUNE_KEY,
    S22A1_ANCHOR,
    S40_VERDICT,
)
from diag_assets.definitions import build_definitions
from diag_assets.partitions import cell_partition_key
from resources.market_data import DirectoryMarketDataResource
from tests.dagster.conftest import APPROVED, KLINES, TINY_RUN_CONFIG, local_resources

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


def _tick(location: dg.Definitions, instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    """One tick of the observation schedule: the runs it asks for (none when it skips)."""
    schedule = location.resolve_schedule_def(MARKET_DATA_SCHEDULE)
    assert schedule.job_name == MARKET_DATA_JOB
    resources = {"market_data": (location.resources or {})["market_data"]}
    with dg.build_schedule_context(
        instance=instance, resources=resources, repository_def=location.get_repository_def()
    ) as context:
        return list(schedule.evaluate_tick(context).run_requests or [])


def _observe(location: dg.Definitions, instance: dg.DagsterInstance) -> list[str]:
    """A tick of the schedule, and its runs launched as the daemon would: the symbols observed."""
    job = location.resolve_job_def(MARKET_DATA_JOB)
    observed = []
    for request in _tick(location, instance):
        assert request.partition_key is not None
        result = job.execute_in_process(
            instance=instance, partition_key=request.partition_key, raise_on_error=False
        )
        assert result.success, request.partition_key
        observed.append(request.partition_key)
    return observed


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
    return _resolver(location, instance).get_status(dg.AssetKey(asset), cell_partition_key(cell))


def _edit_a_bar(candles: Path) -> None:
    frame = pd.read_feather(candles / BTC_FILE)
    volume = frame["volume"].to_numpy(dtype=float, copy=True)
    volume[700] = volume[700] * 2 + 1  # a bar inside every fold's training window
    frame["volume"] = volume
    frame.to_feather(candles / BTC_FILE)


def test_changed_candles_mark_the_cells_out_of_date_after_an_observation(
    location, instance, candles
):
    assert _observe(location, instance) == ["BTCUSDT", "ETHUSDT"]  # never observed yet
    _audit(location, instance, CELL, CAPTURED_FOLD, S22A1_ANCHOR, S40_VERDICT)
    _audit(location, instance, OTHER, CAPTURED_FOLD)
    for asset in (CAPTURED_FOLD, S40_VERDICT):
        assert _status(location, instance, asset, CELL) == StaleStatus.FRESH, asset

    # The schedule reads the candles again: they are the same, so it launches nothing.
    assert _observe(location, instance) == []
    # An observation that finds the same bars leaves the cells up to date.
    location.resolve_job_def(MARKET_DATA_JOB).execute_in_process(instance=instance)
    for asset in (CAPTURED_FOLD, S40_VERDICT):
        assert _status(location, instance, asset, CELL) == StaleStatus.FRESH, asset

    _edit_a_bar(candles)
    # Nothing has run yet: Dagster cannot know.
    assert _status(location, instance, CAPTURED_FOLD, CELL) == StaleStatus.FRESH
    assert _observe(location, instance) == ["BTCUSDT"]
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


def test_bars_that_do_not_validate_fail_one_observation_naming_the_file(
    location, instance, candles
):
    assert _observe(location, instance) == ["BTCUSDT", "ETHUSDT"]
    (candles / "ETH_USDT-1h.feather").write_bytes(b"not an arrow file")
    (request,) = _tick(location, instance)
    assert request.partition_key == "ETHUSDT" and request.run_key
    # The next tick asks for the same run: the daemon launches it once.
    assert [r.run_key for r in _tick(location, instance)] == [request.run_key]
    result = location.resolve_job_def(MARKET_DATA_JOB).execute_in_process(
        instance=instance, partition_key="ETHUSDT", raise_on_error=False
    )
    assert not result.success
    failure = result.failure_data_for_node("market_bars").user_failure_data
    assert "ETH_USDT-1h.feather: cannot read the file as feather" in failure.description
    assert "uncorrupted feather file" in failure.metadata["fix"].value


EAGER = dg.AutomationCondition.eager()
# The summary lists every cell, most of which are never audited: it refreshes when a report
# updates, whether or not every cell has one.
ANY_REPORT_UPDATED = EAGER.without(~dg.AutomationCondition.any_deps_missing())


def _requested(result) -> dict[str, set]:
    return {
        r.key.to_user_string(): set(result.get_requested_partitions(r.key))
        for r in result.results
        if r.true_subset.size
    }


def _every_condition(location: dg.Definitions) -> dg.Definitions:
    """The location with eager conditions on every asset the guard allows one on."""

    def automate(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.metadata.get(REPLAYS_FINE_TUNE_KEY) or spec.key == dg.AssetKey(MARKET_BARS):
            return spec
        condition = ANY_REPORT_UPDATED if spec.key == dg.AssetKey(AUDIT_SUMMARY) else EAGER
        return spec.replace_attributes(automation_condition=condition)

    automated = location.map_asset_specs(func=automate)
    return refuse_automated_capture(automated)


def test_automation_never_requests_a_capture_after_new_bars_or_new_reports(
    location, instance, candles
):
    automated = _every_condition(location)
    key = cell_partition_key(CELL)
    _observe(location, instance)
    _audit(location, instance, CELL, CAPTURED_FOLD, S22A1_ANCHOR, S40_VERDICT)
    first = dg.evaluate_automation_conditions(defs=automated, instance=instance)
    assert CAPTURED_FOLD not in _requested(first)

    # New candles: the verdicts that read them are requested, the capture never.
    _edit_a_bar(candles)
    assert _observe(location, instance) == ["BTCUSDT"]
    after_bars = dg.evaluate_automation_conditions(
        defs=automated, instance=instance, cursor=first.cursor
    )
    requested = _requested(after_bars)
    assert CAPTURED_FOLD not in requested
    assert requested[S40_VERDICT] == {key}, requested

    # A new report: the summary is requested, the capture never.
    report = location.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(AUDIT_REPORT)], partition_key=key
    )
    assert report.success
    after_report = dg.evaluate_automation_conditions(
        defs=automated, instance=instance, cursor=after_bars.cursor
    )
    requested = _requested(after_report)
    assert CAPTURED_FOLD not in requested
    assert AUDIT_SUMMARY in requested, requested


def test_the_first_observation_replaces_the_materializations_of_an_earlier_release(
    location, instance
):
    # market_bars was materialized by earlier releases: while such a record exists Dagster
    # points every capture's provenance at it, and the capture would be out of date at once.
    instance.report_runless_asset_event(
        dg.AssetMaterialization(MARKET_BARS, partition="BTCUSDT", tags={DATA_VERSION_TAG: "v0"})
    )
    assert _observe(location, instance) == ["BTCUSDT", "ETHUSDT"]
    assert instance.get_latest_materialization_event(dg.AssetKey(MARKET_BARS)) is None
    _audit(location, instance, CELL, CAPTURED_FOLD)
    assert _status(location, instance, CAPTURED_FOLD, CELL) == StaleStatus.FRESH
