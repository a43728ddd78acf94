"""The prep/train seam: is X/y final before the first ``lightgbm.train``?"""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from diag_assets.core.capture.trace import EventKind, ReplayTrace, TraceEvent
from diag_assets.core.gates.report import GateReport
from diag_assets.core.gates.trial_invariance import (
    column_list,
    first_divergence,
    position_list,
    short_digest,
)

SEAM_LABEL = "prep/train seam gate"
NO_SEAM = "no seam: back to design review, not an automatic single_fit"


class SeamDecision(StrEnum):
    """The outcome; never single_fit, which is a design decision, not a fallback."""

    SEAM = "SEAM"
    DESIGN_REVIEW_REQUIRED = "DESIGN_REVIEW_REQUIRED"


class SeamRule(StrEnum):
    """What a clean prep/train seam requires of a trace."""

    PREP_ONCE = "prep_once"
    TRAIN_OBSERVED = "train_observed"
    PREP_BEFORE_TRAIN = "prep_before_train"
    XY_FINAL = "xy_final"
    DATASETS_FROM_PREP = "datasets_from_prep"
    DATASETS_TRIAL_INVARIANT = "datasets_trial_invariant"


SEAM_RULE_TEXT: dict[SeamRule, str] = {
    SeamRule.PREP_ONCE: "prep runs exactly once",
    SeamRule.TRAIN_OBSERVED: "at least one lightgbm.train call is observed",
    SeamRule.PREP_BEFORE_TRAIN: "prep returns before the first Dataset and lightgbm.train call",
    SeamRule.XY_FINAL: "the X/y hash is final when prep returns",
    SeamRule.DATASETS_FROM_PREP: "every Dataset is built from the prep output",
    SeamRule.DATASETS_TRIAL_INVARIANT: "the Datasets' data does not change across trials",
}


class SeamFigures(BaseModel):
    """The numbers behind the seam; positions are 0-based indexes into the trace's events."""

    model_config = ConfigDict(frozen=True)

    prep_calls: int
    prep_position: int | None
    first_dataset_position: int | None
    first_train_position: int | None
    datasets_built: int
    train_calls: int
    distinct_dataset_hashes: int


class SeamReport(GateReport[SeamDecision, SeamFigures]):
    """The prep/train seam of one replay."""

    gate: str = SEAM_LABEL
    cell_ref: str
    recipe: str
    failed_rules: list[SeamRule]

    def heading(self) -> str:
        """The report's title: the gate, the replayed cell and its recipe."""
        return f"{self.gate}, {self.cell_ref} ({self.recipe})"


def _untraceable_dataset(trace: ReplayTrace, forms: set[str]) -> tuple[int, TraceEvent, str] | None:
    """The first Dataset or train call whose data or label is not a form of the prep output."""
    for position, event in enumerate(trace.events):
        if event.kind is EventKind.DATASET_BUILT:
            for what, digest in (("data", event.data), ("label", event.label)):
                if digest is None or digest not in forms:
                    return position, event, what
        elif event.kind is EventKind.TRAIN_CALLED and event.data not in (None, *forms):
            return position, event, "data"
    return None


def _trial_signatures(trace: ReplayTrace) -> dict[int, frozenset[tuple[str, str, str]]]:
    """Per trial, the (kind, data, label) digests of the Datasets built and fits run in it."""
    signatures: dict[int, set[tuple[str, str, str]]] = {}
    for event in trace.events:
        if event.trial is None or event.kind not in (
            EventKind.DATASET_BUILT,
            EventKind.TRAIN_CALLED,
        ):
            continue
        if event.kind is EventKind.TRAIN_CALLED and event.data is None:
            continue
        signatures.setdefault(event.trial, set()).add(
            (event.kind.value, event.data or "", event.label or "")
        )
    return {trial: frozenset(signature) for trial, signature in signatures.items()}


def seam_gate(trace: ReplayTrace) -> SeamReport:
    """Is X/y fully materialized, its hash final, before the first ``lightgbm.train``?

    A seam requires: prep ran exactly once; at least one ``lightgbm.train`` call was seen;
    prep returned before the first Dataset was built and before the first train call; every
    trial received X/y equal to the prep output; every Dataset's data and label (and every
    training set's raw data still held at ``train`` time) is a form of the prep output; and
    the Datasets each trial builds are the same in every trial.

    The decision is SEAM (``dataset_only`` is reachable) or DESIGN_REVIEW_REQUIRED. It never
    selects ``single_fit``: without a seam the recipe goes back to design review, because a
    single fit can still trigger training side effects; it is not an automatic fallback.

    Args:
        trace: One instrumented replay.

    Returns:
        The seam report.
    """
    events = trace.events
    prep_positions = trace.positions(EventKind.PREP_CALLED)
    dataset_positions = trace.positions(EventKind.DATASET_BUILT)
    train_positions = trace.positions(EventKind.TRAIN_CALLED)
    prep = events[prep_positions[0]] if prep_positions else None
    figures = SeamFigures(
        prep_calls=len(prep_positions),
        prep_position=prep_positions[0] if prep_positions else None,
        first_dataset_position=dataset_positions[0] if dataset_positions else None,
        first_train_position=train_positions[0] if train_positions else None,
        datasets_built=len(dataset_positions),
        train_calls=len(train_positions),
        distinct_dataset_hashes=len({events[p].data for p in dataset_positions}),
    )
    failed: list[SeamRule] = []
    findings: list[str] = []

    def fail(rule: SeamRule, detail: str) -> None:
        failed.append(rule)
        findings.append(f"{detail}; the rule '{SEAM_RULE_TEXT[rule]}' failed.")

    if len(prep_positions) != 1:
        fail(SeamRule.PREP_ONCE, f"Prep ran {len(prep_positions)} times")
    if not train_positions:
        fail(
            SeamRule.TRAIN_OBSERVED,
            "No lightgbm.train call was observed, so the training cannot be located",
        )
    first_use = min(dataset_positions[:1] + train_positions[:1], default=None)
    late = [p for p in prep_positions if first_use is not None and p > first_use]
    if not prep_positions or late:
        detail = (
            "Prep never ran"
            if not prep_positions
            else f"Prep ran at trace position(s) {position_list(late)}, after the first Dataset "
            f"(position {figures.first_dataset_position}) or lightgbm.train call (position "
            f"{figures.first_train_position})"
        )
        fail(SeamRule.PREP_BEFORE_TRAIN, detail)
    if prep is not None and prep.xy is not None:
        divergence = first_divergence(
            prep.xy, trace.of_kind(EventKind.TRIAL_STARTED), "the prep output"
        )
        if divergence is not None:
            fail(
                SeamRule.XY_FINAL,
                f"Trial {divergence.trial} received X/y that differ from the prep output in "
                f"{column_list(divergence.columns)}",
            )
    untraceable = _untraceable_dataset(trace, set(prep.forms.values()) if prep else set())
    if untraceable is not None:
        position, event, what = untraceable
        digest = event.data if what == "data" else event.label
        name = "Dataset" if event.kind is EventKind.DATASET_BUILT else "lightgbm.train call"
        fail(
            SeamRule.DATASETS_FROM_PREP,
            f"The {name} at trace position {position} (trial {event.trial}) got {what} "
            f"{short_digest(digest)}, which is none of the prep output's forms (X, its train or "
            "validation rows, the FoldData.split() arrays, the label column)",
        )
    signatures = _trial_signatures(trace)
    if signatures:
        first_trial = min(signatures)
        changed = [t for t in sorted(signatures) if signatures[t] != signatures[first_trial]]
        if changed:
            fail(
                SeamRule.DATASETS_TRIAL_INVARIANT,
                f"Trial {changed[0]} built its Datasets from data other than trial "
                f"{first_trial}'s ({figures.distinct_dataset_hashes} distinct Dataset data "
                f"hashes over {figures.datasets_built} Datasets)",
            )

    if not failed:
        reasons = [
            f"Prep ran once and returned at trace position {figures.prep_position}, before the "
            f"first Dataset (position {figures.first_dataset_position}) and the first "
            f"lightgbm.train call (position {figures.first_train_position}).",
            f"All {figures.datasets_built} Datasets of the {figures.train_calls} fits were "
            f"built from the prep output ({figures.distinct_dataset_hashes} distinct data "
            "hashes), the same in every trial, and every trial's X/y hash equals the prep "
            "output's.",
            "dataset_only is reachable: X/y can be captured at the seam without training; "
            "whether it is sound is the trial invariance gate's decision.",
        ]
        decision = SeamDecision.SEAM
    else:
        reasons = [
            *findings,
            f"{NO_SEAM} (a single fit can still trigger training side effects, so it is a "
            "design decision, never a fallback).",
        ]
        decision = SeamDecision.DESIGN_REVIEW_REQUIRED
    return SeamReport(
        cell_ref=trace.cell_ref,
        recipe=trace.recipe,
        decision=decision,
        reasons=reasons,
        figures=figures,
        failed_rules=failed,
    )
