"""Every registered cell has a row in audit_summary: audited, refused, failed or not audited."""

import dagster as dg

from diag_assets.audit.run_results import refused_capture
from diag_assets.core.cells import CellRef
from diag_assets.partitions import cell_partition_key
from tests.dagster.conftest import APPROVED, TINY_RUN_CONFIG, local_resources, tiny_market_data
from tests.fixtures.audit import (
    anchor_and_consumers,
    audit_report,
    audit_summary,
    captured_fold,
    s22a2_spread,
    s23_drift,
)

AUDIT = [captured_fold, anchor_and_consumers, s22a2_spread, s23_drift, audit_report]
# 2,500 bars: folds 0-2 fit the tiny layout (1,500 training + 300 per validation block).
SHORT_HISTORY = 2_500


def _audit(cell: CellRef, resources, instance, tags) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        AUDIT,
        resources=resources,
        instance=instance,
        partition_key=cell_partition_key(cell),
        run_config=TINY_RUN_CONFIG,
        tags=tags,
        raise_on_error=False,
    )


def test_the_summary_counts_audited_refused_failed_and_never_audited_cells(tmp_path):
    resources = local_resources(tmp_path, market_data=tiny_market_data(n_bars=SHORT_HISTORY))
    audited = CellRef("defi_top5", "UNIUSDC", 0)
    refused = CellRef("defi_top5", "UNIUSDC", 1)
    too_short = CellRef("defi_top5", "OPUSDC", 4)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", ["UNIUSDC", "OPUSDC"])
        assert _audit(audited, resources, instance, APPROVED).success
        # No approval: the capture is refused (its check fails), the run does not fail.
        refusal = _audit(refused, resources, instance, {})
        assert refusal.success and refused_capture(refusal, "captured_fold")
        failure = _audit(too_short, resources, instance, APPROVED)
        assert not failure.success

        result = dg.materialize([audit_summary], resources=resources, instance=instance)
        (event,) = result.get_asset_materialization_events()
        metadata = {k: v.value for k, v in event.materialization.metadata.items()}
        # Each refused or failed cell links to its run.
        links = event.materialization.metadata
        assert links[f"refused run: {refused}"] == dg.MetadataValue.dagster_run(refusal.run_id)
        assert links[f"failed run: {too_short}"] == dg.MetadataValue.dagster_run(failure.run_id)

    # 2 symbols x the 5 folds of the layout, each counted exactly once.
    assert metadata["cells"] == 10
    counts = {
        status: metadata[status.lower()]
        for status in ("CERTIFIED", "DOWNGRADED", "INCONCLUSIVE_TOOLING", "REFUSED", "FAILED")
    }
    assert counts["REFUSED"] == 1 and counts["FAILED"] == 1
    assert counts["CERTIFIED"] + counts["DOWNGRADED"] + counts["INCONCLUSIVE_TOOLING"] == 1
    assert metadata["not_audited"] == 7
    assert metadata["failed_cells"] == {"FAILED": [str(too_short)], "REFUSED": [str(refused)]}

    summary = metadata["summary"]
    rows = {line.split(" | ")[0].strip("| "): line for line in summary.splitlines()[2:]}
    assert set(rows) >= {str(audited), str(refused), str(too_short)}
    assert "COLD_CAPTURE_REQUIRES_OPERATOR" in rows[str(refused)]
    assert "captured_fold failed in run" in rows[str(too_short)]
    assert "History too short for fold 4" in rows[str(too_short)]
    assert "| NOT_AUDITED |" in rows[str(CellRef("defi_top5", "OPUSDC", 0))]
    assert summary.splitlines()[0].startswith("**")
    assert "of 10 cells complete (CERTIFIED)" in summary.splitlines()[0]

    # The cell table: the same ten cells, with the failed and refused runs and their reasons.
    table = {record.data["cell"]: record.data for record in metadata["cell_table"].records}
    assert len(metadata["cell_table"].records) == len(table) == 10
    assert table[str(refused)]["status"] == "REFUSED" and table[str(refused)]["run_id"] != "-"
    assert "COLD_CAPTURE_REQUIRES_OPERATOR" in table[str(refused)]["reason"]
    assert table[str(too_short)]["status"] == "FAILED"
    assert table[str(too_short)]["run_id"] != "-"
    assert "History too short for fold 4" in table[str(too_short)]["reason"]
    assert table[str(audited)]["certification"] == table[str(audited)]["status"]
    assert table[str(audited)]["findings"] == len(
        [c for c in table[str(audited)]["finding_codes"].split(", ") if c != "-"]
    )
    assert sum(row["status"] == "NOT_AUDITED" for row in table.values()) == 7
