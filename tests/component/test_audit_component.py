"""The audit component: a team's project of two audits, from defs.yaml, side by side."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tests.component.conftest import PROJECT, audit_cell

CELL = dg.MultiPartitionKey({"symbol": "AAAUSDC", "fold": "fold-1"})


def keys(defs: dg.Definitions) -> set[str]:
    return {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}


def test_two_audits_live_side_by_side_with_distinct_assets_checks_and_jobs(team_project):
    asset_keys = keys(team_project)
    for prefix in ("small", "wide"):
        for name in (
            "market_bars",
            "captured_fold",
            "s22a1_anchor",
            "s40_verdict",
            "s22a2_spread",
            "s23_drift",
            "audit_report",
            "audit_summary",
            "g_c0_consumers",
            "g_c4_invariance",
            "lever3_release_gate",
            "phase0_exit",
        ):
            assert f"{prefix}/{name}" in asset_keys
    # The second audit lists its diagnostics: no s27 there.
    assert "small/s27_calibration" in asset_keys
    assert "wide/s27_calibration" not in asset_keys
    # Besides the team's own dashboard, every asset belongs to one of the two audits.
    assert {key for key in asset_keys if "/" not in key} == {"capture_dashboard"}

    jobs = {job.name for job in team_project.resolve_all_job_defs()}
    assert {"small__audit", "wide__audit", "small__lever3_release", "wide__phase0_gates"} <= jobs
    checks = {
        (key.asset_key.to_user_string(), key.name)
        for key in team_project.resolve_asset_graph().asset_check_keys
    }
    assert ("small/lever3_release_gate", "dataset_only_hash_parity") in checks
    assert ("wide/g_c4_invariance", "trial_invariance_holds") in checks
    sensors = {sensor.name for sensor in team_project.sensors or []}
    assert {"small__register_symbols", "wide__reaudit_requests"} <= sensors


def test_each_audit_versions_its_capture_by_its_own_recipe(team_project):
    graph = team_project.resolve_asset_graph()
    small = graph.get(dg.AssetKey(["small", "captured_fold"])).code_version
    wide = graph.get(dg.AssetKey(["wide", "captured_fold"])).code_version
    assert small is not None and wide is not None
    assert small.startswith("reference-v1-") and wide.startswith("reference-v1-")
    # The same recipe class with another dead zone: another code version, another capture.
    assert small != wide


@pytest.mark.slow
def test_the_team_project_materializes_an_audit_of_one_cell(team_project, storage):
    with dg.instance_for_test() as instance:
        result = audit_cell(team_project, instance, "small", ["AAAUSDC", "BBBUSDC"], CELL)
        assert result.success
        materialized = {
            event.asset_key.to_user_string() for event in result.get_asset_materialization_events()
        }
        assert {"small/captured_fold", "small/s40_verdict", "small/audit_report"} <= materialized
        report = json.loads(
            (
                storage / "audits/small/results/audit_report/small_synth__AAAUSDC__fold-1.json"
            ).read_text()
        )
        assert report["cell_ref"] == "small_synth/AAAUSDC/fold-1"
        assert report["certification"] == "CERTIFIED"
        assert [line["name"] for line in report["diagnostics"]] == [
            "s40",
            "s27",
            "s22a2",
            "s23",
        ]
        # Nothing of the other audit was written, and nothing at the packaged audit's place.
        assert not (storage / "audits/wide").exists()
        assert not (storage / "results").exists()


@pytest.mark.slow
def test_the_consumer_map_finds_a_reader_defined_beside_the_audit(tmp_path):
    # Through the code location as Dagster serves it: the team's dashboard in defs/dashboards
    # reads small/captured_fold and declares nothing, so it is an unknown reader.
    env = {
        **os.environ,
        "PYTHONPATH": f"{PROJECT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "DAGSTER_HOME": str(tmp_path / "home"),
        "DIAG_STORAGE_DIR": str(tmp_path / "store"),
        "DIAG_ENV": "local",
    }
    (tmp_path / "home").mkdir()
    run = subprocess.run(
        [
            Path(sys.executable).parent / "dagster",
            "asset",
            "materialize",
            "-m",
            "team_audits.definitions",
            "--select",
            "small/g_c0_consumers",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "store/audits/small/gates/g_c0_consumers.json").read_text())
    assert report["decision"] == "UNKNOWN_PRESENT"
    assert report["figures"]["unknown_assets"] == ["capture_dashboard"]
    readers = {row["asset"]: row["requirement"] for row in report["rows"]}
    assert readers["small/s40_verdict"] == "xy_only"
    assert readers["small/s22a1_anchor"] == "trial_dynamics"
    assert "wide/s40_verdict" not in readers
