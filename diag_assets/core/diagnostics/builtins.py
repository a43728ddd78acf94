"""The built-in diagnostics, declared through the plug-in API like any team's diagnostic.

``s22a1`` (the anchor), ``s40`` (the permutation probe), ``s27`` (calibration), ``s22a2``
(trial spread) and ``s23`` (adversarial drift). Their logic lives in the modules of this
package, each guarded by the consumer registry; the classes here declare what an audit
needs to run them and read their results.
"""

from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.capture.replay import CapturedFold
from diag_assets.core.diagnostics.anchor import run_anchor
from diag_assets.core.diagnostics.calibration import (
    CALIBRATION_TASKS,
    CalibrationSettings,
    CalibrationStatus,
    S27Verdict,
    run_s27,
    s27_without_anchor,
)
from diag_assets.core.diagnostics.consumers import CaptureView, requirement_of
from diag_assets.core.diagnostics.drift import DriftLevel, DriftSettings, S23Verdict, run_s23
from diag_assets.core.diagnostics.findings import Finding, FindingCode
from diag_assets.core.diagnostics.plugin import Diagnostic, register
from diag_assets.core.diagnostics.probe import ProbeSettings, judge_s40
from diag_assets.core.diagnostics.spread import (
    S22a2Verdict,
    SpreadSettings,
    SpreadStatus,
    run_s22a2,
)
from diag_assets.core.diagnostics.verdicts import AnchorResult, CrossrefStatus, S40Verdict, Signal
from diag_assets.core.figures.diagnostics import (
    learning_curve,
    permutation_null,
    reliability_diagram,
)
from diag_assets.core.names import LEARNING_CURVE_IMAGE, PERMUTATION_NULL_IMAGE, RELIABILITY_IMAGE


class AnchorSettings(BaseModel):
    """The anchor's fit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_threads: int = Field(default=2, ge=1, le=64, description="LightGBM threads.")


class _BuiltIn(Diagnostic):
    """A built-in: its core function is already guarded, so it is called with the capture."""

    def run(self, view: CaptureView, settings: Any, anchor: AnchorResult | None) -> BaseModel:
        """Unused: built-ins are evaluated on the capture (see :meth:`evaluate`)."""
        raise NotImplementedError(f"{self.name} is evaluated on the captured fold")


class Anchor(_BuiltIn):
    """s22a1: the best trial re-fitted on the captured fold (300 rounds, no early stopping)."""

    name = "s22a1"
    requirement = requirement_of("s22a1")  # as run_anchor registered it
    result_model = AnchorResult
    kinds = frozenset({"lightgbm"})
    reported = False
    settings_model = AnchorSettings
    description = (
        "The best trial re-fitted on the captured fold for a fixed 300 rounds (no early "
        "stopping): best_iter off the full validation curve, curve, elapsed_s of the 300 "
        "rounds and rows. trial_dynamics."
    )

    def evaluate(
        self, captured: CapturedFold, settings: AnchorSettings, anchor: AnchorResult | None
    ) -> AnchorResult:
        """Fit the anchor."""
        return run_anchor(captured, num_threads=settings.num_threads)

    def finding(self, result: BaseModel) -> str:
        """The anchor's best iteration."""
        assert isinstance(result, AnchorResult)
        return f"best_iter={result.best_iter}"

    def figures(self, result: BaseModel) -> Mapping[str, float | int | str | None]:
        """best_iter and best_score."""
        assert isinstance(result, AnchorResult)
        return {"best_iter": result.best_iter, "best_score": result.best_score}

    def pictures(self, result: BaseModel) -> Mapping[str, Figure]:
        """The 300-round validation curve with best_iter marked."""
        assert isinstance(result, AnchorResult)
        return {
            LEARNING_CURVE_IMAGE: learning_curve(
                result.curve, result.best_iter, cell_ref=result.cell_ref
            )
        }


class SignalProbe(_BuiltIn):
    """s40: does X carry signal about y? A permutation probe, cross-referenced with the anchor."""

    name = "s40"
    requirement = requirement_of("s40")  # as run_probe registered it
    reads_anchor = True
    result_model = S40Verdict
    kinds = frozenset({"lightgbm"})
    settings_model = ProbeSettings
    description = (
        "Does X carry signal about y? A permutation probe (xy_only): up to 99 label "
        "permutations, stopping early once the p-value is clearly above alpha "
        "(Besag-Clifford); cross-referenced with the anchor; DOWNGRADED when the anchor was "
        "skipped or the capture is single_fit."
    )

    def evaluate(
        self, captured: CapturedFold, settings: ProbeSettings, anchor: AnchorResult | None
    ) -> S40Verdict:
        """Probe, then cross-reference with the anchor (none: SKIPPED, DOWNGRADED)."""
        return judge_s40(captured, anchor, settings)

    def finding(self, result: BaseModel) -> str:
        """Signal, p-value and the cross-reference."""
        assert isinstance(result, S40Verdict)
        signal = result.signal.value if result.signal else "NOT_RUN"
        p_value = f", p={result.probe.p_value:.3f}" if result.probe else ""
        return f"{signal}{p_value}; crossref {result.s22a1_crossref_status.value}"

    def findings(self, result: BaseModel) -> list[Finding]:
        """NO_SIGNAL when the probe found none; ANCHOR_INCONSISTENT when the anchor disagrees."""
        assert isinstance(result, S40Verdict)
        found = []
        if result.signal is Signal.NO_SIGNAL and result.probe is not None:
            probe = result.probe
            found.append(
                Finding(
                    code=FindingCode.NO_SIGNAL,
                    diagnostic=self.name,
                    detail=f"the probe's {probe.statistic} {probe.observed:.4f} does not beat "
                    f"shuffled labels (p={probe.p_value:.3f} > alpha {probe.alpha:g}).",
                )
            )
        if result.s22a1_crossref_status is CrossrefStatus.INCONSISTENT:
            learns = (result.anchor_best_iter or 0) > 1
            found.append(
                Finding(
                    code=FindingCode.ANCHOR_INCONSISTENT,
                    diagnostic=self.name,
                    detail=f"the anchor {'learns' if learns else 'does not learn'} "
                    f"(best_iter={result.anchor_best_iter}) but the probe says "
                    f"{result.signal.value if result.signal else 'nothing'}.",
                )
            )
        return found

    def figures(self, result: BaseModel) -> Mapping[str, float | int | str | None]:
        """The probe's p-value, what it rests on and the observed statistic."""
        assert isinstance(result, S40Verdict)
        if result.probe is None:
            return {"signal": "NOT_RUN"}
        return {
            "signal": result.signal.value if result.signal else "NOT_RUN",
            "p_value": result.probe.p_value,
            "p_value_resolution": result.probe.p_value_resolution,
            "permutations_run": result.probe.permutations_run,
            "max_permutations": result.probe.max_permutations,
            "exceedances": result.probe.exceedances,
            "stopped_early": result.probe.stopped_early,
            result.probe.statistic: result.probe.observed,
        }

    def pictures(self, result: BaseModel) -> Mapping[str, Figure]:
        """The permutation null with the observed statistic; none without the null's values."""
        assert isinstance(result, S40Verdict)
        probe = result.probe
        if probe is None or not probe.permutation_statistics:
            return {}
        return {
            PERMUTATION_NULL_IMAGE: permutation_null(
                probe.permutation_statistics,
                probe.observed,
                statistic=probe.statistic,
                p_value=probe.p_value,
                cell_ref=result.cell_ref,
            )
        }


class Calibration(_BuiltIn):
    """s27: are the anchor model's validation probabilities calibrated? Binary tasks only."""

    name = "s27"
    requirement = requirement_of("s27")  # as run_s27 registered it
    reads_anchor = True
    result_model = S27Verdict
    kinds = frozenset({"lightgbm"})
    settings_model = CalibrationSettings
    tasks = CALIBRATION_TASKS
    description = (
        "Calibration of the anchor's model on validation (trial_dynamics); DOWNGRADED when "
        "the anchor was skipped or the capture is single_fit. Binary tasks only."
    )

    def evaluate(
        self, captured: CapturedFold, settings: CalibrationSettings, anchor: AnchorResult | None
    ) -> S27Verdict:
        """Judge the anchor's model, or say it went without the anchor."""
        if anchor is None:
            return s27_without_anchor(captured, settings)
        return run_s27(captured, settings, anchor=anchor)

    def findings(self, result: BaseModel) -> list[Finding]:
        """MISCALIBRATED when the anchor model's probabilities are not calibrated."""
        assert isinstance(result, S27Verdict)
        if result.calibration is not CalibrationStatus.MISCALIBRATED or result.figures is None:
            return []
        return [
            Finding(
                code=FindingCode.MISCALIBRATED,
                diagnostic=self.name,
                detail=f"expected calibration error {result.figures.ece:.4f} is above "
                f"{result.settings.ece_threshold:g}.",
            )
        ]

    def figures(self, result: BaseModel) -> Mapping[str, float | int | str | None]:
        """Expected calibration error and Brier score."""
        assert isinstance(result, S27Verdict)
        if result.figures is None:
            return {}
        return {"ece": result.figures.ece, "brier": result.figures.brier}

    def pictures(self, result: BaseModel) -> Mapping[str, Figure]:
        """The reliability diagram of the bins; none without the anchor's model judged."""
        assert isinstance(result, S27Verdict)
        figures = result.figures
        if figures is None:
            return {}
        bins = figures.reliability
        return {
            RELIABILITY_IMAGE: reliability_diagram(
                [b.lower for b in bins],
                [b.upper for b in bins],
                [b.count for b in bins],
                [b.mean_predicted for b in bins],
                [b.observed_frequency for b in bins],
                ece=figures.ece,
                cell_ref=result.cell_ref,
            )
        }


class TrialSpread(_BuiltIn):
    """s22a2: does the best trial stand out from the spread of trials?"""

    name = "s22a2"
    requirement = requirement_of("s22a2")  # as run_s22a2 registered it
    result_model = S22a2Verdict
    settings_model = SpreadSettings
    description = "Does the best trial stand out from the spread of trials? Reads the trial log."

    def evaluate(
        self, captured: CapturedFold, settings: SpreadSettings, anchor: AnchorResult | None
    ) -> S22a2Verdict:
        """Judge the trial log's spread."""
        return run_s22a2(captured, settings)

    def findings(self, result: BaseModel) -> list[Finding]:
        """BEST_TRIAL_NOT_DISTINCT when the best trial is within the spread of the others."""
        assert isinstance(result, S22a2Verdict)
        figures = result.figures
        if result.status is not SpreadStatus.WITHIN_SPREAD or figures is None:
            return []
        return [
            Finding(
                code=FindingCode.BEST_TRIAL_NOT_DISTINCT,
                diagnostic=self.name,
                detail=f"the best trial's robust z {figures.robust_z or 0.0:.2f} is below "
                f"{result.settings.z_threshold:g}: the search did not find a distinct optimum.",
            )
        ]

    def figures(self, result: BaseModel) -> Mapping[str, float | int | str | None]:
        """The best trial's robust z."""
        assert isinstance(result, S22a2Verdict)
        return {"robust_z": None if result.figures is None else result.figures.robust_z}


class AdversarialDrift(_BuiltIn):
    """s23: can a classifier tell the validation rows from the training rows?"""

    name = "s23"
    requirement = requirement_of("s23")  # as run_s23 registered it
    result_model = S23Verdict
    kinds = frozenset({"lightgbm"})
    settings_model = DriftSettings
    description = "Do training and validation rows differ? Adversarial validation on X (xy_only)."

    def evaluate(
        self, captured: CapturedFold, settings: DriftSettings, anchor: AnchorResult | None
    ) -> S23Verdict:
        """Fit the adversarial classifier."""
        return run_s23(captured, settings)

    def findings(self, result: BaseModel) -> list[Finding]:
        """TRAIN_VALIDATION_SHIFT when a classifier tells the two blocks apart (STRONG)."""
        assert isinstance(result, S23Verdict)
        if result.drift is not DriftLevel.STRONG:
            return []
        top = ", ".join(f.feature for f in result.figures.top_features[:3]) or "-"
        return [
            Finding(
                code=FindingCode.TRAIN_VALIDATION_SHIFT,
                diagnostic=self.name,
                detail=f"adversarial AUC {result.figures.auc:.3f} >= "
                f"{result.settings.strong_auc:g}; most separating: {top}.",
            )
        ]

    def figures(self, result: BaseModel) -> Mapping[str, float | int | str | None]:
        """The adversarial AUC."""
        assert isinstance(result, S23Verdict)
        return {"auc": result.figures.auc}


ANCHOR = register(Anchor())
BUILT_IN: tuple[Diagnostic, ...] = (
    ANCHOR,
    register(SignalProbe()),
    register(Calibration()),
    register(TrialSpread()),
    register(AdversarialDrift()),
)
BUILT_IN_NAMES = tuple(d.name for d in BUILT_IN)
