"""The example team package's audit, from its defs.yaml, end to end on real BTC/ETH candles.

Its own recipe (a forward-return regression) and its own diagnostic (importance stability)
come in through their entry points, as in a team's installed project: the full audit of a
cell, the Phase-0 gates and the release gate all run from the YAML.
"""

import importlib.metadata
import json

import dagster as dg
import pytest

from diag_assets.audit.run_results import materialized_metadata
from tests.component.conftest import APPROVED, audit_cell

pytestmark = pytest.mark.slow

CELL = dg.MultiPartitionKey({"symbol": "BTCUSDT", "fold": "fold-2"})


def test_the_example_package_registers_its_plug_ins():
    recipes = {
        e.name: e.value for e in importlib.metadata.entry_points(group="diag_harness.recipes")
    }
    checks = {
        e.name: e.value for e in importlib.metadata.entry_points(group="diag_harness.diagnostics")
    }
    assert recipes["forward_returns"] == "forward_returns.recipe:ForwardReturnsRecipe"
    assert recipes["reference"] == "diag_assets.core.recipe.reference:ReferenceRecipe"
    assert checks["importance_stability"] == "forward_returns.stability:ImportanceStability"


def test_the_example_audits_real_candles_and_passes_its_gates(storage):
    from forward_returns.definitions import defs

    location = defs()
    with dg.instance_for_test() as instance:
        audit = audit_cell(
            location, instance, "btc_eth", ["BTCUSDT", "ETHUSDT"], CELL, tiny_probe=False
        )
        assert audit.success
        capture = materialized_metadata(audit, "btc_eth/captured_fold")
        assert capture["cache"] == "MISS"
        assert capture["task"] == "regression"
        assert "label_mean_train" in capture and "label_balance_train" not in capture
        assert capture["recipe_version"].startswith("forward_returns-v1-")
        probe = materialized_metadata(audit, "btc_eth/s40_verdict")["verdict"]
        assert probe["probe"]["statistic"] == "spearman_ic"
        # Calibration needs a binary task: it says so and claims nothing.
        assert (
            materialized_metadata(audit, "btc_eth/s27_calibration")["certification"]
            == "NOT_APPLICABLE"
        )
        stability = materialized_metadata(audit, "btc_eth/importance_stability")
        assert stability["certification"] == "CERTIFIED"
        assert -1.0 <= stability["mean_rank_correlation"] <= 1.0
        report = json.loads(
            (
                storage / "audits/btc_eth/results/audit_report/binance__BTCUSDT__fold-2.json"
            ).read_text()
        )
        lines = {line["name"]: line for line in report["diagnostics"]}
        assert set(lines) == {"s40", "s27", "importance_stability", "s22a2", "s23"}
        assert lines["s27"]["applicable"] is False
        assert lines["importance_stability"]["finding"].startswith(("STABLE", "UNSTABLE"))
        assert report["certification"] == "CERTIFIED"

        summary = location.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey(["btc_eth", "audit_summary"])]
        )
        table = materialized_metadata(summary, "btc_eth/audit_summary")["summary"]
        assert "importance_stability" in table.splitlines()[2]
        assert "| binance/BTCUSDT/fold-2 | CERTIFIED |" in table
        # The other registered cells are rows too, never audited.
        assert "| binance/ETHUSDT/fold-2 | NOT_AUDITED |" in table

        gates = location.resolve_job_def("btc_eth__phase0_gates").execute_in_process(
            instance=instance
        )
        assert gates.success
        assert materialized_metadata(gates, "btc_eth/g_c0_consumers")["decision"] == "MAPPED"
        assert (
            "importance_stability"
            in materialized_metadata(gates, "btc_eth/g_c0_consumers")["report"]
        )

        release = location.resolve_job_def("btc_eth__lever3_release").execute_in_process(
            instance=instance, tags=APPROVED
        )
        assert release.success
        assert materialized_metadata(release, "btc_eth/g_c4_invariance")["decision"] == "PASS"
        assert materialized_metadata(release, "btc_eth/g_c4b_seam")["decision"] == "SEAM"
        assert materialized_metadata(release, "btc_eth/lever3_release_gate")["decision"] == "PASS"
        checks = {
            evaluation.check_name: evaluation.passed
            for evaluation in release.get_asset_check_evaluations()
        }
        assert checks == {
            "trial_invariance_holds": True,
            "dataset_only_hash_parity": True,
            "dataset_only_verdict_parity": True,
        }
