"""The exit order: which features proceed, in what order, and why.

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

EXIT_ORDER_LABEL = "exit order"

# The features the report orders: the ids stored in the report and shown in the
# ``feature_order`` metadata, and the names its Markdown shows.
FEATURE_CAPTURE_CACHE = "capture_cache"
FEATURE_ANCHOR_SKIP = "anchor_skip"
FEATURE_CAPTURE_MODES = "capture_modes"
FEATURE_NAMES = {
    FEATURE_CAPTURE_CACHE: "capture cache",
    FEATURE_ANCHOR_SKIP: "anchor skip (optional s22a1 anchor)",
    FEATURE_CAPTURE_MODES: "capture modes (dataset_only capture)",
}


class ExitReport(BaseModel):
    """The consolidated report of the gates: which features proceed, in what order, and why."""

    model_config = FROZEN

    gate: str = EXIT_ORDER_LABEL
    order: list[str] = Field(description="Features to implement, first first ('anchor_skip', ...).")
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
        order = " -> ".join(FEATURE_NAMES[feature] for feature in self.order) or "none"
        reports = [
            self.anchor_cost,
            self.reuse,
            self.consumer_map,
            self.drift_rate,
            self.capture_size,
        ]
        return gate_markdown(
            "Exit order",
            f"Feature order: {order}",
            self.reasons,
            tables=[Table(("gate", "decision"), list(self.decisions.items()))],
            notes={
                title: [f"{FEATURE_NAMES[feature]}: {why}" for feature, why in features.items()]
                for title, features in (("Blocked", self.blocked), ("Deferred", self.deferred))
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
        problems.append(
            "The consumer map has no xy_only consumer: dataset_only would serve nobody."
        )
    if invariance_passed is None:
        problems.append("The trial invariance gate has not run.")
    elif not invariance_passed:
        problems.append(
            "The trial invariance gate failed: X/y is not proven trial-invariant, so "
            "dataset_only is unsound (STOP: the capture modes are abandoned or re-scoped)."
        )
    if seam_found is None:
        problems.append("The prep/train seam gate has not run.")
    elif not seam_found:
        problems.append(
            "The prep/train seam gate found no clean seam: dataset_only is unreachable; back "
            "to design review (not an automatic single_fit)."
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
        blocked[FEATURE_ANCHOR_SKIP] = (
            f"The anchor cost gate has too little data. {anchor_cost.reasons[0]}"
        )
    elif anchor_cost.decision is AnchorCostDecision.DEFER:
        deferred[FEATURE_ANCHOR_SKIP] = f"The anchor cost gate is DEFER. {anchor_cost.reasons[0]}"
    else:
        order.append(FEATURE_ANCHOR_SKIP)
        rollout = (
            "a limited rollout"
            if anchor_cost.decision is AnchorCostDecision.GO_LIMITED
            else "a rollout"
        )
        figures = anchor_cost.figures
        reasons.append(
            f"Anchor skip first: the anchor cost gate is {anchor_cost.decision.value}, so "
            f"skipping the anchor is worth {rollout} (p50 {fmt_s(figures.p50_s)}, p95 "
            f"{fmt_s(figures.p95_s)})."
        )

    problems = _capture_modes_problems(consumer_map, invariance_passed, seam_found)
    capture_modes_ok = not problems
    unknown_note = (
        f" Its {consumer_map.figures.unknown} unknown consumers stay on full_replay."
        if consumer_map.figures.unknown
        else ""
    )
    capture_modes_gates = (
        "The capture modes' correctness gates pass (xy_only consumers: "
        f"{', '.join(consumer_map.figures.xy_only_diagnostics)}; trial invariance passed; the "
        "prep/train seam gate found a seam)."
        f"{unknown_note}"
    )
    reuse_pct = "n/a" if reuse.figures.reuse_pct is None else f"{reuse.figures.reuse_pct:.1f}"

    if reuse.decision is ReuseDecision.INSUFFICIENT_DATA:
        blocked[FEATURE_CAPTURE_CACHE] = (
            f"The re-audit reuse gate has too little data. {reuse.reasons[0]}"
        )
        if capture_modes_ok:
            order.append(FEATURE_CAPTURE_MODES)
            reasons.append(
                f"{capture_modes_gates} Re-audit reuse only sets priority, so the capture modes "
                "proceed; their rank against the capture cache is open until the reuse gate "
                "has data."
            )
    elif reuse.decision is ReuseDecision.HIGH:
        order.append(FEATURE_CAPTURE_CACHE)
        reasons.append(
            f"Capture cache next: re-audit reuse is HIGH ({reuse_pct}%), and the capture cache "
            "removes the cold capture re-paid on every re-audit."
        )
        if capture_modes_ok:
            order.append(FEATURE_CAPTURE_MODES)
            reasons.append(
                f"{capture_modes_gates} With HIGH reuse the capture modes save little, so they "
                "come after the capture cache (the plan's measured order)."
            )
    else:
        demand = (
            " Induced-demand note: the low reuse may be caused by the cost of a cold capture "
            "itself; re-check re-audit reuse before parking the capture cache."
            if reuse.induced_demand_note
            else ""
        )
        deferred[FEATURE_CAPTURE_CACHE] = (
            f"Re-audit reuse is LOW ({reuse_pct}%): a capture cache has little to serve.{demand}"
        )
        if capture_modes_ok:
            order.append(FEATURE_CAPTURE_MODES)
            reasons.append(
                f"{capture_modes_gates} With LOW reuse the capture modes lead: they cut the "
                "cold path."
            )
    if not capture_modes_ok:
        blocked[FEATURE_CAPTURE_MODES] = " ".join(problems)

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
            f"The drift-rate gate is {drift_rate.decision.value}: the drift policy (default "
            f"check_drift) is {drift_rate.recommended_policy or 'undecided'}."
        )
    if capture_size is not None:
        decisions[CAPTURE_SIZE_LABEL] = capture_size.decision.value
        reasons.append(
            f"The capture size gate is {capture_size.decision.value}. {capture_size.reasons[0]}"
        )
    if not order:
        reasons.append("No feature proceeds yet: see blocked and deferred.")
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
