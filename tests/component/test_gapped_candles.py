"""An audit of real BTC candles with exchange gaps cut into them, as real histories have them.

The affected fold is either refused with the gap's dates or audited with the gap listed in
every verdict (DATA_GAP), never neither; the summary counts every cell.
"""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from diag_assets.audit.run_results import materialized_metadata
from diag_assets.component import AuditComponent
from diag_assets.component.location import build_location
from tests.component.conftest import APPROVED, TINY_PROBE

pytestmark = pytest.mark.slow

KLINES = Path(__file__).resolve().parents[1] / "data" / "klines"
FOLDS = {
    "n_folds": 3,
    "min_train_bars": 800,
    "validation_bars": 150,
    "purge_bars": 12,
    "label_horizon": 6,
    # Both gaps cost fold 2 over a quarter of its rows; the audit allows up to 40%.
    "max_gap_row_share": 0.4,
}


def gapped_candles(folder: Path) -> pd.DataFrame:
    """BTC candles without five days at bar 900 and three days at bar 960 (after the first).

    The three-day gap cuts fold 1's validation block (bars 950-1,099); fold 2 trains across
    both.
    """
    frame = pd.read_feather(KLINES / "BTC_USDT-1h.feather")
    frame = frame.drop(index=np.arange(900, 1020)).reset_index(drop=True)
    frame = frame.drop(index=np.arange(960, 1032)).reset_index(drop=True)
    folder.mkdir()
    frame.to_feather(folder / "BTC_USDT-1h.feather")
    frame["date"] = pd.to_datetime(frame["date"], utc=True)
    return frame


def test_a_long_gap_is_refused_with_its_dates_or_listed_in_every_verdict(tmp_path, storage):
    bars = gapped_candles(tmp_path / "candles")
    component = AuditComponent.model_validate(
        {
            "prefix": "gapped",
            "market_data": {
                "kind": "directory",
                "directory": str(tmp_path / "candles"),
                "universe": "binance",
            },
            "folds": FOLDS,
            "trials": {"n_trials": 2, "max_rounds": 40},
        }
    )
    location = build_location([component.resolve()])
    job = location.resolve_job_def("gapped__audit")
    probe = {"ops": {"gapped__anchor_and_consumers": {"config": TINY_PROBE}}}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("gapped__symbols", ["BTCUSDT"])

        def audit(fold: int) -> dg.ExecuteInProcessResult:
            return job.execute_in_process(
                instance=instance,
                partition_key=dg.MultiPartitionKey({"symbol": "BTCUSDT", "fold": f"fold-{fold}"}),
                tags=APPROVED,
                run_config=probe,
                raise_on_error=False,
            )

        refused, audited = audit(1), audit(2)
        summary = location.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey(["gapped", "audit_summary"])]
        )

    # Fold 1: its validation block is cut by the three-day gap, refused before any training.
    assert not refused.success
    assert not list((storage / "audits/gapped").rglob("*fold-1*"))  # nothing written for it

    # Fold 2 trains across the five-day gap: its rows across it are dropped, and every verdict
    # lists the gap with its dates.
    assert audited.success
    capture = materialized_metadata(audited, "gapped/captured_fold")
    before, after = bars["date"][899].isoformat(), bars["date"][900].isoformat()
    for asset in ("s40_verdict", "s22a2_spread", "s23_drift"):
        verdict = materialized_metadata(audited, f"gapped/{asset}")
        assert "DATA_GAP" in verdict["findings"]
        gap = next(f for f in verdict["verdict"]["findings"] if f["code"] == "DATA_GAP")
        assert before in gap["detail"] and after in gap["detail"] and "5d" in gap["detail"]
    report = json.loads(
        (storage / "audits/gapped/results/audit_report/binance__BTCUSDT__fold-2.json").read_text()
    )
    assert "DATA_GAP" in report["markdown"].splitlines()[0]
    assert capture["gap_rows_dropped"] > 0
    assert [gap["missing"] for gap in capture["gaps"]] == ["5d", "3d"]

    # The summary counts every registered cell: one audited, one failed, one never audited.
    metadata = materialized_metadata(summary, "gapped/audit_summary")
    assert metadata["cells"] == 3
    assert (metadata["failed"], metadata["not_audited"]) == (1, 1)
    assert metadata["failed_cells"]["FAILED"] == ["binance/BTCUSDT/fold-1"]
    row = next(
        line for line in metadata["summary"].splitlines() if "binance/BTCUSDT/fold-1" in line
    )
    assert "validation block is cut" in row
    assert bars["date"][959].isoformat() in row and "3d" in row
    assert metadata["findings"]["DATA_GAP"] == 1
