"""The Phase-0 exit report: which features proceed, in what order, and why.

The features are the anchor skip, the capture cache and the capture modes (dataset_only).
The anchor skip comes first when the anchor's cost says so, then the capture cache on HIGH
re-audit reuse, and the capture modes when their correctness gates (the consumer map, trial
invariance and the prep/train seam) pass. The capture cache's drift-rate and size gates are
shown beside them; they set a default and inform, they do not order.
"""

from collections.abc import Mapping

from pydantic import BaseModel, Field

from diag_assets.core.gates.anchor_cost import (
    ANCHOR_COST_LABEL,
    AnchorCostDecision,
    AnchorCostReport,
)
from diag_assets.core.gates.capture_size import CAPTURE_SIZE_LABEL, CaptureSizeReport
from diag_assets.core.gates.consumer_map import CONSUMER_MAP_LABEL, ConsumerMapReport
from diag_assets.core.gates.drift_rate import DRIFT_RATE_LABEL, DriftRateReport
from diag_assets.core.gates.report import FROZEN, Table, fmt_s, gate_markdown, section
from diag_assets.core.gates.reuse import REUSE_LABEL, ReuseDecision, ReuseReport
from diag_assets.core.gates.seam import SEAM_LABEL
from diag_assets.core.gates.trial_invariance import INVARIANCE_LABEL

PHASE0_EXIT = "PHASE0-EXIT"

# The features the report orders. The ids are the values stored in reports and shown in the
# ``lever_order`` metadata, so they keep the plan's spelling.
FEATURE_CAPTURE_CACHE = "lever1"
FEATURE_ANCHOR_SKIP = "lever2"
FEATURE_CAPTURE_MODES = "lever3"
FEATURE_NAMES = {
    FEATURE_CAPTURE_CACHE: "Lever #1 (capture cache)",
    FEATURE_ANCHOR_SKIP: "Lever #2 (optional s22a1 anchor)",
    FEATURE_CAPTURE_MODES: "Lever #3 (dataset_only capture)",
}


class ExitReport(BaseModel):
    """The consolidated Phase-0 report: which features proceed, in what order, and why."""

    model_config = FROZEN

    gate: str = PHASE0_EXIT
    order: list[str] = Field(description="Features to implement, first first ('lever2', ...).")
    blocked: dict[str, str] = Field(
        description="Features a gate stops (too little data, a failed or missing gate): why."
    )
    deferred: dict[str, str] = Field(description="Features a gate judged not worth it now: why.")
    reasons: list[str]
    decisions: dict[str, str] = Field(description="Each gate's decision, by gate name.")
    anchor_cost: AnchorCostReport
    reuse: ReuseReport
    consumer_map: ConsumerMapReport
    invariance_passed: bool | None
    seam_found: bool | None
    drift_rate: DriftRateReport | None = None
    capture_size: CaptureSizeReport | None = None

    def markdown(self, appendix: Mapping[str, str] | None = None) -> str:
        """The consolidated report: order, reasons, every gate's decision, then its section.

        Args:
            appendix: Further sections by title (the history's plots), after the gates'.
        """
        order = " -> ".join(FEATURE_NAMES[lever] for lever in self.order) or "none"
        reports = [
            self.anchor_cost,
            self.reuse,
            self.consumer_map,
            self.drift_rate,
            self.capture_size,
        ]
        return gate_markdown(
            "Phase 0 exit",
            f"Lever order: {order}",
            self.reasons,
            tables=[Table(("gate", "decision"), list(self.decisions.items()))],
            notes={
                title: [f"{FEATURE_NAMES[lever]}: {why}" for lever, why in levers.items()]
                for title, levers in (("Blocked", self.blocked), ("Deferred", self.deferred))
            },
            sections=[
                *(report.markdown() for report in reports if report is not None),
                *(section(title, body) for title, body in (appendix or {}).items()),
            ],
            level=2,
        )

    def to_json(self) -> str:
        """The whole report, every gate's figures included, as indented JSON."""
        return self.model_dump_json(indent=2)


def _invariance_decision(passed: bool | None) -> str:
    """Trial invariance's decision as the exit report shows it."""
    return "NOT_RUN" if passed is None else ("PASSED" if passed else "FAILED")


def _seam_decision(seam: bool | None) -> str:
    """The prep/train seam gate's decision as the exit report shows it."""
    return "NOT_RUN" if seam is None else ("SEAM" if seam else "NO_SEAM")


def _capture_modes_problems(
    consumer_map: ConsumerMapReport, invariance_passed: bool | None, seam_found: bool | None
) -> list[str]:
    """Why the capture modes' correctness gates do not pass; empty when they do."""
    problems = []
    if not consumer_map.figures.xy_only_diagnostics:
        problems.append("G-C0 maps no xy_only consumer, so dataset_only would serve nobody")
    if invariance_passed is None:
        problems.append("G-C4 (trial invariance) has not run")
    elif not invariance_passed:
        problems.append(
            "G-C4 failed: X/y is not proven trial-invariant, so dataset_only is unsound "
            "(STOP: Lever #3 abandoned or re-scoped)"
        )
    if seam_found is None:
        problems.append("G-C4b (prep/train seam) has not run")
    elif not seam_found:
        problems.append(
            "G-C4b found no clean prep/train seam: dataset_only is unreachable; back to design "
            "review (not an automatic single_fit)"
        )
    return problems


def exit_report(
    anchor_cost: AnchorCostReport,
    reuse: ReuseReport,
    consumer_map: ConsumerMapReport,
    invariance_passed: bool | None,
    seam_found: bool | None,
    *,
    drift_rate: DriftRateReport | None = None,
    capture_size: CaptureSizeReport | None = None,
) -> ExitReport:
    """Order the features: which proceed, in what order, and what stops the others.

    The anchor skip comes first when the anchor's cost is GO or GO_LIMITED (DEFER defers it).
    Then re-audit reuse sets the priority: HIGH reuse puts the capture cache next, and the
    capture modes after it only when their correctness gates pass (with high reuse the
    capture modes save little); LOW reuse defers the capture cache and puts the capture modes
    next when their gates pass. The capture modes' gates are the consumer map (at least one
    xy_only consumer), trial invariance passed and a prep/train seam found; a gate that has
    not run (None) or failed blocks them. INSUFFICIENT_DATA in the anchor's cost or in reuse
    blocks that gate's feature. Reuse sets priority only: short of reuse data, the capture
    modes still proceed when their gates pass.

    Args:
        anchor_cost: The anchor's cost report.
        reuse: The re-audit reuse report.
        consumer_map: The consumer map.
        invariance_passed: Whether X/y was proven trial-invariant; None when the gate has
            not run.
        seam_found: Whether a clean prep/train seam was found; None when the gate has not run.
        drift_rate: The capture cache's drift-rate gate, shown beside reuse (it sets a
            default, not the order).
        capture_size: The capture cache's size gate, shown beside reuse (it informs, not
            orders).

    Returns:
        The exit report.
    """
    order: list[str] = []
    blocked: dict[str, str] = {}
    deferred: dict[str, str] = {}
    reasons: list[str] = []

    if anchor_cost.decision is AnchorCostDecision.INSUFFICIENT_DATA:
        blocked[FEATURE_ANCHOR_SKIP] = f"G-B7 has too little data. {anchor_cost.reasons[0]}"
    elif anchor_cost.decision is AnchorCostDecision.DEFER:
        deferred[FEATURE_ANCHOR_SKIP] = f"G-B7 is DEFER. {anchor_cost.reasons[0]}"
    else:
        order.append(FEATURE_ANCHOR_SKIP)
        rollout = (
            "a limited rollout"
            if anchor_cost.decision is AnchorCostDecision.GO_LIMITED
            else "a rollout"
        )
        figures = anchor_cost.figures
        reasons.append(
            f"Lever #2 first: G-B7 is {anchor_cost.decision.value}, so skipping the anchor is "
            f"worth {rollout} (p50 {fmt_s(figures.p50_s)}, p95 {fmt_s(figures.p95_s)})."
        )

    problems = _capture_modes_problems(consumer_map, invariance_passed, seam_found)
    capture_modes_ok = not problems
    unknown_note = (
        f" Its {consumer_map.figures.unknown} unknown consumers stay on full_replay."
        if consumer_map.figures.unknown
        else ""
    )
    capture_modes_gates = (
        f"Lever #3's correctness gates pass (xy_only consumers: "
        f"{', '.join(consumer_map.figures.xy_only_diagnostics)}; G-C4 passed; G-C4b found a seam)."
        f"{unknown_note}"
    )
    reuse_pct = "n/a" if reuse.figures.reuse_pct is None else f"{reuse.figures.reuse_pct:.1f}"

    if reuse.decision is ReuseDecision.INSUFFICIENT_DATA:
        blocked[FEATURE_CAPTURE_CACHE] = f"G-A1 has too little data. {reuse.reasons[0]}"
        if capture_modes_ok:
            order.append(FEATURE_CAPTURE_MODES)
            reasons.append(
                f"{capture_modes_gates} G-A1 only sets priority, so Lever #3 proceeds; its rank "
                "against Lever #1 is open until G-A1 has data."
            )
    elif reuse.decision is ReuseDecision.HIGH:
        order.append(FEATURE_CAPTURE_CACHE)
        reasons.append(
            f"Lever #1 next: G-A1 reuse is HIGH ({reuse_pct}%), and the capture cache removes the "
            "cold capture re-paid on every re-audit."
        )
        if capture_modes_ok:
            order.append(FEATURE_CAPTURE_MODES)
            reasons.append(
                f"{capture_modes_gates} With HIGH reuse Lever #3 is marginal, so it comes after "
                "Lever #1 (the plan's measured order)."
            )
    else:
        demand = (
            " Induced-demand note: the low reuse may be caused by the cost of a cold capture "
            "itself; re-check G-A1 before parking Lever #1."
            if reuse.induced_demand_note
            else ""
        )
        deferred[FEATURE_CAPTURE_CACHE] = (
            f"G-A1 reuse is LOW ({reuse_pct}%): a capture cache has little to serve.{demand}"
        )
        if capture_modes_ok:
            order.append(FEATURE_CAPTURE_MODES)
            reasons.append(
                f"{capture_modes_gates} With LOW reuse Lever #3 leads: it cuts the cold path."
            )
    if not capture_modes_ok:
        blocked[FEATURE_CAPTURE_MODES] = "; ".join(problems) + "."

    decisions = {
        ANCHOR_COST_LABEL: anchor_cost.decision.value,
        REUSE_LABEL: reuse.decision.value,
        CONSUMER_MAP_LABEL: consumer_map.decision.value,
        INVARIANCE_LABEL: _invariance_decision(invariance_passed),
        SEAM_LABEL: _seam_decision(seam_found),
    }
    if drift_rate is not None:
        decisions[DRIFT_RATE_LABEL] = drift_rate.decision.value
        reasons.append(
            f"Lever #1 Gate 2 (drift rate) is {drift_rate.decision.value}: default check_drift "
            f"{drift_rate.recommended_policy or 'undecided'} (D11)."
        )
    if capture_size is not None:
        decisions[CAPTURE_SIZE_LABEL] = capture_size.decision.value
        reasons.append(
            f"Lever #1 Gate 3 (size) is {capture_size.decision.value}. {capture_size.reasons[0]}"
        )
    if not order:
        reasons.append("No lever proceeds yet: see blocked and deferred.")
    return ExitReport(
        order=order,
        blocked=blocked,
        deferred=deferred,
        reasons=reasons,
        decisions=decisions,
        anchor_cost=anchor_cost,
        reuse=reuse,
        consumer_map=consumer_map,
        invariance_passed=invariance_passed,
        seam_found=seam_found,
        drift_rate=drift_rate,
        capture_size=capture_size,
    )
