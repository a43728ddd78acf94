"""The audit graph through dg.materialize, on synthetic and on real candles."""

import dagster as dg
import pytest

from diag_assets.capture import captured_fold
from diag_assets.core.cells import CellRef
from diag_assets.diagnostics import s22a1_anchor, s40_verdict
from diag_assets.market import market_bars
from diag_assets.partitions import cell_partition_key
from resources.storage import LocalArtifactStore
from tests.dagster.conftest import TINY_RUN_CONFIG, real_market_data

AUDIT = [captured_fold, s22a1_anchor, s40_verdict]


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    events = result.asset_materializations_for_node(asset)
    assert len(events) == 1
    return {k: v.value for k, v in events[0].metadata.items()}


def test_one_cell_end_to_end_keeps_its_data_version_on_replay(resources, instance):
    key = cell_partition_key(CellRef.parse("defi_top5/OPUSDC/fold-2"))
    dg.materialize([market_bars], resources=resources, instance=instance, partition_key="OPUSDC")
    first = dg.materialize(
        AUDIT, resources=resources, instance=instance, partition_key=key, run_config=TINY_RUN_CONFIG
    )
    assert first.success
    verdict = _metadata(first, "s40_verdict")
    assert verdict["certification"] == "CERTIFIED"
    assert verdict["s22a1_crossref_status"] in {"CONSISTENT", "INCONSISTENT"}

    second = dg.materialize(
        AUDIT, resources=resources, instance=instance, partition_key=key, run_config=TINY_RUN_CONFIG
    )
    for asset in ("captured_fold", "s22a1_anchor", "s40_verdict"):
        versions = [
            instance.get_latest_materialization_event(
                dg.AssetKey(asset)
            ).asset_materialization.tags["dagster/data_version"]
        ]
        assert versions[0] == _metadata(second, asset).get("content_hash", versions[0])
    assert (
        _metadata(first, "captured_fold")["content_hash"]
        == _metadata(second, "captured_fold")["content_hash"]
    )
    # the captured fold's recorded provenance points at the market_bars data version
    record = instance.get_latest_materialization_event(dg.AssetKey("captured_fold"))
    assert (
        record.asset_materialization.tags["dagster/input_data_version/market_bars"]
        == (
            instance.get_latest_materialization_event(
                dg.AssetKey("market_bars")
            ).asset_materialization.tags["dagster/data_version"]
        )
    )


def test_real_candles_through_the_whole_graph(tmp_path, instance):
    resources = {
        "market_data": real_market_data(),
        "artifacts": LocalArtifactStore(root=str(tmp_path)),
    }
    bars = dg.materialize(
        [market_bars], resources=resources, instance=instance, partition_key="BTCUSDT"
    )
    assert _metadata(bars, "market_bars")["source"].endswith("BTC_USDT-1h.feather")
    key = cell_partition_key(CellRef.parse("binance/BTCUSDT/fold-3"))
    result = dg.materialize(
        AUDIT, resources=resources, instance=instance, partition_key=key, run_config=TINY_RUN_CONFIG
    )
    assert result.success
    assert _metadata(result, "captured_fold")["rows"] > 500
    assert _metadata(result, "s40_verdict")["certification"] == "CERTIFIED"


@pytest.mark.parametrize("fold", ["fold-4"])
def test_fold_beyond_history_fails_with_fix_and_writes_nothing(tmp_path, instance, fold):
    store = tmp_path / "artifacts"
    resources = {
        "market_data": real_market_data(),
        "artifacts": LocalArtifactStore(root=str(store)),
    }
    key = dg.MultiPartitionKey({"symbol": "BTCUSDT", "fold": fold})
    result = dg.materialize(
        [captured_fold],
        resources=resources,
        instance=instance,
        partition_key=key,
        raise_on_error=False,
    )
    assert not result.success
    message = result.failure_data_for_node("captured_fold").error.cause.message
    assert "History too short for fold 4" in message and "Fix:" in message
    assert not store.exists()
