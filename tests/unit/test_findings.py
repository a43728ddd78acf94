"""Findings: each diagnostic states what it found in a fixed vocabulary, beside certification."""

from typing import ClassVar

import pytest
from pydantic import BaseModel

from diag_assets.core.audit.report import build_audit_report
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.diagnostics.builtins import (
    AdversarialDrift,
    Calibration,
    SignalProbe,
    TrialSpread,
)
from diag_assets.core.diagnostics.calibration import CalibrationStatus, run_s27
from diag_assets.core.diagnostics.certification import AnchorUse, Certification, certify
from diag_assets.core.diagnostics.consumers import CaptureRequirement, CaptureView
from diag_assets.core.diagnostics.drift import DriftLevel, run_s23
from diag_assets.core.diagnostics.findings import Finding, FindingCode, gap_findings, merged
from diag_assets.core.diagnostics.plugin import Diagnostic, check_declarations, run_diagnostic
from diag_assets.core.diagnostics.probe import judge_s40
from diag_assets.core.diagnostics.spread import SpreadStatus, run_s22a2
from diag_assets.core.diagnostics.verdicts import AnchorResult, CrossrefStatus, Signal, Verdict
from diag_assets.core.errors import DiagInputError
from tests.conftest import TINY_PROBE
from tests.fixtures.captures import replay


@pytest.fixture(scope="module")
def full(tiny_source):
    return replay(tiny_source, CaptureMode.FULL_REPLAY)


@pytest.fixture(scope="module")
def anchor(full) -> AnchorResult:
    from diag_assets.core.diagnostics.anchor import run_anchor

    return run_anchor(full)


def _codes(findings: list[Finding]) -> list[str]:
    return [finding.code for finding in findings]


def test_the_probe_reports_no_signal_and_an_inconsistent_anchor(full, anchor):
    verdict = judge_s40(full, anchor, TINY_PROBE)
    probe = SignalProbe()
    no_signal = verdict.model_copy(
        update={"signal": Signal.NO_SIGNAL, "s22a1_crossref_status": CrossrefStatus.CONSISTENT}
    )
    assert _codes(probe.findings(no_signal)) == ["NO_SIGNAL"]
    assert "p=" in probe.findings(no_signal)[0].detail
    inconsistent = verdict.model_copy(
        update={"signal": Signal.SIGNAL, "s22a1_crossref_status": CrossrefStatus.INCONSISTENT}
    )
    assert _codes(probe.findings(inconsistent)) == ["ANCHOR_INCONSISTENT"]
    clean = verdict.model_copy(
        update={"signal": Signal.SIGNAL, "s22a1_crossref_status": CrossrefStatus.CONSISTENT}
    )
    assert probe.findings(clean) == []


def test_drift_calibration_and_spread_report_their_findings(full, anchor):
    drift = run_s23(full)
    strong = drift.model_copy(update={"drift": DriftLevel.STRONG})
    assert _codes(AdversarialDrift().findings(strong)) == ["TRAIN_VALIDATION_SHIFT"]
    assert AdversarialDrift().findings(drift.model_copy(update={"drift": DriftLevel.MILD})) == []

    calibration = run_s27(full, anchor=anchor)
    bad = calibration.model_copy(update={"calibration": CalibrationStatus.MISCALIBRATED})
    good = calibration.model_copy(update={"calibration": CalibrationStatus.WELL_CALIBRATED})
    assert _codes(Calibration().findings(bad)) == ["MISCALIBRATED"]
    assert Calibration().findings(good) == []

    spread = run_s22a2(full)
    within = spread.model_copy(update={"status": SpreadStatus.WITHIN_SPREAD})
    stands_out = spread.model_copy(update={"status": SpreadStatus.STANDS_OUT})
    assert _codes(TrialSpread().findings(within)) == ["BEST_TRIAL_NOT_DISTINCT"]
    assert TrialSpread().findings(stands_out) == []


def test_the_harness_stamps_each_verdict_with_its_findings(full):
    probe = SignalProbe()
    verdict = run_diagnostic(probe, full, TINY_PROBE)
    assert isinstance(verdict, Verdict)
    # The diagnostic's own findings, then the gaps of the fold's window (the synthetic
    # history has a few short exchange gaps).
    assert full.manifest.gaps
    gaps = gap_findings(full.manifest, "s40")
    assert [f.code for f in gaps] == ["DATA_GAP"]
    assert verdict.findings == probe.findings(verdict) + gaps
    assert full.manifest.gaps[0].last_before in gaps[0].detail


class _Flagged(Verdict):
    flagged: bool

    @property
    def anchor_use(self) -> AnchorUse:
        return AnchorUse.NOT_NEEDED


class _Flagging(Diagnostic):
    name = "flagging"
    requirement = CaptureRequirement.XY_ONLY
    result_model = _Flagged
    code = "UNSTABLE_IMPORTANCE"

    def run(self, view: CaptureView, settings: BaseModel, anchor: AnchorResult | None):
        manifest = view.manifest
        decision = certify(capture_mode=manifest.mode, anchor=AnchorUse.NOT_NEEDED)
        return _Flagged(
            cell_ref=manifest.cell_ref,
            certification=decision.certification,
            certification_reason=decision.reason,
            capture_key=manifest.capture_key,
            capture_content_hash=manifest.content_hash,
            elapsed_s=0.0,
            flagged=True,
        )

    def findings(self, result: BaseModel) -> list[Finding]:
        return [Finding(code=self.code, diagnostic=self.name, detail="ranks moved.")]


class _Declaring(_Flagging):
    name = "declaring"
    finding_codes: ClassVar[frozenset[str]] = frozenset({"UNSTABLE_IMPORTANCE"})


def test_a_plug_in_finding_outside_the_vocabulary_is_refused_and_a_declared_one_kept(full):
    with pytest.raises(TypeError, match="UNSTABLE_IMPORTANCE.*finding_codes"):
        run_diagnostic(_Flagging(), full, _Flagging().settings(None))
    verdict = run_diagnostic(_Declaring(), full, _Declaring().settings(None))
    assert isinstance(verdict, Verdict)
    assert _codes(verdict.findings)[0] == "UNSTABLE_IMPORTANCE"


def test_a_badly_spelled_finding_code_declaration_is_refused():
    class Lowercase(_Flagging):
        name = "lowercase"
        finding_codes: ClassVar[frozenset[str]] = frozenset({"unstable"})

    with pytest.raises(DiagInputError, match="finding_codes"):
        check_declarations(Lowercase)


def test_the_report_shows_findings_beside_certification_and_merges_equal_ones(full, anchor):
    gap = "1 gap(s) in the fold's window, 0 row(s) dropped: ..."
    verdicts = {
        "s40": judge_s40(full, anchor, TINY_PROBE),
        "s27": run_s27(full, anchor=anchor),
        "s23": run_s23(full),
    }
    stamped = {
        name: verdict.model_copy(
            update={
                "findings": [
                    *([NO_SIGNAL] if name == "s40" else []),
                    Finding(code=FindingCode.DATA_GAP, diagnostic=name, detail=gap),
                ]
            }
        )
        for name, verdict in verdicts.items()
    }
    report = build_audit_report("defi_top5/UNIUSDC/fold-3", full.manifest, stamped)
    assert report.certification is Certification.CERTIFIED
    assert report.headline.startswith(
        "**audit complete (CERTIFIED)**, 2 findings: NO_SIGNAL, DATA_GAP."
    )
    assert [(f.code, f.diagnostics) for f in report.findings] == [
        ("NO_SIGNAL", ["s40"]),
        ("DATA_GAP", ["s40", "s27", "s23"]),
    ]
    assert "| DATA_GAP | s40, s27, s23 |" in report.markdown

    # A verdict computed on another capture speaks of other data: its findings are not shown.
    stale = stamped["s40"].model_copy(update={"capture_content_hash": "0" * 32})
    report = build_audit_report("c", full.manifest, {**stamped, "s40": stale})
    assert report.finding_codes == ["DATA_GAP"]
    assert report.certification is Certification.INCONCLUSIVE_TOOLING
    assert report.headline.startswith(
        "**audit INCONCLUSIVE_TOOLING** (input missing or unverifiable), 1 finding: DATA_GAP."
    )


def test_a_complete_audit_without_findings_says_so(full, anchor):
    verdicts = {"s40": judge_s40(full, anchor, TINY_PROBE), "s23": run_s23(full)}
    clean = {name: v.model_copy(update={"findings": []}) for name, v in verdicts.items()}
    report = build_audit_report("c", full.manifest, clean)
    assert report.headline.startswith("**audit complete (CERTIFIED)**, no findings.")
    assert "No findings." in report.markdown


def test_merged_keeps_first_seen_order_and_each_reporter_once():
    a = Finding(code="DATA_GAP", diagnostic="s40", detail="d")
    b = Finding(code="NO_SIGNAL", diagnostic="s40", detail="n")
    again = Finding(code="DATA_GAP", diagnostic="s40", detail="d")
    other = Finding(code="DATA_GAP", diagnostic="s23", detail="d")
    assert merged([a, b, again, other]) == [(a, ["s40", "s23"]), (b, ["s40"])]


NO_SIGNAL = Finding(code=FindingCode.NO_SIGNAL, diagnostic="s40", detail="p=0.4 > alpha 0.05.")
