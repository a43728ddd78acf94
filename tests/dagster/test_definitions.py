"""The whole code location loads, the way `dagster dev` and the UI load it."""

import subprocess
import sys
from pathlib import Path

import dagster as dg

from diag_assets.core import names
from diag_assets.definitions import defs
from diag_assets.partitions import symbols_partitions

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_are_loadable_and_complete():
    dg.Definitions.validate_loadable(defs)
    asset_keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"market_bars", "captured_fold", "s22a1_anchor", "s40_verdict"} <= asset_keys
    assert {job.name for job in defs.resolve_all_job_defs()} >= {"audit", "market_data"}
    assert {"market_data", "artifacts"} <= set(defs.resources)


def test_workspace_loads_with_the_dagster_cli(tmp_path):
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={
            "DAGSTER_HOME": str(tmp_path),
            "PATH": "/usr/bin:/bin",
            "DIAG_STORAGE_DIR": str(tmp_path / "a"),
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "diag_harness" in result.stdout + result.stderr


def test_register_symbols_sensor_adds_new_symbols_once():
    from tests.dagster.conftest import tiny_market_data
    from tests.fixtures.audit import register_symbols

    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"market_data": tiny_market_data()}
        )
        result = register_symbols(context)
        assert isinstance(result, dg.SensorResult)
        (request,) = result.dynamic_partitions_requests
        assert list(request.partition_keys) == [
            "UNIUSDC",
            "OPUSDC",
            "LDOUSDC",
            "AAVEUSDC",
            "ARBUSDC",
        ]
        instance.add_dynamic_partitions("symbols", list(request.partition_keys))
        assert isinstance(register_symbols(context), dg.SkipReason)


def test_every_name_in_the_vocabulary_is_defined_in_the_code_location():
    asset_keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        names.MARKET_BARS,
        names.CAPTURED_FOLD,
        names.S22A1_ANCHOR,
        names.S40_VERDICT,
        names.S27_CALIBRATION,
        names.S22A2_SPREAD,
        names.S23_DRIFT,
        names.AUDIT_REPORT,
        names.AUDIT_SUMMARY,
        names.ANCHOR_COST_GATE,
        names.REUSE_GATE,
        names.DRIFT_RATE_GATE,
        names.CAPTURE_SIZE_GATE,
        names.WARM_READ_GATE,
        names.CONSUMERS_GATE,
        names.INVARIANCE_GATE,
        names.SEAM_GATE,
        names.RELEASE_PARITY_GATE,
        names.PHASE0_EXIT,
    } <= asset_keys
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {
        names.TRIAL_INVARIANCE_CHECK,
        names.HASH_PARITY_CHECK,
        names.VERDICT_PARITY_CHECK,
    } <= checks
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        names.AUDIT_JOB,
        names.LIGHT_AUDIT_JOB,
        names.XY_AUDIT_JOB,
        names.MARKET_DATA_JOB,
        names.CAPTURE_GC_JOB,
        names.PHASE0_GATES_JOB,
        names.RELEASE_PARITY_JOB,
        names.FIXTURE_GATES_JOB,
    }
    assert defs.resolve_schedule_def(names.PHASE0_GATES_SCHEDULE)
    assert defs.resolve_sensor_def(names.REAUDIT_SENSOR)
    assert defs.resolve_assets_def(names.S22A1_ANCHOR).node_def.name == names.ANCHOR_AND_CONSUMERS
    assert symbols_partitions.name == names.SYMBOLS_PARTITIONS
    light = defs.resolve_job_def(names.LIGHT_AUDIT_JOB)
    assert light.tags[names.AUDIT_KIND_TAG] == names.LIGHT_S40_AUDIT_KIND
