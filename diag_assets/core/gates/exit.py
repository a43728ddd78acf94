"""The Phase-0 exit report: which features proceed, in what order, and why.

The anchor skip comes first when the anchor's cost says so, then the capture cache on HIGH
reuse, and the capture modes when their correctness gates (the consumer map, trial
invariance and the prep/train seam) pass.
"""

from collections.abc import Mapping

from pydantic import BaseModel, Field

from diag_assets.core.gates.anchor_cost import GATE_B7, B7Decision, B7Report
from diag_assets.core.gates.capture_size import GATE_SIZE, SizeReport
from diag_assets.core.gates.consumer_map import GATE_C0, C0Report
from diag_assets.core.gates.drift_rate import GATE_DRIFT, DriftRateReport
from diag_assets.core.gates.report import FROZEN, Table, fmt_s, gate_markdown, section
from diag_assets.core.gates.reuse import GATE_A1, A1Decision, A1Report
from diag_assets.core.gates.seam import GATE_C4B
from diag_assets.core.gates.trial_invariance import GATE_C4

PHASE0_EXIT = "PHASE0-EXIT"

LEVER_CAPTURE_CACHE = "lever1"
LEVER_SKIP_ANCHOR = "lever2"
LEVER_CAPTURE_MODES = "lever3"
LEVER_NAMES = {
    LEVER_CAPTURE_CACHE: "Lever #1 (capture cache)",
    LEVER_SKIP_ANCHOR: "Lever #2 (optional s22a1 anchor)",
    LEVER_CAPTURE_MODES: "Lever #3 (dataset_only capture)",
}


class ExitReport(BaseModel):
    """The consolidated Phase-0 report: which levers proceed, in what order, and why."""

    model_config = FROZEN

    gate: str = PHASE0_EXIT
    order: list[str] = Field(description="Levers to implement, first first ('lever2', ...).")
    blocked: dict[str, str] = Field(
        description="Levers a gate stops (too little data, a failed or missing gate): why."
    )
    deferred: dict[str, str] = Field(description="Levers a gate judged not worth it now: why.")
    reasons: list[str]
    decisions: dict[str, str] = Field(description="Each gate's decision, by gate name.")
    b7: B7Report
    a1: A1Report
    c0: C0Report
    c4_passed: bool | None
    c4b_seam: bool | None
    drift: DriftRateReport | None = None
    size: SizeReport | None = None

    def markdown(self, appendix: Mapping[str, str] | None = None) -> str:
        """The consolidated report: order, reasons, every gate's decision, then its section.

        Args:
            appendix: Further sections by title (the history's plots), after the gates'.
        """
        order = " -> ".join(LEVER_NAMES[lever] for lever in self.order) or "none"
        reports = [self.b7, self.a1, self.c0, self.drift, self.size]
        return gate_markdown(
            "Phase 0 exit",
            f"Lever order: {order}",
            self.reasons,
            tables=[Table(("gate", "decision"), list(self.decisions.items()))],
            notes={
                title: [f"{LEVER_NAMES[lever]}: {why}" for lever, why in levers.items()]
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


def _c4_decision(passed: bool | None) -> str:
    return "NOT_RUN" if passed is None else ("PASSED" if passed else "FAILED")


def _c4b_decision(seam: bool | None) -> str:
    return "NOT_RUN" if seam is None else ("SEAM" if seam else "NO_SEAM")


def _lever3_problems(c0: C0Report, c4_passed: bool | None, c4b_seam: bool | None) -> list[str]:
    """Why Lever #3's correctness gates do not pass; empty when they do."""
    problems = []
    if not c0.figures.xy_only_diagnostics:
        problems.append("G-C0 maps no xy_only consumer, so dataset_only would serve nobody")
    if c4_passed is None:
        problems.append("G-C4 (trial invariance) has not run")
    elif not c4_passed:
        problems.append(
            "G-C4 failed: X/y is not proven trial-invariant, so dataset_only is unsound "
            "(STOP: Lever #3 abandoned or re-scoped)"
        )
    if c4b_seam is None:
        problems.append("G-C4b (prep/train seam) has not run")
    elif not c4b_seam:
        problems.append(
            "G-C4b found no clean prep/train seam: dataset_only is unreachable; back to design "
            "review (not an automatic single_fit)"
        )
    return problems


def exit_report(
    b7: B7Report,
    a1: A1Report,
    c0: C0Report,
    c4_passed: bool | None,
    c4b_seam: bool | None,
    *,
    drift: DriftRateReport | None = None,
    size: SizeReport | None = None,
) -> ExitReport:
    """Order the levers by the plan's round-12 selection logic.

    Lever #2 comes first when G-B7 is GO or GO_LIMITED (DEFER defers it). Then G-A1 sets the
    priority: HIGH reuse puts Lever #1 next, and Lever #3 after it only when its correctness
    gates pass (the plan's measured order; with high reuse #3 is marginal, §C6); LOW reuse
    defers Lever #1 and puts Lever #3 next when its gates pass. Lever #3's gates are G-C0 (at
    least one xy_only consumer), G-C4 passed and G-C4b found a seam; a gate that has not run
    (None) or failed blocks it. INSUFFICIENT_DATA in G-B7 or G-A1 blocks that gate's lever.
    G-A1 sets priority only: with G-A1 short of data, Lever #3 still proceeds when its gates
    pass.

    Args:
        b7: The G-B7 report.
        a1: The G-A1 report.
        c0: The G-C0 report.
        c4_passed: Whether G-C4 proved X/y trial-invariant; None when it has not run.
        c4b_seam: Whether G-C4b found a clean prep/train seam; None when it has not run.
        drift: Lever #1's Gate 2, shown beside G-A1 (it sets a default, not the order).
        size: Lever #1's Gate 3, shown beside G-A1 (it informs, not orders).

    Returns:
        The exit report.
    """
    order: list[str] = []
    blocked: dict[str, str] = {}
    deferred: dict[str, str] = {}
    reasons: list[str] = []

    if b7.decision is B7Decision.INSUFFICIENT_DATA:
        blocked[LEVER_SKIP_ANCHOR] = f"G-B7 has too little data. {b7.reasons[0]}"
    elif b7.decision is B7Decision.DEFER:
        deferred[LEVER_SKIP_ANCHOR] = f"G-B7 is DEFER. {b7.reasons[0]}"
    else:
        order.append(LEVER_SKIP_ANCHOR)
        rollout = "a limited rollout" if b7.decision is B7Decision.GO_LIMITED else "a rollout"
        reasons.append(
            f"Lever #2 first: G-B7 is {b7.decision.value}, so skipping the anchor is worth "
            f"{rollout} (p50 {fmt_s(b7.figures.p50_s)}, p95 {fmt_s(b7.figures.p95_s)})."
        )

    problems = _lever3_problems(c0, c4_passed, c4b_seam)
    lever3_ok = not problems
    unknown_note = (
        f" Its {c0.figures.unknown} unknown consumers stay on full_replay."
        if c0.figures.unknown
        else ""
    )
    lever3_gates = (
        f"Lever #3's correctness gates pass (xy_only consumers: "
        f"{', '.join(c0.figures.xy_only_diagnostics)}; G-C4 passed; G-C4b found a seam)."
        f"{unknown_note}"
    )
    reuse = "n/a" if a1.figures.reuse_pct is None else f"{a1.figures.reuse_pct:.1f}"

    if a1.decision is A1Decision.INSUFFICIENT_DATA:
        blocked[LEVER_CAPTURE_CACHE] = f"G-A1 has too little data. {a1.reasons[0]}"
        if lever3_ok:
            order.append(LEVER_CAPTURE_MODES)
            reasons.append(
                f"{lever3_gates} G-A1 only sets priority, so Lever #3 proceeds; its rank "
                "against Lever #1 is open until G-A1 has data."
            )
    elif a1.decision is A1Decision.HIGH:
        order.append(LEVER_CAPTURE_CACHE)
        reasons.append(
            f"Lever #1 next: G-A1 reuse is HIGH ({reuse}%), and the capture cache removes the "
            "cold capture re-paid on every re-audit."
        )
        if lever3_ok:
            order.append(LEVER_CAPTURE_MODES)
            reasons.append(
                f"{lever3_gates} With HIGH reuse Lever #3 is marginal, so it comes after "
                "Lever #1 (the plan's measured order)."
            )
    else:
        demand = (
            " Induced-demand note: the low reuse may be caused by the cost of a cold capture "
            "itself; re-check G-A1 before parking Lever #1."
            if a1.induced_demand_note
            else ""
        )
        deferred[LEVER_CAPTURE_CACHE] = (
            f"G-A1 reuse is LOW ({reuse}%): a capture cache has little to serve.{demand}"
        )
        if lever3_ok:
            order.append(LEVER_CAPTURE_MODES)
            reasons.append(f"{lever3_gates} With LOW reuse Lever #3 leads: it cuts the cold path.")
    if not lever3_ok:
        blocked[LEVER_CAPTURE_MODES] = "; ".join(problems) + "."

    decisions = {
        GATE_B7: b7.decision.value,
        GATE_A1: a1.decision.value,
        GATE_C0: c0.decision.value,
        GATE_C4: _c4_decision(c4_passed),
        GATE_C4B: _c4b_decision(c4b_seam),
    }
    if drift is not None:
        decisions[GATE_DRIFT] = drift.decision.value
        reasons.append(
            f"Lever #1 Gate 2 (drift rate) is {drift.decision.value}: default check_drift "
            f"{drift.recommended_policy or 'undecided'} (D11)."
        )
    if size is not None:
        decisions[GATE_SIZE] = size.decision.value
        reasons.append(f"Lever #1 Gate 3 (size) is {size.decision.value}. {size.reasons[0]}")
    if not order:
        reasons.append("No lever proceeds yet: see blocked and deferred.")
    return ExitReport(
        order=order,
        blocked=blocked,
        deferred=deferred,
        reasons=reasons,
        decisions=decisions,
        b7=b7,
        a1=a1,
        c0=c0,
        c4_passed=c4_passed,
        c4b_seam=c4b_seam,
        drift=drift,
        size=size,
    )
