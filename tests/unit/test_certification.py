"""Certification: one rule for every verdict and every report, and the reasons it gives."""

import subprocess
import sys
from pathlib import Path

import pytest

from diag_assets.core.audit.report import build_audit_report
from diag_assets.core.audit.summary import summarize
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.diagnostics.anchor import run_anchor
from diag_assets.core.diagnostics.builtins import BUILT_IN_NAMES
from diag_assets.core.diagnostics.calibration import run_s27, s27_without_anchor
from diag_assets.core.diagnostics.certification import (
    SINGLE_FIT_CAPTURE,
    AnchorUse,
    Certification,
    certify,
)
from diag_assets.core.diagnostics.consumers import (
    DIAGNOSTIC_CAPTURE_REQUIREMENTS,
    CaptureRequirement,
    ConsumerContractViolation,
)
from diag_assets.core.diagnostics.drift import run_s23
from diag_assets.core.diagnostics.probe import inconclusive_s40, judge_s40
from diag_assets.core.diagnostics.spread import run_s22a2
from tests.conftest import TINY_PROBE
from tests.fixtures.captures import replay

FULL, DATASET, SINGLE = CaptureMode.FULL_REPLAY, CaptureMode.DATASET_ONLY, CaptureMode.SINGLE_FIT
USED, SKIPPED, NOT_NEEDED = AnchorUse.USED, AnchorUse.SKIPPED, AnchorUse.NOT_NEEDED
CERTIFIED = Certification.CERTIFIED
DOWNGRADED = Certification.DOWNGRADED
INCONCLUSIVE = Certification.INCONCLUSIVE_TOOLING
ANCHOR_SKIP = "s22a1 anchor skipped"
PROBLEM = "the captured Parquet s3://bucket/X.parquet does not exist."
PACKAGE = Path(__file__).resolve().parents[2] / "diag_assets" / "core" / "diagnostics"


# ---------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("mode", "anchor", "problem", "expected", "names_single_fit", "names_anchor_skip"),
    [
        # every input present and verified
        (FULL, USED, None, CERTIFIED, False, False),
        (FULL, NOT_NEEDED, None, CERTIFIED, False, False),
        (DATASET, USED, None, CERTIFIED, False, False),
        (DATASET, NOT_NEEDED, None, CERTIFIED, False, False),
        (FULL, SKIPPED, None, DOWNGRADED, False, True),
        (DATASET, SKIPPED, None, DOWNGRADED, False, True),
        (SINGLE, USED, None, DOWNGRADED, True, False),
        (SINGLE, NOT_NEEDED, None, DOWNGRADED, True, False),
        (SINGLE, SKIPPED, None, DOWNGRADED, True, True),
        # an input missing or unverifiable: nothing else matters
        (FULL, USED, PROBLEM, INCONCLUSIVE, False, False),
        (FULL, SKIPPED, PROBLEM, INCONCLUSIVE, False, False),
        (DATASET, NOT_NEEDED, PROBLEM, INCONCLUSIVE, False, False),
        (SINGLE, SKIPPED, PROBLEM, INCONCLUSIVE, False, False),
        (None, SKIPPED, PROBLEM, INCONCLUSIVE, False, False),
    ],
)
def test_the_certification_rule(
    mode, anchor, problem, expected, names_single_fit, names_anchor_skip
):
    decision = certify(
        capture_mode=mode, anchor=anchor, problem=problem, finding="probe SIGNAL (p=0.05)."
    )
    assert decision.certification is expected
    assert ("single_fit" in decision.reason) is names_single_fit
    assert (ANCHOR_SKIP in decision.reason) is names_anchor_skip
    assert "probe SIGNAL (p=0.05)." in decision.reason  # the finding is always told
    if expected is CERTIFIED:
        assert decision.causes == () and decision.reason == "probe SIGNAL (p=0.05)."
    elif expected is INCONCLUSIVE:
        assert decision.causes == (PROBLEM,) and decision.reason.startswith(PROBLEM)
    else:
        assert len(decision.causes) == names_single_fit + names_anchor_skip
        assert all(cause in decision.reason for cause in decision.causes)


def test_the_reason_says_what_the_skipped_anchor_cost_and_what_was_verified():
    skipped = certify(capture_mode=FULL, anchor=SKIPPED, without_anchor="s27 did not run")
    assert skipped.reason == "s22a1 anchor skipped: s27 did not run."
    both = certify(capture_mode=SINGLE, anchor=SKIPPED, without_anchor="s27 did not run")
    assert both.reason == f"s22a1 anchor skipped: s27 did not run. {SINGLE_FIT_CAPTURE}"
    assert "anchor cross-reference ran" in certify(capture_mode=FULL, anchor=USED).reason
    assert "anchor" not in certify(capture_mode=FULL, anchor=NOT_NEEDED).reason


def test_a_verdict_without_a_capture_must_name_its_problem():
    with pytest.raises(ValueError, match="problem"):
        certify(capture_mode=None, anchor=NOT_NEEDED)


# ---------------------------------------------------------------------------- the registry


def test_the_registry_is_complete_whichever_module_is_imported_first():
    # One fresh interpreter per module: the registry must not depend on what was imported
    # before (the consumer-map gate and the capture mode resolver read it as they find it).
    code = (
        "import diag_assets.core.diagnostics.{}\n"
        "from diag_assets.core.diagnostics.consumers import DIAGNOSTIC_CAPTURE_REQUIREMENTS\n"
        "print(' '.join(sorted(DIAGNOSTIC_CAPTURE_REQUIREMENTS)))\n"
    )
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert {"anchor", "calibration", "consumers", "drift", "probe", "spread"} <= set(modules)
    children = {
        module: subprocess.Popen(
            [sys.executable, "-c", code.format(module)], stdout=subprocess.PIPE, text=True
        )
        for module in modules
    }
    registered = {
        module: child.communicate(timeout=120)[0].split() for module, child in children.items()
    }
    expected = ["s22a1", "s22a2", "s23", "s27", "s40"]
    assert registered == {module: expected for module in modules}


# ---------------------------------------------------------------------------- single_fit


@pytest.fixture(scope="module")
def full(tiny_source):
    return replay(tiny_source, FULL)


@pytest.fixture(scope="module")
def single(tiny_source):
    return replay(tiny_source, SINGLE)


@pytest.fixture(scope="module")
def light(full):
    """The verdicts of a light audit of ``full``: the anchor skipped."""
    return {
        "s40": judge_s40(full, None, TINY_PROBE),
        "s27": s27_without_anchor(full),
        "s22a2": run_s22a2(full),
        "s23": run_s23(full),
    }


@pytest.fixture(scope="module")
def on_single(single):
    """The verdicts a single_fit capture can give: s40 (anchor skipped) and s23."""
    return {"s40": judge_s40(single, None, TINY_PROBE), "s23": run_s23(single)}


def test_every_registered_diagnostic_on_a_single_fit_capture_is_downgraded_or_refused(full, single):
    anchor = run_anchor(full)
    runs = {
        "s22a1": lambda: run_anchor(single),
        "s40": lambda: judge_s40(single, None, TINY_PROBE),
        "s22a2": lambda: run_s22a2(single),
        "s23": lambda: run_s23(single),
        "s27": lambda: run_s27(single, anchor=anchor),
    }
    # A built-in diagnostic declared without joining this test fails it (plug-ins that other
    # tests registered in this process are theirs to test).
    assert set(runs) == set(BUILT_IN_NAMES)
    assert set(BUILT_IN_NAMES) <= set(DIAGNOSTIC_CAPTURE_REQUIREMENTS)
    for name, run in runs.items():
        if DIAGNOSTIC_CAPTURE_REQUIREMENTS[name] is CaptureRequirement.XY_ONLY:
            verdict = run()
            assert verdict.certification is DOWNGRADED, name
            assert "single_fit" in verdict.certification_reason, name
        else:
            # The design refuses a reduced capture to a trial_dynamics reader before it runs.
            with pytest.raises(ConsumerContractViolation, match="is single_fit"):
                run()
    # s27 with the anchor skipped is not refused (it reads nothing): it names both causes.
    without = s27_without_anchor(single)
    assert without.certification is DOWNGRADED
    assert "single_fit" in without.certification_reason
    assert ANCHOR_SKIP in without.certification_reason


# ---------------------------------------------------------------------------- the report


def test_a_report_on_a_single_fit_capture_names_single_fit_not_the_anchor_skip(single, on_single):
    report = build_audit_report("cell", single.manifest, {"s23": on_single["s23"]})
    assert report.certification is DOWNGRADED
    first_line = report.markdown.splitlines()[0]
    assert first_line.startswith("**audit DOWNGRADED** (single_fit capture)")
    assert "anchor" not in report.headline
    assert report.reasons == [SINGLE_FIT_CAPTURE]


def test_a_report_on_a_single_fit_capture_with_the_anchor_skipped_names_both(single, on_single):
    report = build_audit_report("cell", single.manifest, on_single)
    assert report.certification is DOWNGRADED
    assert "single_fit" in report.headline and ANCHOR_SKIP in report.headline
    assert "s40 ran without it" in report.headline
    summary = summarize([report])
    assert summary.counts["DOWNGRADED"] == 1 and summary.complete == 0
    assert "single_fit" in summary.rows[0]["why"] and ANCHOR_SKIP in summary.rows[0]["why"]


def test_a_report_with_the_anchor_skipped_names_the_anchor_skip(full, light):
    report = build_audit_report("cell", full.manifest, light)
    assert report.certification is DOWNGRADED
    assert report.headline.startswith("**audit DOWNGRADED** (anchor skipped), no findings.")
    assert ANCHOR_SKIP in report.headline
    assert "s40 and s27 ran without it" in report.headline
    assert "single_fit" not in report.headline
    assert "NOT complete" in report.headline


def test_a_complete_audit_is_certified_and_says_the_anchor_cross_reference_ran(full, light):
    anchor = run_anchor(full)
    verdicts = {
        **light,
        "s40": judge_s40(full, anchor, TINY_PROBE),
        "s27": run_s27(full, anchor=anchor),
    }
    report = build_audit_report("cell", full.manifest, verdicts)
    assert report.certification is CERTIFIED and report.reasons == []
    assert report.headline.startswith("**audit complete (CERTIFIED)**")
    assert "anchor cross-reference ran" in report.headline
    assert summarize([report]).rows[0]["status"] == "CERTIFIED"


def test_a_report_with_a_missing_input_or_a_stale_verdict_is_inconclusive_and_names_it(full, light):
    gone = inconclusive_s40("cell", PROBLEM, full.manifest)
    stale = light["s23"].model_copy(update={"capture_content_hash": "0" * 32})
    report = build_audit_report("cell", full.manifest, {"s40": gone, "s23": stale, "s22a2": None})
    assert report.certification is INCONCLUSIVE
    assert report.headline.startswith(
        "**audit INCONCLUSIVE_TOOLING** (input missing or unverifiable)"
    )
    assert "an input was missing" in report.headline
    for why in (PROBLEM, "s23 was computed on another capture", "s22a2 did not run"):
        assert why in report.headline
