"""Which cells need attention: the rule behind audit_report's audit_clean check."""

import pytest

from diag_assets.core.audit.attention import Urgency, attention
from diag_assets.core.audit.report import build_audit_report
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.diagnostics.calibration import s27_without_anchor
from diag_assets.core.diagnostics.certification import Certification
from diag_assets.core.diagnostics.drift import run_s23
from diag_assets.core.diagnostics.findings import Finding, FindingCode
from diag_assets.core.diagnostics.probe import judge_s40
from tests.conftest import TINY_PROBE
from tests.fixtures.captures import replay

CELL = "defi_top5/UNIUSDC/fold-3"
NO_SIGNAL = Finding(code=FindingCode.NO_SIGNAL, diagnostic="s40", detail="p=0.4 > alpha 0.05.")
GAP = Finding(code=FindingCode.DATA_GAP, diagnostic="s23", detail="1 gap(s), 0 row(s) dropped.")


@pytest.fixture(scope="module")
def full(tiny_source):
    return replay(tiny_source, CaptureMode.FULL_REPLAY)


@pytest.fixture(scope="module")
def certified(full):
    """A full audit's verdicts (the anchor used): CERTIFIED."""
    from diag_assets.core.diagnostics.anchor import run_anchor

    anchor = run_anchor(full)
    return {"s40": judge_s40(full, anchor, TINY_PROBE), "s23": run_s23(full)}


@pytest.fixture(scope="module")
def light(full):
    """A light audit's verdicts (the anchor skipped): DOWNGRADED."""
    return {"s40": judge_s40(full, None, TINY_PROBE), "s27": s27_without_anchor(full)}


def _report(manifest, verdicts, *findings: Finding):
    stamped = {
        name: verdict.model_copy(update={"findings": [f for f in findings if f.diagnostic == name]})
        for name, verdict in verdicts.items()
    }
    return build_audit_report(CELL, manifest, stamped)


def test_a_certified_audit_without_findings_is_clean(full, certified):
    report = _report(full.manifest, certified)
    assert report.certification is Certification.CERTIFIED and not report.finding_codes
    outcome = attention(report)
    assert outcome.passed and outcome.urgency is Urgency.CLEAN
    assert outcome.reason == "CERTIFIED with no findings: nothing to act on."


def test_a_certified_audit_with_findings_warns_and_names_them(full, certified):
    outcome = attention(_report(full.manifest, certified, NO_SIGNAL, GAP))
    assert not outcome.passed and outcome.urgency is Urgency.WARN
    assert outcome.certification is Certification.CERTIFIED
    assert outcome.finding_codes == ["NO_SIGNAL", "DATA_GAP"]
    assert outcome.reason.startswith("CERTIFIED with 2 findings (NO_SIGNAL, DATA_GAP)")
    assert "p=0.4 > alpha 0.05." in outcome.reason


def test_a_downgraded_audit_warns_with_its_reason_findings_or_not(full, light):
    for findings in ((), (NO_SIGNAL,)):
        outcome = attention(_report(full.manifest, light, *findings))
        assert outcome.certification is Certification.DOWNGRADED
        assert not outcome.passed and outcome.urgency is Urgency.WARN
        assert outcome.reason.startswith("DOWNGRADED")
        assert "s22a1" in outcome.reason  # the reason says what downgraded it
    assert "1 finding (NO_SIGNAL)" in outcome.reason


def test_an_inconclusive_audit_is_an_error_even_with_findings(light):
    # No captured fold: the inputs cannot be proven, whatever the verdicts found.
    report = _report(None, light, NO_SIGNAL)
    assert report.certification is Certification.INCONCLUSIVE_TOOLING
    outcome = attention(report)
    assert not outcome.passed and outcome.urgency is Urgency.ERROR
    assert outcome.reason.startswith("INCONCLUSIVE_TOOLING")
    assert "no captured fold" in outcome.reason
    assert "**" not in outcome.reason and outcome.headline == report.headline
