"""Phase-0 gates as assets: history from the instance or a JSONL export, to the exit order."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import BaseModel

from diag_assets.audit.run_results import materialized_metadata
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.consumers import (
    DIAGNOSTIC_CAPTURE_REQUIREMENTS,
    CaptureRequirement,
)
from diag_assets.core.gates.anchor_cost import AnchorCostReport
from diag_assets.core.gates.consumer_map import ConsumerMapDecision, ConsumerMapReport
from diag_assets.core.gates.history import HistoryEvent
from diag_assets.core.gates.records import read_report
from diag_assets.core.gates.report import numeric_fields
from diag_assets.core.gates.reuse import ReuseReport
from diag_assets.core.names import (
    AUDITS_PER_CELL_KEY,
    CONSUMERS_GATE,
    ELAPSED_HISTOGRAM_KEY,
    FIGURES_KEY,
    PHASE0_GATES_JOB,
    gate_figure_key,
)
from diag_assets.definitions import build_definitions, defs
from diag_assets.gates.history import history_from_instance
from diag_assets.partitions import cell_partition_key
from tests.dagster.conftest import APPROVED, TINY_RUN_CONFIG
from tests.fixtures.audit import (
    anchor_and_consumers,
    captured_fold,
    g_a1_reuse,
    g_b7_cost,
    lever1_gate2_drift,
    lever1_gate3_size,
    phase0_exit,
)
from tests.fixtures.history import write_jsonl
from tests.fixtures.readers import drift_second_opinion, finetune_audit

# The consumer map as the packaged code location builds it, with its readers.
(CONSUMER_MAP,) = (
    asset
    for asset in defs.assets or []
    if isinstance(asset, dg.AssetsDefinition) and dg.AssetKey(CONSUMERS_GATE) in asset.keys
)
GATES = [g_b7_cost, g_a1_reuse, lever1_gate2_drift, lever1_gate3_size, CONSUMER_MAP, phase0_exit]
BUILT_IN = {
    "s22a1_anchor": "s22a1",
    "s40_verdict": "s40",
    "s22a2_spread": "s22a2",
    "s23_drift": "s23",
    "s27_calibration": "s27",
}


def _consumer_map(resources, instance, extra_assets=()) -> ConsumerMapReport:
    """Run the consumer map of the code location composed with ``extra_assets``; its report."""
    location = build_definitions(extra_assets=extra_assets, resources=resources)
    result = location.resolve_job_def(PHASE0_GATES_JOB).execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(CONSUMERS_GATE)]
    )
    assert result.success
    # Every reader the report names links to its asset.
    (event,) = result.get_asset_materialization_events()
    links = {
        key.removeprefix("reader: "): value.value
        for key, value in event.materialization.metadata.items()
        if key.startswith("reader: ")
    }
    report = read_report(resources["artifacts"].blob_store(), CONSUMERS_GATE, ConsumerMapReport)
    assert report is not None
    assert links == {row.asset: dg.AssetKey.from_user_string(row.asset) for row in report.rows}
    assert report is not None
    return report


def test_the_packaged_code_location_maps_exactly_its_five_diagnostics(resources, instance):
    report = _consumer_map(resources, instance)
    assert report.decision is ConsumerMapDecision.MAPPED
    assert {row.asset: row.diagnostic for row in report.rows} == BUILT_IN
    for row in report.rows:
        assert row.declared
        assert row.requirement is DIAGNOSTIC_CAPTURE_REQUIREMENTS[BUILT_IN[row.asset]]
    assert report.figures.xy_only_diagnostics == ["s23", "s40"]
    assert (report.figures.trial_dynamics, report.figures.unknown) == (3, 0)


def test_a_reader_that_declares_no_diagnostic_is_unknown_and_named(resources, instance):
    report = _consumer_map(resources, instance, [finetune_audit, drift_second_opinion])
    assert report.decision is ConsumerMapDecision.UNKNOWN_PRESENT
    rows = {row.asset: row for row in report.rows}
    assert set(rows) == {*BUILT_IN, "finetune_audit", "drift_second_opinion"}
    assert rows["finetune_audit"].diagnostic is None
    assert rows["finetune_audit"].requirement is CaptureRequirement.UNKNOWN
    # The second s23 reader declares its diagnostic once, on the asset: it is mapped.
    assert rows["drift_second_opinion"].requirement is CaptureRequirement.XY_ONLY
    assert report.figures.unknown_assets == ["finetune_audit"]
    assert "no diagnostic declared: finetune_audit" in report.reasons[0]


def _plan_history(now: datetime) -> list[HistoryEvent]:
    """The plan's measured Phase 0: anchors p50 ~234 s, p95 ~860 s; 5 cells audited twice."""
    cells = [
        f"defi_top5/{s}/fold-3" for s in ("UNIUSDC", "OPUSDC", "LDOUSDC", "AAVEUSDC", "ARBUSDC")
    ]
    anchor_seconds = [5, 120, 234, 234, 300, 420, 860, 865]
    events = [
        HistoryEvent(
            "s22a1_anchor", cells[i % 5], now - timedelta(days=1, hours=i), s, {"rows": 13_000}
        )
        for i, s in enumerate(anchor_seconds)
    ]
    for hours in (20, 8):
        events += [
            HistoryEvent("s40_verdict", cell, now - timedelta(hours=hours), 240.0, {})
            for cell in cells
        ]
    events += [
        HistoryEvent("capture", cell, now - timedelta(hours=20), 9_000.0, {}) for cell in cells
    ]
    return events


def test_gates_from_a_jsonl_export_order_the_features_as_the_plan_did(
    resources, instance, tmp_path
):
    now = datetime.now(UTC)
    history = tmp_path / "history.jsonl"
    write_jsonl(_plan_history(now), history)
    config = {"source": "jsonl", "jsonl_path": str(history)}
    run_config = {
        "ops": {
            name: {"config": config}
            for name in ("g_b7_cost", "g_a1_reuse", "lever1_gate2_drift", "phase0_exit")
        }
    }
    result = dg.materialize(GATES, resources=resources, instance=instance, run_config=run_config)
    assert materialized_metadata(result, "g_b7_cost")["decision"] == "GO"
    assert materialized_metadata(result, "g_a1_reuse")["decision"] == "HIGH"
    exit_report = materialized_metadata(result, "phase0_exit")
    assert exit_report["feature_order"].startswith("anchor_skip -> capture_cache")
    # Trial invariance and the seam have not run: the capture modes wait for them.
    assert "capture_modes" in exit_report["blocked"]
    assert (
        "**Feature order: anchor skip (optional s22a1 anchor) -> capture cache"
        in (exit_report["report"])
    )
    # The history's plots are images in the exit report's appendix.
    appendix = exit_report["report"].split("### s22a1 elapsed (s)", 1)[1]
    assert "![s22a1 elapsed](data:image/png;base64," in appendix
    assert "![audits per cell](data:image/png;base64," in appendix


def test_every_numeric_gate_figure_is_its_own_entry_and_the_plots_are_images(
    resources, instance, tmp_path
):
    now = datetime.now(UTC)
    history = tmp_path / "history.jsonl"
    write_jsonl(_plan_history(now), history)
    config = {"config": {"source": "jsonl", "jsonl_path": str(history)}}
    run_config = {"ops": {"g_b7_cost": config, "g_a1_reuse": config}}
    result = dg.materialize(
        GATES,
        selection=["g_b7_cost", "g_a1_reuse"],
        resources=resources,
        instance=instance,
        run_config=run_config,
    )
    for asset, report_model, image in (
        ("g_b7_cost", AnchorCostReport, ELAPSED_HISTOGRAM_KEY),
        ("g_a1_reuse", ReuseReport, AUDITS_PER_CELL_KEY),
    ):
        metadata = materialized_metadata(result, asset)
        figures = report_model.model_fields["figures"].annotation
        assert isinstance(figures, type) and issubclass(figures, BaseModel)
        fields = numeric_fields(figures)
        assert fields, asset
        for field, kind in fields.items():
            value = metadata[gate_figure_key(field)]
            # The same number as the figures JSON that readers of FIGURES_KEY get back.
            assert value == metadata[FIGURES_KEY][field], (asset, field)
            assert value is None or type(value) is kind, (asset, field)
        assert metadata[image].startswith(f"![{image}](data:image/png;base64,")
    event = instance.get_latest_materialization_event(dg.AssetKey("g_b7_cost"))
    assert event is not None
    entries = event.asset_materialization.metadata
    assert isinstance(entries["figures.n"], dg.IntMetadataValue)
    assert isinstance(entries["figures.p50_s"], dg.FloatMetadataValue)


def test_history_is_read_from_the_instance_event_log(resources, instance):
    key = cell_partition_key(CellRef.parse("defi_top5/UNIUSDC/fold-1"))
    for tags in (APPROVED, {}):
        dg.materialize(
            [captured_fold, anchor_and_consumers],
            selection=["captured_fold", "s22a1_anchor", "s40_verdict"],
            resources=resources,
            instance=instance,
            partition_key=key,
            run_config={"ops": {k: v for k, v in TINY_RUN_CONFIG["ops"].items()}},
            tags=tags,
        )
    events = history_from_instance(instance, datetime.now(UTC) - timedelta(days=1))
    names = [e.event for e in events]
    assert names.count("s22a1_anchor") == 2 and names.count("s40_verdict") == 2
    assert names.count("capture") == 1  # the second run was a cache HIT, not a capture
    assert {e.cell_ref for e in events} == {"defi_top5/UNIUSDC/fold-1"}

    result = dg.materialize(GATES, resources=resources, instance=instance)
    b7 = materialized_metadata(result, "g_b7_cost")
    assert b7["decision"] == "INSUFFICIENT_DATA"  # two anchors: too few to decide, never a guess
    assert materialized_metadata(result, "lever1_gate3_size")["decision"] == "WITHIN_BUDGET"
    assert materialized_metadata(result, "g_c0_consumers")["decision"] == "MAPPED"


def test_replay_gates_need_approval_then_pass_on_the_reference_recipe(resources, instance):
    from tests.fixtures.audit import g_c4_invariance, g_c4b_seam

    small = {"config": {"n_trials": 3, "max_rounds": 20}}
    run_config = {"ops": {"g_c4_invariance": small, "g_c4b_seam": small}}
    refused = dg.materialize(
        [g_c4_invariance],
        resources=resources,
        instance=instance,
        run_config={"ops": {"g_c4_invariance": small}},
        raise_on_error=False,
    )
    failure = refused.failure_data_for_node("g_c4_invariance").user_failure_data
    assert "COLD_CAPTURE_REQUIRES_OPERATOR" in failure.description

    result = dg.materialize(
        [g_c4_invariance, g_c4b_seam],
        resources=resources,
        instance=instance,
        run_config=run_config,
        tags=APPROVED,
    )
    assert materialized_metadata(result, "g_c4_invariance")["decision"] == "PASS"
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "trial_invariance_holds" and check.passed
    assert materialized_metadata(result, "g_c4b_seam")["decision"] == "SEAM"
