"""Trial invariance: is a recipe's X/y the same for every trial, by construction and by hash?

The gate judges :class:`~diag_assets.core.capture.trace.ReplayTrace` objects: the traces
the shared fixture set's full_replay captures stored, read through the capture cache. See
:mod:`diag_assets.core.capture.trace` for the events and how they are recorded. The divergence
helpers here serve the prep/train seam gate (:mod:`diag_assets.core.gates.seam`) too.
"""

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.capture.trace import EventKind, ReplayTrace, TraceEvent, XYDigest
from diag_assets.core.gates.report import GateReport, Table

INVARIANCE_LABEL = "trial invariance gate"
_SHOWN_COLUMNS = 8
_SHOWN_DIGEST = 16


def column_list(columns: Sequence[str]) -> str:
    """The first columns by name, then how many more."""
    shown = ", ".join(columns[:_SHOWN_COLUMNS])
    hidden = len(columns) - _SHOWN_COLUMNS
    return f"{shown} and {hidden} more" if hidden > 0 else shown


def short_digest(digest: str | None) -> str:
    """A digest shortened for a sentence (``-`` for none)."""
    return "-" if digest is None else digest[:_SHOWN_DIGEST]


def position_list(positions: Sequence[int]) -> str:
    """Trace positions as ``1, 5, 9``."""
    return ", ".join(str(position) for position in positions)


class InvarianceDecision(StrEnum):
    """The outcome: X/y is trial-invariant on every fold, or it is not."""

    PASS = "PASS"
    STOP = "STOP"


class StructuralRule(StrEnum):
    """The structural rules a fold's trace must satisfy (check (a))."""

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
    """Trial invariance on one fold."""

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
    """Where the gate stopped: the first failing fold, its diverging trial and columns."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    trial: int | None
    columns: list[str]
    failed_rules: list[StructuralRule]


class InvarianceFigures(BaseModel):
    """The numbers behind trial invariance."""

    model_config = ConfigDict(frozen=True)

    folds: int
    trials_per_fold: dict[str, int]
    prep_calls_per_fold: dict[str, int]


class InvarianceReport(GateReport[InvarianceDecision, InvarianceFigures]):
    """Trial invariance over K folds."""

    gate: str = INVARIANCE_LABEL
    folds: list[FoldInvariance]
    stop: StopPoint | None

    def heading(self) -> str:
        """The report's title."""
        return f"{self.gate}, {self.figures.folds} fold(s)"

    def figure_rows(self) -> dict[str, Any]:
        """The fold count, then trials and prep calls per fold."""
        prep_calls = self.figures.prep_calls_per_fold
        return {
            "folds": self.figures.folds,
            **{
                f"trials / prep calls, {cell}": f"{trials} / {prep_calls[cell]}"
                for cell, trials in self.figures.trials_per_fold.items()
            },
        }

    def tables(self) -> list[Table]:
        """One row per fold: its checks and its first divergence."""
        rows = []
        for fold in self.folds:
            divergence = fold.trial_divergence or fold.prep_divergence
            where = (
                "-"
                if divergence is None
                else f"trial {divergence.trial}: {column_list(divergence.columns)}"
            )
            structural = "ok" if fold.structural_ok else ", ".join(fold.failed_rules)
            rows.append(
                (
                    fold.cell_ref,
                    fold.prep_calls,
                    f"{fold.trials}/{fold.trials_requested}",
                    structural,
                    "ok" if fold.empirical_ok else "diverges",
                    where,
                )
            )
        header = ("fold", "prep calls", "trials", "structural", "empirical", "first divergence")
        return [Table(header, rows)]


def first_divergence(
    baseline: XYDigest, events: Sequence[TraceEvent], label: str
) -> Divergence | None:
    """The first trial in ``events`` whose X/y differs from ``baseline``, and how."""
    for event in events:
        if event.xy is None or event.trial is None:
            continue
        columns = baseline.diverging(event.xy)
        if columns:
            return Divergence(trial=event.trial, baseline=label, columns=columns)
    return None


def check_fold(cell_ref: str, trace: ReplayTrace) -> FoldInvariance:
    """The gate's two checks on one fold's trace.

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
            else f"prep ran at trace position(s) {position_list(late)}, after trial "
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
        prep_divergence = first_divergence(prep.xy, trials, "the prep output")
        if prep_divergence is not None:
            failed.append(StructuralRule.TRIALS_RECEIVE_PREP_OUTPUT)
            findings.append(
                f"{cell_ref}: trial {prep_divergence.trial} received X/y that differ from the "
                f"prep output in {column_list(prep_divergence.columns)}; the rule "
                f"'{RULE_TEXT[StructuralRule.TRIALS_RECEIVE_PREP_OUTPUT]}' failed."
            )
    trial_divergence = None
    if trials and trials[0].xy is not None:
        trial_divergence = first_divergence(trials[0].xy, trials[1:], f"trial {trials[0].trial}")
        if trial_divergence is not None:
            findings.append(
                f"{cell_ref}: trial {trial_divergence.trial} received X/y that differ from "
                f"{trial_divergence.baseline}'s in {column_list(trial_divergence.columns)} "
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


def trial_invariance_gate(traces: Sequence[tuple[str, ReplayTrace]]) -> InvarianceReport:
    """On K folds, is every trial's X/y the same, by construction and by hash?

    (a) Structural, per fold: prep ran exactly once, returned before the first trial started,
    the observer saw every requested trial, and every trial received the prep output's X/y.
    (b) Empirical, per fold: every trial's per-column canonical hashes equal trial 0's.

    Args:
        traces: ``(cell_ref, trace)`` per fold, from the fixture set's full_replay captures.

    Returns:
        PASS when every fold passes both checks; STOP otherwise (also on zero folds), naming
        the first failing fold, its diverging trial and columns, and the failed rules.
    """
    folds = [check_fold(cell_ref, trace) for cell_ref, trace in traces]
    figures = InvarianceFigures(
        folds=len(folds),
        trials_per_fold={fold.cell_ref: fold.trials for fold in folds},
        prep_calls_per_fold={fold.cell_ref: fold.prep_calls for fold in folds},
    )
    failing = [fold for fold in folds if not fold.passed]
    if not folds:
        return InvarianceReport(
            decision=InvarianceDecision.STOP,
            reasons=["The gate ran on 0 folds, so nothing is proven; run it on K >= 1 folds."],
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
            f"{short_digest(fold.x_digest)} / y {short_digest(fold.y_digest)}, the prep output."
            for fold in folds
        )
        reasons.append(
            "X/y is trial-invariant on these folds, so dataset_only is sound for this recipe; "
            "the prep/train seam gate decides whether it is reachable."
        )
        return InvarianceReport(
            decision=InvarianceDecision.PASS,
            reasons=reasons,
            figures=figures,
            folds=folds,
            stop=None,
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
            f"in {column_list(divergence.columns)}"
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
    return InvarianceReport(
        decision=InvarianceDecision.STOP, reasons=reasons, figures=figures, folds=folds, stop=stop
    )
