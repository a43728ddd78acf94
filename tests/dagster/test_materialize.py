"""The audit graph through dg.materialize, on synthetic and on real candles."""

from pathlib import Path

import dagster as dg

from diag_assets.audit.run_results import (
    materialized_metadata,
    observed_metadata,
    refused_capture,
)
from diag_assets.core.cells import CellRef
from diag_assets.core.names import LEARNING_CURVE_IMAGE, PERMUTATION_NULL_IMAGE, RELIABILITY_IMAGE
from diag_assets.partitions import cell_partition_key
from tests.dagster.conftest import APPROVED, TINY_RUN_CONFIG, local_resources, real_market_data
from tests.fixtures.audit import anchor_and_consumers, captured_fold, market_bars, observe

AUDIT = [captured_fold, anchor_and_consumers]


_metadata = materialized_metadata


def _data_version(instance, asset: str) -> str:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return event.asset_materialization.tags["dagster/data_version"]


def _observed_version(instance, asset: str, partition: str) -> str:
    (record,) = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return record.asset_observation.tags["dagster/data_version"]


def test_cold_then_warm_audit_keeps_data_versions_and_provenance(resources, instance):
    key = cell_partition_key(CellRef.parse("defi_top5/OPUSDC/fold-2"))
    observe(market_bars, resources, instance, partition_key="OPUSDC")
    cold = dg.materialize(
        AUDIT,
        resources=resources,
        instance=instance,
        partition_key=key,
        run_config=TINY_RUN_CONFIG,
        tags=APPROVED,
    )
    capture = _metadata(cold, "captured_fold")
    assert capture["cache"] == "MISS" and capture["producing_run_id"] == cold.run_id
    assert capture["bars_observed"] is True  # observed first, so its provenance can go stale
    verdict = _metadata(cold, "s40_verdict")
    assert verdict["certification"] == "CERTIFIED"
    # Each diagnostic's pictures are images beside its figures.
    for asset, image in (
        ("s22a1_anchor", LEARNING_CURVE_IMAGE),
        ("s40_verdict", PERMUTATION_NULL_IMAGE),
        ("s27_calibration", RELIABILITY_IMAGE),
    ):
        assert _metadata(cold, asset)[image].startswith(f"![{image}](data:image/png;base64,")
    assert verdict["s22a1_crossref_status"] in {"CONSISTENT", "INCONSISTENT"}
    cold_versions = {
        asset: _data_version(instance, asset)
        for asset in ("captured_fold", "s22a1_anchor", "s40_verdict")
    }

    # A re-audit needs no approval: the capture is served from the cache.
    warm = dg.materialize(
        AUDIT, resources=resources, instance=instance, partition_key=key, run_config=TINY_RUN_CONFIG
    )
    warm_capture = _metadata(warm, "captured_fold")
    assert warm_capture["cache"] == "HIT"
    assert warm_capture["producing_run_id"] == cold.run_id  # provenance: the run that captured it
    # ... shown as a link to that run in the UI
    record = instance.get_latest_materialization_event(dg.AssetKey("captured_fold"))
    link = record.asset_materialization.metadata["producing_run_id"]
    assert link == dg.MetadataValue.dagster_run(cold.run_id)
    assert [e["event"] for e in warm_capture["capture_events"]] == ["capture_hit"]
    for asset, version in cold_versions.items():
        assert _data_version(instance, asset) == version, asset

    # The capture's recorded provenance points at the observed market_bars data version.
    record = instance.get_latest_materialization_event(dg.AssetKey("captured_fold"))
    assert record.asset_materialization.tags[
        "dagster/input_data_version/market_bars"
    ] == _observed_version(instance, "market_bars", "OPUSDC")


def test_a_refused_cold_capture_marks_the_capture_and_skips_the_diagnostics(resources, instance):
    key = cell_partition_key(CellRef.parse("defi_top5/UNIUSDC/fold-1"))
    result = dg.materialize(
        AUDIT,
        resources=resources,
        instance=instance,
        partition_key=key,
        run_config=TINY_RUN_CONFIG,
        raise_on_error=False,
    )
    # The refusal is the capture's failed check; the diagnostics are skipped, not failed.
    (check,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "cold_capture_approved"
    ]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.partition == str(key)
    assert "COLD_CAPTURE_REQUIRES_OPERATOR" in (check.description or "")
    assert "diag/allow_cold_capture=true" in (check.description or "")
    assert check.metadata["certification"].value == "INCONCLUSIVE_TOOLING"
    assert refused_capture(result, "captured_fold") == check.description
    assert result.get_asset_materialization_events() == []
    steps = {
        e.step_key: e.event_type_value
        for e in result.all_events
        if e.is_step_skipped or e.is_step_failure
    }
    assert steps == {"anchor_and_consumers": "STEP_SKIPPED"}
    assert not (Path(resources["artifacts"].root) / "captures").exists()
    # No planned asset of the run reads as failed in the UI: the run itself did not fail.
    assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS


def test_real_candles_through_the_whole_graph(tmp_path, instance):
    resources = local_resources(tmp_path, market_data=real_market_data())
    bars = observe(market_bars, resources, instance, partition_key="BTCUSDT")
    assert observed_metadata(bars, "market_bars")["source"].endswith("BTC_USDT-1h.feather")
    key = cell_partition_key(CellRef.parse("binance/BTCUSDT/fold-3"))
    result = dg.materialize(
        AUDIT,
        resources=resources,
        instance=instance,
        partition_key=key,
        run_config=TINY_RUN_CONFIG,
        tags=APPROVED,
    )
    assert result.success
    assert _metadata(result, "captured_fold")["rows"] > 500
    assert _metadata(result, "s40_verdict")["certification"] == "CERTIFIED"


def test_fold_beyond_history_fails_with_fix_and_writes_nothing(tmp_path, instance):
    resources = local_resources(tmp_path, market_data=real_market_data())
    key = dg.MultiPartitionKey({"symbol": "BTCUSDT", "fold": "fold-4"})
    result = dg.materialize(
        [captured_fold],
        resources=resources,
        instance=instance,
        partition_key=key,
        tags=APPROVED,
        raise_on_error=False,
    )
    assert not result.success
    message = result.failure_data_for_node("captured_fold").error.cause.message
    assert "History too short for fold 4" in message and "Fix:" in message
    assert not (tmp_path / "artifacts").exists()
