"""The audit summary counts every registered cell, and shows findings beside certification."""

from datetime import UTC, datetime, timedelta

import pytest

from diag_assets.core.audit.report import build_audit_report
from diag_assets.core.audit.summary import CellStatus, audit_failure, first_line, summarize
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.outcomes import ColdCaptureRequiresOperator
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.calibration import s27_without_anchor
from diag_assets.core.diagnostics.drift import run_s23
from diag_assets.core.diagnostics.findings import Finding, FindingCode
from diag_assets.core.diagnostics.probe import judge_s40
from diag_assets.core.diagnostics.spread import run_s22a2
from diag_assets.core.errors import DiagInputError
from tests.conftest import TINY_PROBE
from tests.fixtures.captures import replay

CELLS = [f"defi_top5/{symbol}/fold-{fold}" for symbol in ("AAVEUSDC", "UNIUSDC") for fold in (0, 1)]
NO_SIGNAL = Finding(code=FindingCode.NO_SIGNAL, diagnostic="s40", detail="p=0.4 > alpha 0.05.")


@pytest.fixture(scope="module")
def full(tiny_source):
    return replay(tiny_source, CaptureMode.FULL_REPLAY)


@pytest.fixture(scope="module")
def verdicts(full):
    """A light audit's verdicts (anchor skipped: DOWNGRADED) of the tiny capture."""
    return {
        "s40": judge_s40(full, None, TINY_PROBE),
        "s27": s27_without_anchor(full),
        "s22a2": run_s22a2(full),
        "s23": run_s23(full),
    }


def _report(cell_ref, manifest, verdicts, *findings: Finding):
    with_findings = {
        name: verdict.model_copy(update={"findings": [f for f in findings if f.diagnostic == name]})
        for name, verdict in verdicts.items()
    }
    return build_audit_report(cell_ref, manifest, with_findings)


def _certified(full):
    """A full audit's verdicts: every verdict CERTIFIED (the anchor was used)."""
    from diag_assets.core.diagnostics.anchor import run_anchor
    from diag_assets.core.diagnostics.calibration import run_s27

    anchor = run_anchor(full)
    return {
        "s40": judge_s40(full, anchor, TINY_PROBE),
        "s27": run_s27(full, anchor=anchor),
        "s22a2": run_s22a2(full),
        "s23": run_s23(full),
    }


def test_every_registered_cell_has_a_row_and_the_counts_add_up(full, verdicts):
    certified = _report(CELLS[0], full.manifest, _certified(full), NO_SIGNAL)
    downgraded = _report(CELLS[1], full.manifest, verdicts)
    refusal = _cold_capture_refusal(CELLS[2])
    refused = audit_failure(
        CELLS[2], "captured_fold", str(refusal), [type(refusal).__name__], run_id="run-refused-1"
    )
    summary = summarize([certified, downgraded], ["s40", "s23"], cells=CELLS, failures=[refused])
    statuses = {row["cell_ref"]: row["status"] for row in summary.rows}
    assert statuses == {
        CELLS[0]: "CERTIFIED",
        CELLS[1]: "DOWNGRADED",
        CELLS[2]: "REFUSED",
        CELLS[3]: "NOT_AUDITED",
    }
    assert summary.cells == 4 == sum(summary.counts.values())
    assert summary.complete == 1
    assert summary.markdown.splitlines()[0] == (
        "**1 of 4 cells complete (CERTIFIED)**; 1 DOWNGRADED; 0 INCONCLUSIVE_TOOLING; "
        "1 REFUSED; 0 FAILED; 1 NOT_AUDITED. Findings (cells): NO_SIGNAL 1."
    )
    rows = {row["cell_ref"]: row for row in summary.rows}
    assert rows[CELLS[0]]["findings"] == "NO_SIGNAL"
    assert rows[CELLS[1]]["findings"] == "none"
    assert "captured_fold refused in run run-refu" in rows[CELLS[2]]["why"]
    assert "COLD_CAPTURE_REQUIRES_OPERATOR" in rows[CELLS[2]]["why"]
    assert summary.cells_with(CellStatus.REFUSED) == [CELLS[2]]


def test_a_failed_cell_shows_the_first_line_of_its_error(full):
    error = DiagInputError(
        "History too short for fold 4: BTCUSDT has 1500 bars, fold 4 needs 9000.",
        "supply more history.",
    )
    failure = audit_failure(
        CELLS[3], "captured_fold", str(error), ["DiagInputError"], run_id="run-failed-1"
    )
    summary = summarize([], cells=CELLS, failures=[failure])
    row = next(row for row in summary.rows if row["cell_ref"] == CELLS[3])
    assert row["status"] == "FAILED"
    assert row["why"].startswith(
        "captured_fold failed in run run-fail: History too short for fold 4"
    )
    assert summary.counts["FAILED"] == 1 and summary.counts["NOT_AUDITED"] == 3


def test_the_latest_of_a_report_and_a_failure_decides_the_row(full, verdicts):
    report = _report(CELLS[0], full.manifest, _certified(full), NO_SIGNAL)
    made = datetime.fromisoformat(report.generated_at)
    error = "s23 ran out of memory\nTraceback (most recent call last): ..."
    after = audit_failure(
        CELLS[0], "s23_drift", error, run_id="run-2", at=made + timedelta(seconds=5)
    )
    before = audit_failure(
        CELLS[0], "s23_drift", error, run_id="run-0", at=made - timedelta(days=1)
    )

    failed_since = summarize([report], cells=[CELLS[0]], failures=[after])
    assert failed_since.rows[0]["status"] == "FAILED"
    assert failed_since.rows[0]["why"] == (
        "s23_drift failed in run run-2: s23 ran out of memory (its earlier report: CERTIFIED)"
    )
    # The failed cell's old findings are not counted as if its audit stood.
    assert failed_since.finding_counts == {}

    audited_since = summarize([report], cells=[CELLS[0]], failures=[before])
    assert audited_since.rows[0]["status"] == "CERTIFIED"
    assert audited_since.finding_counts == {"NO_SIGNAL": 1}


def test_a_cell_with_a_report_but_no_longer_registered_still_has_a_row(full, verdicts):
    gone = "defi_top5/OLDUSDC/fold-0"
    summary = summarize([_report(gone, full.manifest, verdicts)], cells=CELLS)
    assert summary.cells == 5 and gone in {row["cell_ref"] for row in summary.rows}


def test_the_error_line_is_clipped_and_a_refusal_is_found_anywhere_in_the_chain():
    assert len(first_line("x" * 5_000)) < 300
    assert first_line("  \n") == "(no message)"
    refusal = _cold_capture_refusal(CELLS[0])
    failure = audit_failure(
        CELLS[0],
        "captured_fold",
        str(refusal),
        ["Failure", ColdCaptureRequiresOperator.__name__],
        run_id="run-9",
    )
    assert failure.status is CellStatus.REFUSED
    assert failure.error.startswith("COLD_CAPTURE_REQUIRES_OPERATOR")
    assert datetime.fromisoformat(failure.failed_at).tzinfo is UTC


def _cold_capture_refusal(cell_ref: str) -> ColdCaptureRequiresOperator:
    return ColdCaptureRequiresOperator(CellRef.parse(cell_ref), "no capture of this cell yet")
