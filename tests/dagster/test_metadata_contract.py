"""The metadata contract: the gates' history reads exactly what the assets record."""

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.capture.outcomes import CaptureOutcome
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.verdicts import AnchorResult
from diag_assets.core.gates.history import (
    ANCHOR_EVENT,
    AUDIT_EVENT,
    CAPTURE_EVENT,
    DRIFT_EVENT,
)
from diag_assets.core.metadata import AnchorMetadata, CaptureMetadata, MaterializationMetadata
from diag_assets.core.names import (
    CAPTURED_FOLD,
    CERTIFICATION_KEY,
    ELAPSED_S_KEY,
    S22A1_ANCHOR,
    S40_VERDICT,
    VERDICT_KEY,
)
from diag_assets.gates.history import history_from_instance
from diag_assets.partitions import cell_partition_key
from tests.dagster.conftest import APPROVED, TINY_RUN_CONFIG, local_resources
from tests.fixtures.audit import anchor_and_consumers, captured_fold

CELL = CellRef.parse("defi_top5/UNIUSDC/fold-1")


def _stored(instance: dg.DagsterInstance, asset: str) -> list[dict[str, Any]]:
    """The metadata values of every stored materialization of ``asset``, oldest first."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=10, ascending=True)
    return [
        {key: value.value for key, value in record.asset_materialization.metadata.items()}
        for record in records.records
        if record.asset_materialization is not None
    ]


def _assert_recorded_as_declared(model: type[MaterializationMetadata], recorded: dict) -> None:
    declared = set(model.model_fields)
    assert declared <= set(recorded), f"not recorded: {sorted(declared - set(recorded))}"
    parsed = model.parse(recorded)
    assert parsed is not None
    # Every declared field reads back as the very value the asset recorded under its name.
    assert parsed.values() == {key: recorded[key] for key in declared}
    assert None not in parsed.values().values()


def test_the_gates_history_reads_what_the_capture_and_the_anchor_record(tmp_path, instance):
    key = cell_partition_key(CELL)
    resources = local_resources(tmp_path)
    cold = dg.materialize(
        [captured_fold, anchor_and_consumers],
        selection=[CAPTURED_FOLD, S22A1_ANCHOR, S40_VERDICT],
        resources=resources,
        instance=instance,
        partition_key=key,
        run_config=TINY_RUN_CONFIG,
        tags=APPROVED,
    )
    assert cold.success
    # A warm read that checks drift: its capture events carry a capture_drift_checked.
    dg.materialize(
        [captured_fold],
        resources=local_resources(tmp_path, check_drift="on_read"),
        instance=instance,
        partition_key=key,
        run_config={"ops": {CAPTURED_FOLD: TINY_RUN_CONFIG["ops"][CAPTURED_FOLD]}},
    )

    captures = _stored(instance, CAPTURED_FOLD)
    (anchor,) = _stored(instance, S22A1_ANCHOR)
    (verdict,) = _stored(instance, S40_VERDICT)
    for recorded in captures:
        _assert_recorded_as_declared(CaptureMetadata, recorded)
    _assert_recorded_as_declared(AnchorMetadata, anchor)
    miss, hit = (CaptureMetadata.parse(recorded) for recorded in captures)
    assert miss and miss.cache is CaptureOutcome.MISS
    assert hit and hit.cache is CaptureOutcome.HIT
    # ... and the recorded values are those of the stored capture and anchor.
    results = resources["artifacts"].results()
    manifest = results.read(CAPTURED_FOLD, CELL, CaptureManifest)
    fit = results.read(S22A1_ANCHOR, CELL, AnchorResult)
    assert manifest and fit
    for capture in (miss, hit):
        assert (
            capture.cell_ref,
            capture.content_hash,
            capture.bytes,
            capture.capture_elapsed_s,
        ) == (
            manifest.cell_ref,
            manifest.content_hash,
            manifest.total_bytes,
            manifest.elapsed_s,
        )
    assert AnchorMetadata.parse(anchor) == AnchorMetadata(
        cell_ref=fit.cell_ref, elapsed_s=fit.elapsed_s, rows=fit.rows, best_iter=fit.best_iter
    )

    events = history_from_instance(instance, datetime.now(UTC) - timedelta(days=1))
    by_name = {event.event: event for event in events}
    assert sorted(by_name) == sorted([ANCHOR_EVENT, AUDIT_EVENT, CAPTURE_EVENT, DRIFT_EVENT])
    assert {event.cell_ref for event in events} == {str(CELL)}
    assert by_name[ANCHOR_EVENT].elapsed_s == anchor["elapsed_s"]
    assert by_name[ANCHOR_EVENT].fields == {
        "rows": anchor["rows"],
        "best_iter": anchor["best_iter"],
    }
    assert by_name[CAPTURE_EVENT].elapsed_s == miss.capture_elapsed_s
    assert by_name[CAPTURE_EVENT].fields == {"bytes": miss.bytes}
    assert by_name[DRIFT_EVENT].fields == {"drifted": False}
    # s40_verdict names its cell in the verdict it records.
    assert verdict[VERDICT_KEY]["cell_ref"] == str(CELL)
    assert by_name[AUDIT_EVENT].elapsed_s == verdict[ELAPSED_S_KEY]
    assert by_name[AUDIT_EVENT].fields == {"certification": verdict[CERTIFICATION_KEY]}
