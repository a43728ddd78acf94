"""G-C4 and G-C4b: is a recipe's X/y trial-invariant, and is there a prep/train seam?

Both gates judge :class:`~diag_assets.core.capture.trace.ReplayTrace` objects: the trace a
full_replay capture stored (the shared fixture set, read through the capture cache), or one
recorded by :func:`instrumented_replay`, which replays a cell like
:func:`diag_assets.core.capture.replay.replay_cell` but writes nothing. See
:mod:`diag_assets.core.capture.trace` for the events and how they are recorded.
"""

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.capture.replay import PreparedCell
from diag_assets.core.capture.trace import (
    OPAQUE_PREFIX,
    EventKind,
    ReplayTrace,
    TableDigest,
    TraceEvent,
    XYDigest,
    data_digest,
    prep_forms,
    tracing,
)
from diag_assets.core.recipe.protocol import Recipe

__all__ = [
    "OPAQUE_PREFIX",
    "EventKind",
    "ReplayTrace",
    "TableDigest",
    "TraceEvent",
    "XYDigest",
    "data_digest",
    "prep_forms",
    "tracing",
]

GATE_C4 = "G-C4"
GATE_C4B = "G-C4b"
NO_SEAM = "no seam: back to design review, not an automatic single_fit"
_SHOWN_COLUMNS = 8
_SHOWN_DIGEST = 16


def instrumented_replay(prepared: PreparedCell, recipe: Recipe) -> ReplayTrace:
    """Replay a cell like ``replay_cell`` (prep, then the trial loop), recording a trace.

    Nothing is written and no X/y is kept: the trace holds hashes only.

    Args:
        prepared: The cell, from :func:`~diag_assets.core.capture.replay.prepare_cell`.
        recipe: The recipe to replay; its ``prep`` is patched on the instance meanwhile.

    Returns:
        The ordered events of the replay.

    Raises:
        DiagInputError: The recipe's ``prep`` cannot be replaced on the instance.
    """
    with tracing(recipe) as tracer:
        data = recipe.prep(prepared.window, prepared.fold)
        trial_log = recipe.run_trials(data, prepared.config.trials, tracer.trial_started)
    return tracer.trace(
        cell_ref=str(prepared.cell),
        recipe_version=prepared.recipe_version,
        trials_requested=prepared.config.trials.n_trials,
        trial_log=trial_log,
    )


# --- report helpers -------------------------------------------------------------------------


def _names(columns: Sequence[str]) -> str:
    shown = ", ".join(columns[:_SHOWN_COLUMNS])
    hidden = len(columns) - _SHOWN_COLUMNS
    return f"{shown} and {hidden} more" if hidden > 0 else shown


def _short(digest: str | None) -> str:
    return "-" if digest is None else digest[:_SHOWN_DIGEST]


def _positions(positions: Sequence[int]) -> str:
    return ", ".join(str(position) for position in positions)


def gate_markdown(
    title: str, decision: str, reasons: Sequence[str], figures: Sequence[tuple[str, str]]
) -> list[str]:
    """A gate's Markdown head: title and decision, one bullet per reason, a figures table."""
    lines = [f"## {title}: **{decision}**", ""]
    lines.extend(f"- {reason}" for reason in reasons)
    lines.extend(["", "| figure | value |", "|---|---|"])
    lines.extend(f"| {name} | {value} |" for name, value in figures)
    return lines


# --- G-C4 -----------------------------------------------------------------------------------


class C4Decision(StrEnum):
    """G-C4's outcome: X/y is trial-invariant on every fold, or it is not."""

    PASS = "PASS"
    STOP = "STOP"


class StructuralRule(StrEnum):
    """G-C4 (a): the structural rules a fold's trace must satisfy."""

    PREP_ONCE = "prep_once"
    PREP_BEFORE_TRIALS = "prep_before_trials"
    TRIALS_RECEIVE_PREP_OUTPUT = "trials_receive_prep_output"
    EVERY_TRIAL_OBSERVED = "every_trial_observed"


RULE_TEXT: dict[StructuralRule, str] = {
    StructuralRule.PREP_ONCE: "prep runs exactly once",
    StructuralRule.PREP_BEFORE_TRIALS: "prep returns before the first trial starts",
    StructuralRule.TRIALS_RECEIVE_PREP_OUTPUT: "every trial receives the prep output's X/y",
    StructuralRule.EVERY_TRIAL_OBSERVED: "the trial observer sees every requested trial",
}


class Divergence(BaseModel):
    """A trial whose X/y differs from a baseline, and what differs."""

    model_config = ConfigDict(frozen=True)

    trial: int
    baseline: str = Field(description="'trial 0' or 'the prep output'.")
    columns: list[str] = Field(description="X's diverging columns, then 'y' and 'n_train'.")


class FoldInvariance(BaseModel):
    """G-C4 on one fold."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    recipe: str
    prep_calls: int
    trials: int
    trials_requested: int
    x_digest: str | None = Field(description="Canonical digest of the prep output's X.")
    y_digest: str | None = Field(description="Canonical digest of the prep output's y.")
    failed_rules: list[StructuralRule]
    findings: list[str] = Field(description="One sentence per failed rule or divergence.")
    prep_divergence: Divergence | None = Field(
        description="The first trial whose X/y differs from the prep output."
    )
    trial_divergence: Divergence | None = Field(
        description="The first trial whose X/y differs from trial 0's."
    )
    structural_ok: bool
    empirical_ok: bool

    @property
    def passed(self) -> bool:
        """Both checks passed."""
        return self.structural_ok and self.empirical_ok


class StopPoint(BaseModel):
    """Where G-C4 stopped: the first failing fold, its diverging trial and columns."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    trial: int | None
    columns: list[str]
    failed_rules: list[StructuralRule]


class C4Figures(BaseModel):
    """The numbers behind G-C4."""

    model_config = ConfigDict(frozen=True)

    folds: int
    trials_per_fold: dict[str, int]
    prep_calls_per_fold: dict[str, int]


class C4Report(BaseModel):
    """G-C4, trial invariance over K folds."""

    model_config = ConfigDict(frozen=True)

    gate: str = GATE_C4
    decision: C4Decision
    reasons: list[str]
    figures: C4Figures
    folds: list[FoldInvariance]
    stop: StopPoint | None

    def markdown(self) -> str:
        """The report as Markdown: decision, reasons, figures and one row per fold."""
        prep_calls = self.figures.prep_calls_per_fold
        figures = [
            ("folds", str(self.figures.folds)),
            *(
                (f"trials / prep calls, {cell}", f"{trials} / {prep_calls[cell]}")
                for cell, trials in self.figures.trials_per_fold.items()
            ),
        ]
        lines = gate_markdown(f"{self.gate} trial invariance", self.decision, self.reasons, figures)
        lines.extend(
            [
                "",
                "| fold | prep calls | trials | structural | empirical | first divergence |",
                "|---|---|---|---|---|---|",
            ]
        )
        for fold in self.folds:
            divergence = fold.trial_divergence or fold.prep_divergence
            where = (
                "-"
                if divergence is None
                else f"trial {divergence.trial}: {_names(divergence.columns)}"
            )
            structural = "ok" if fold.structural_ok else ", ".join(fold.failed_rules)
            lines.append(
                f"| {fold.cell_ref} | {fold.prep_calls} | {fold.trials}/{fold.trials_requested} "
                f"| {structural} | {'ok' if fold.empirical_ok else 'diverges'} | {where} |"
            )
        return "\n".join(lines) + "\n"


def _first_divergence(
    baseline: XYDigest, events: Sequence[TraceEvent], label: str
) -> Divergence | None:
    for event in events:
        if event.xy is None or event.trial is None:
            continue
        columns = baseline.diverging(event.xy)
        if columns:
            return Divergence(trial=event.trial, baseline=label, columns=columns)
    return None


def check_fold(cell_ref: str, trace: ReplayTrace) -> FoldInvariance:
    """G-C4's two checks on one fold's trace.

    Args:
        cell_ref: The fold's cell.
        trace: Its instrumented replay.

    Returns:
        Which structural rules failed and the first diverging trial, if any.
    """
    prep_positions = trace.positions(EventKind.PREP_CALLED)
    trial_positions = trace.positions(EventKind.TRIAL_STARTED)
    trials = [trace.events[position] for position in trial_positions]
    prep = trace.events[prep_positions[0]] if prep_positions else None
    failed: list[StructuralRule] = []
    findings: list[str] = []

    if len(prep_positions) != 1:
        failed.append(StructuralRule.PREP_ONCE)
        findings.append(
            f"{cell_ref}: prep ran {len(prep_positions)} times; the rule "
            f"'{RULE_TEXT[StructuralRule.PREP_ONCE]}' failed."
        )
    first_trial = trial_positions[0] if trial_positions else None
    late = [p for p in prep_positions if first_trial is not None and p > first_trial]
    if not prep_positions or late:
        failed.append(StructuralRule.PREP_BEFORE_TRIALS)
        detail = (
            "prep never ran"
            if not prep_positions
            else f"prep ran at trace position(s) {_positions(late)}, after trial "
            f"{trials[0].trial} started at position {first_trial}"
        )
        findings.append(
            f"{cell_ref}: {detail}; the rule "
            f"'{RULE_TEXT[StructuralRule.PREP_BEFORE_TRIALS]}' failed."
        )
    if not trials or len(trials) != trace.trials_requested:
        failed.append(StructuralRule.EVERY_TRIAL_OBSERVED)
        findings.append(
            f"{cell_ref}: the trial observer saw {len(trials)} of the {trace.trials_requested} "
            f"requested trials; the rule '{RULE_TEXT[StructuralRule.EVERY_TRIAL_OBSERVED]}' "
            "failed, so the unseen trials' X/y are unproven."
        )
    prep_divergence = None
    if prep is not None and prep.xy is not None:
        prep_divergence = _first_divergence(prep.xy, trials, "the prep output")
        if prep_divergence is not None:
            failed.append(StructuralRule.TRIALS_RECEIVE_PREP_OUTPUT)
            findings.append(
                f"{cell_ref}: trial {prep_divergence.trial} received X/y that differ from the "
                f"prep output in {_names(prep_divergence.columns)}; the rule "
                f"'{RULE_TEXT[StructuralRule.TRIALS_RECEIVE_PREP_OUTPUT]}' failed."
            )
    trial_divergence = None
    if trials and trials[0].xy is not None:
        trial_divergence = _first_divergence(trials[0].xy, trials[1:], f"trial {trials[0].trial}")
        if trial_divergence is not None:
            findings.append(
                f"{cell_ref}: trial {trial_divergence.trial} received X/y that differ from "
                f"{trial_divergence.baseline}'s in {_names(trial_divergence.columns)} "
                "(per-column canonical hashes)."
            )
    return FoldInvariance(
        cell_ref=cell_ref,
        recipe=trace.recipe,
        prep_calls=len(prep_positions),
        trials=len(trials),
        trials_requested=trace.trials_requested,
        x_digest=None if prep is None or prep.xy is None else prep.xy.x.digest,
        y_digest=None if prep is None or prep.xy is None else prep.xy.y.digest,
        failed_rules=failed,
        findings=findings,
        prep_divergence=prep_divergence,
        trial_divergence=trial_divergence,
        structural_ok=not failed,
        empirical_ok=bool(trials) and trial_divergence is None,
    )


def gate_c4(traces: Sequence[tuple[str, ReplayTrace]]) -> C4Report:
    """G-C4: on K folds, is every trial's X/y the same, by construction and by hash?

    (a) Structural, per fold: prep ran exactly once, returned before the first trial started,
    the observer saw every requested trial, and every trial received the prep output's X/y.
    (b) Empirical, per fold: every trial's per-column canonical hashes equal trial 0's.

    Args:
        traces: ``(cell_ref, trace)`` per fold, from :func:`instrumented_replay`.

    Returns:
        PASS when every fold passes both checks; STOP otherwise (also on zero folds), naming
        the first failing fold, its diverging trial and columns, and the failed rules.
    """
    folds = [check_fold(cell_ref, trace) for cell_ref, trace in traces]
    figures = C4Figures(
        folds=len(folds),
        trials_per_fold={fold.cell_ref: fold.trials for fold in folds},
        prep_calls_per_fold={fold.cell_ref: fold.prep_calls for fold in folds},
    )
    failing = [fold for fold in folds if not fold.passed]
    if not folds:
        return C4Report(
            decision=C4Decision.STOP,
            reasons=["G-C4 ran on 0 folds, so nothing is proven; run it on K >= 1 folds."],
            figures=figures,
            folds=[],
            stop=None,
        )
    if not failing:
        reasons = [
            f"All {len(folds)} folds pass both checks: in each, prep ran once and returned "
            "before trial 0, and every trial's per-column X/y hashes equal the prep output's "
            "and trial 0's."
        ]
        reasons.extend(
            f"{fold.cell_ref}: {fold.trials} of {fold.trials_requested} trials received X "
            f"{_short(fold.x_digest)} / y {_short(fold.y_digest)}, the prep output."
            for fold in folds
        )
        reasons.append(
            "X/y is trial-invariant on these folds, so dataset_only is sound for this recipe; "
            "G-C4b decides whether it is reachable."
        )
        return C4Report(
            decision=C4Decision.PASS, reasons=reasons, figures=figures, folds=folds, stop=None
        )

    first = failing[0]
    divergence = first.trial_divergence or first.prep_divergence
    stop = StopPoint(
        cell_ref=first.cell_ref,
        trial=None if divergence is None else divergence.trial,
        columns=[] if divergence is None else divergence.columns,
        failed_rules=first.failed_rules,
    )
    headline = f"STOP at fold {first.cell_ref}, the first of {len(failing)} failing fold(s)"
    if divergence is not None:
        headline += (
            f": trial {divergence.trial} received X/y different from {divergence.baseline} "
            f"in {_names(divergence.columns)}"
        )
    if first.failed_rules:
        rules = "; ".join(f"'{RULE_TEXT[rule]}'" for rule in first.failed_rules)
        headline += f"; structural rule(s) failed: {rules}"
    reasons = [headline + "."]
    for fold in failing:
        reasons.extend(fold.findings)
    reasons.append(
        "X/y is not proven trial-invariant: dataset_only is not sound for this recipe until "
        "the divergence is explained."
    )
    return C4Report(
        decision=C4Decision.STOP, reasons=reasons, figures=figures, folds=folds, stop=stop
    )


# --- G-C4b ----------------------------------------------------------------------------------


class SeamDecision(StrEnum):
    """G-C4b's outcome; never single_fit, which is a design decision, not a fallback."""

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


class C4bFigures(BaseModel):
    """The numbers behind G-C4b; positions are 0-based indexes into the trace's events."""

    model_config = ConfigDict(frozen=True)

    prep_calls: int
    prep_position: int | None
    first_dataset_position: int | None
    first_train_position: int | None
    datasets_built: int
    train_calls: int
    distinct_dataset_hashes: int


class C4bReport(BaseModel):
    """G-C4b, the prep/train seam of one replay."""

    model_config = ConfigDict(frozen=True)

    gate: str = GATE_C4B
    cell_ref: str
    recipe: str
    decision: SeamDecision
    reasons: list[str]
    figures: C4bFigures
    failed_rules: list[SeamRule]

    def markdown(self) -> str:
        """The report as Markdown: decision, reasons and figures."""
        figures = [
            (name, "-" if value is None else str(value))
            for name, value in self.figures.model_dump().items()
        ]
        title = f"{self.gate} prep/train seam, {self.cell_ref} ({self.recipe})"
        return "\n".join(gate_markdown(title, self.decision, self.reasons, figures)) + "\n"


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


def gate_c4b(trace: ReplayTrace) -> C4bReport:
    """G-C4b: is X/y fully materialized, its hash final, before the first ``lightgbm.train``?

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
        The G-C4b report.
    """
    events = trace.events
    prep_positions = trace.positions(EventKind.PREP_CALLED)
    dataset_positions = trace.positions(EventKind.DATASET_BUILT)
    train_positions = trace.positions(EventKind.TRAIN_CALLED)
    prep = events[prep_positions[0]] if prep_positions else None
    figures = C4bFigures(
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
            else f"Prep ran at trace position(s) {_positions(late)}, after the first Dataset "
            f"(position {figures.first_dataset_position}) or lightgbm.train call (position "
            f"{figures.first_train_position})"
        )
        fail(SeamRule.PREP_BEFORE_TRAIN, detail)
    if prep is not None and prep.xy is not None:
        divergence = _first_divergence(
            prep.xy, trace.of_kind(EventKind.TRIAL_STARTED), "the prep output"
        )
        if divergence is not None:
            fail(
                SeamRule.XY_FINAL,
                f"Trial {divergence.trial} received X/y that differ from the prep output in "
                f"{_names(divergence.columns)}",
            )
    untraceable = _untraceable_dataset(trace, set(prep.forms.values()) if prep else set())
    if untraceable is not None:
        position, event, what = untraceable
        digest = event.data if what == "data" else event.label
        name = "Dataset" if event.kind is EventKind.DATASET_BUILT else "lightgbm.train call"
        fail(
            SeamRule.DATASETS_FROM_PREP,
            f"The {name} at trace position {position} (trial {event.trial}) got {what} "
            f"{_short(digest)}, which is none of the prep output's forms (X, its train or "
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
            "whether it is sound is G-C4's decision.",
        ]
        decision = SeamDecision.SEAM
    else:
        reasons = [
            *findings,
            f"{NO_SEAM} (a single fit can still trigger training side effects, so it is a "
            "design decision, never a fallback).",
        ]
        decision = SeamDecision.DESIGN_REVIEW_REQUIRED
    return C4bReport(
        cell_ref=trace.cell_ref,
        recipe=trace.recipe,
        decision=decision,
        reasons=reasons,
        figures=figures,
        failed_rules=failed,
    )
