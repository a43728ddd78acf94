"""The anchor skip: skipping the s22a1 anchor, and the downgrade reaching every consumer."""

import dagster as dg
import pytest

from diag_assets.core.cells import CellRef
from diag_assets.core.storage.results import ResultStore
from diag_assets.definitions import defs
from diag_assets.partitions import cell_partition_key
from tests.dagster.conftest import APPROVED, TINY_RUN_CONFIG
from tests.fixtures.audit import (
    anchor_and_consumers,
    audit_report,
    audit_summary,
    captured_fold,
    s22a2_spread,
    s23_drift,
)

CELL = CellRef.parse("defi_top5/UNIUSDC/fold-2")
KEY = cell_partition_key(CELL)
ASSETS = [captured_fold, anchor_and_consumers, s22a2_spread, s23_drift, audit_report]


def _materializations(result) -> dict[str, dict]:
    return {
        event.asset_key.to_user_string(): {
            k: v.value for k, v in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }


def _run(resources, instance, selection, *, skip, tags=None):
    probe = TINY_RUN_CONFIG["ops"]["anchor_and_consumers"]["config"]
    config = {"ops": {"anchor_and_consumers": {"config": {**probe, "skip_s22a1": skip}}}}
    if "audit_report" in selection:
        selection = [*selection, "s22a2_spread", "s23_drift"]
    return dg.materialize(
        ASSETS,
        selection=selection,
        resources=resources,
        instance=instance,
        partition_key=KEY,
        run_config=config,
        tags=tags or {},
    )


@pytest.fixture
def captured(resources, instance):
    dg.materialize(
        [captured_fold],
        resources=resources,
        instance=instance,
        partition_key=KEY,
        run_config={"ops": {"captured_fold": TINY_RUN_CONFIG["ops"]["captured_fold"]}},
        tags=APPROVED,
    )


def test_skip_on_and_off_give_the_same_probe_verdict(resources, instance, captured):
    full = _materializations(_run(resources, instance, ["s22a1_anchor", "s40_verdict"], skip=False))
    light = _materializations(_run(resources, instance, ["s40_verdict"], skip=True))
    on, off = light["s40_verdict"]["verdict"], full["s40_verdict"]["verdict"]
    assert on["signal"] == off["signal"] and on["probe"] == off["probe"]
    assert (off["certification"], on["certification"]) == ("CERTIFIED", "DOWNGRADED")


def test_skipped_anchor_downgrades_every_consumer(resources, instance, captured):
    result = _run(
        resources, instance, ["s40_verdict", "s27_calibration", "audit_report"], skip=True
    )
    metadata = _materializations(result)
    s40 = metadata["s40_verdict"]
    assert s40["certification"] == "DOWNGRADED"
    assert s40["s22a1_crossref_status"] == "SKIPPED"
    assert s40["s22a1_anchor_available"] is False
    assert s40["skip_decided_by"] == "run_config"
    assert s40["s40_s22a1_skipped"]["event"] == "s40_s22a1_skipped"
    assert s40["parquet_digest_matches_manifest"] is True  # the skip path re-hashed the Parquet
    assert metadata["s27_calibration"]["certification"] == "DOWNGRADED"
    report = metadata["audit_report"]
    assert report["certification"] == "DOWNGRADED"
    assert report["report"].splitlines()[0].startswith("**audit DOWNGRADED** (anchor skipped)")

    summary = dg.materialize([audit_summary], resources=resources, instance=instance)
    counts = _materializations(summary)["audit_summary"]
    # Every registered cell is a row: the one audited here, and the others never audited.
    cells = counts["cells"]
    assert (counts["complete"], counts["downgraded"], counts["not_audited"]) == (0, 1, cells - 1)
    assert f"0 of {cells} cells complete" in counts["summary"]


def test_skip_reads_and_materializes_no_anchor_even_when_selected(
    resources, instance, captured, monkeypatch
):
    reads = []
    original = ResultStore.read

    def spy(self, asset, cell, model):
        reads.append(asset)
        return original(self, asset, cell, model)

    monkeypatch.setattr(ResultStore, "read", spy)
    result = _run(
        resources, instance, ["s22a1_anchor", "s40_verdict", "s27_calibration"], skip=True
    )
    assert "s22a1_anchor" not in _materializations(result)
    assert "s22a1_anchor" not in reads


def test_light_audit_job_skips_by_policy(resources, instance, captured):
    job = defs.resolve_job_def("light_audit")
    assert "s22a1_anchor" not in {
        key.to_user_string() for key in job.asset_layer.executable_asset_keys
    }
    result = job.execute_in_process(
        instance=instance, resources=resources, partition_key=KEY, run_config=TINY_RUN_CONFIG
    )
    metadata = _materializations(result)
    assert metadata["s40_verdict"]["skip_decided_by"] == "policy:light_s40@v1"
    assert metadata["audit_report"]["certification"] == "DOWNGRADED"
    # The cell's audit_clean check warns: the audit ran without the anchor.
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "audit_clean"]
    assert (check.check_name, check.passed, check.severity) == (
        "audit_clean",
        False,
        dg.AssetCheckSeverity.WARN,
    )
    assert check.description.startswith("DOWNGRADED")
    assert "s22a1 anchor skipped" in check.description


def test_absent_parquet_gives_inconclusive_tooling(resources, instance, captured, tmp_path):
    (x_file,) = (tmp_path / "artifacts" / "captures").glob("*/*/X.parquet")
    x_file.unlink()
    result = _run(resources, instance, ["s40_verdict"], skip=True)
    s40 = _materializations(result)["s40_verdict"]
    assert s40["certification"] == "INCONCLUSIVE_TOOLING"
    assert "does not exist" in s40["certification_reason"]


def test_a_changed_parquet_is_rehashed_and_recorded_as_not_matching(
    resources, instance, captured, tmp_path
):
    (x_file,) = (tmp_path / "artifacts" / "captures").glob("*/*/X.parquet")
    before = _materializations(_run(resources, instance, ["s40_verdict"], skip=True))
    recorded = before["s40_verdict"]["parquet_digest_recomputed"]
    x_file.write_bytes(x_file.read_bytes()[:-1] + b"\x00")  # same size, other bytes

    s40 = _materializations(_run(resources, instance, ["s40_verdict"], skip=True))["s40_verdict"]
    assert s40["parquet_digest_matches_manifest"] is False
    assert s40["parquet_digest_recomputed"] != recorded
    # The verified load refuses the same bytes, so the verdict cannot stand on them.
    assert s40["certification"] == "INCONCLUSIVE_TOOLING"
    assert "X.parquet does not match its manifest" in s40["certification_reason"]
