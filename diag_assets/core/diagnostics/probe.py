"""s40, the permutation probe: does the fold's X carry signal about y?

The probe reads X/y only (``xy_only``), so it runs with the s22a1 anchor skipped and on a
reduced capture; its verdict cross-references the anchor when there is one. It never replays
the recipe. It fits the capture's task and scores the validation predictions with that
task's statistic, higher is better (:func:`probe_statistic`): ROC AUC for binary, macro
one-vs-rest ROC AUC for multiclass, Spearman rank IC for regression.
"""

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.capture.replay import CapturedFold
from diag_assets.core.diagnostics.certification import AnchorUse, certify
from diag_assets.core.diagnostics.consumers import CaptureRequirement, CaptureView, diagnostic
from diag_assets.core.diagnostics.verdicts import (
    AnchorResult,
    CrossrefStatus,
    ProbeFigures,
    S40Verdict,
    Signal,
)
from diag_assets.core.errors import DiagInputError
from diag_assets.core.recipe.tasks import TaskKind, num_classes, task_spec
from diag_assets.core.recipe.training import fit_booster

WITHOUT_ANCHOR = "the probe was not cross-referenced with the anchor"


class ProbeSettings(BaseModel):
    """The s40 probe's small, fixed budget."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_rounds: int = Field(default=50, ge=1, le=1_000, description="Rounds per probe fit.")
    num_leaves: int = Field(default=15, ge=2, le=255, description="Leaves per probe tree.")
    learning_rate: float = Field(default=0.1, gt=0, le=1, description="Probe learning rate.")
    n_permutations: int = Field(
        default=19, ge=1, le=999, description="Label permutations for the p-value."
    )
    alpha: float = Field(default=0.05, gt=0, lt=1, description="SIGNAL when p-value <= alpha.")
    seed: int = Field(default=0, ge=0, description="Seed of the permutations and fits.")
    num_threads: int = Field(default=2, ge=1, le=64, description="LightGBM threads.")
    max_train_rows: int = Field(
        default=20_000,
        ge=100,
        description="The probe trains on at most this many of the most recent training rows, "
        "so its cost stays fixed however long the fold's history is.",
    )


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties averaged); 0.5 when the labels hold a single class."""
    labels = np.asarray(labels)
    if np.unique(labels).size < 2:
        return 0.5
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, np.asarray(scores, np.float64)))


def auc_ovr_macro(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Macro average over the K classes of each class's one-vs-rest ROC AUC.

    Args:
        labels: Class numbers 0..K-1.
        probabilities: The ``(n, K)`` class probabilities, rows summing to 1.

    Raises:
        DiagInputError: a class has no row among ``labels`` (its AUC is undefined).
    """
    probabilities = np.asarray(probabilities, np.float64)
    k = probabilities.shape[1]
    missing = sorted(set(range(k)) - {int(v) for v in np.unique(labels)})
    if missing:
        raise DiagInputError(
            f"The validation rows hold no row of class {', '.join(map(str, missing))}, so the "
            "one-vs-rest AUC of that class is undefined.",
            "lengthen the validation block or merge the rare classes.",
        )
    from sklearn.metrics import roc_auc_score

    return float(
        roc_auc_score(labels, probabilities, multi_class="ovr", average="macro", labels=range(k))
    )


def spearman_ic(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Spearman rank correlation of predictions and targets; 0.0 when either is constant."""
    labels = np.asarray(labels, np.float64)
    predictions = np.asarray(predictions, np.float64)
    if np.ptp(labels) == 0 or np.ptp(predictions) == 0:
        return 0.0  # nothing is ranked: no information either way
    from scipy.stats import spearmanr

    result: Any = spearmanr(labels, predictions)  # scipy's stubs do not type the result
    return float(result.statistic)


PROBE_STATISTICS: Mapping[TaskKind, Callable[[np.ndarray, np.ndarray], float]] = {
    TaskKind.BINARY: roc_auc,
    TaskKind.MULTICLASS: auc_ovr_macro,
    TaskKind.REGRESSION: spearman_ic,
}


def probe_statistic(task: TaskKind, labels: np.ndarray, predicted: np.ndarray) -> float:
    """The task's score of a booster's validation predictions, higher is better.

    ``predicted`` is what ``Booster.predict`` returns: one value per row for binary (the
    probability of class 1) and regression, an ``(n, K)`` probability matrix for multiclass.

    Raises:
        ValueError: ``predicted`` does not have the task's shape.
    """
    predicted = np.asarray(predicted, np.float64)
    expected_dims = 2 if task is TaskKind.MULTICLASS else 1
    if predicted.ndim != expected_dims or len(predicted) != len(labels):
        raise ValueError(
            f"A {task} prediction of {len(labels)} rows has shape {predicted.shape}; expected "
            f"{'(n, K)' if expected_dims == 2 else '(n,)'} with n = {len(labels)}."
        )
    return PROBE_STATISTICS[task](np.asarray(labels), predicted)


@diagnostic("s40", CaptureRequirement.XY_ONLY)
def run_probe(view: CaptureView, settings: ProbeSettings) -> tuple[Signal, ProbeFigures]:
    """The validation statistic on the real labels vs on ``n_permutations`` shuffled ones.

    The statistic is the capture's task's (:func:`probe_statistic`). The p-value is
    ``(1 + #{permuted statistic >= observed}) / (n_permutations + 1)``. Registered
    ``xy_only``: it sees X/y and nothing else, which is what lets it run without the anchor.

    Raises:
        DiagInputError: a multiclass class has no row among the probe's training rows or the
            validation rows.
    """
    task = view.manifest.task
    x_train, y_train, x_val, y_val = view.data.split()
    # Walk-forward: the rows nearest the validation block are the ones the model would use.
    x_train, y_train = x_train[-settings.max_train_rows :], y_train[-settings.max_train_rows :]
    if task is TaskKind.MULTICLASS:
        try:
            num_classes(y_train, y_val)
        except DiagInputError as error:
            raise DiagInputError(
                f"s40 trains on the {len(y_train)} most recent training rows: {error.problem}",
                f"raise the probe's max_train_rows, or {error.fix}",
            ) from error
    params = {
        "num_leaves": settings.num_leaves,
        "learning_rate": settings.learning_rate,
        "min_data_in_leaf": 50,
    }

    def validation_statistic(train_labels: np.ndarray, seed: int) -> float:
        fit = fit_booster(
            params,
            x_train,
            train_labels,
            x_val,
            y_val,
            num_rounds=settings.num_rounds,
            early_stopping_rounds=None,
            num_threads=settings.num_threads,
            seed=seed,
            # The probe scores the final model once; a per-round validation curve is waste.
            track_validation=False,
            task=task,
        )
        return probe_statistic(task, y_val, np.asarray(fit.booster.predict(x_val)))

    observed = validation_statistic(y_train, settings.seed)
    rng = np.random.default_rng(settings.seed)
    permuted = np.array(
        [
            validation_statistic(rng.permutation(y_train), settings.seed + 1 + i)
            for i in range(settings.n_permutations)
        ]
    )
    p_value = (1 + int(np.count_nonzero(permuted >= observed))) / (settings.n_permutations + 1)
    figures = ProbeFigures(
        statistic=task_spec(task).statistic,
        observed=round(observed, 6),
        permutation_mean=round(float(permuted.mean()), 6),
        permutation_max=round(float(permuted.max()), 6),
        n_permutations=settings.n_permutations,
        p_value=round(p_value, 6),
        alpha=settings.alpha,
        num_rounds=settings.num_rounds,
        train_rows=len(y_train),
    )
    return (Signal.SIGNAL if p_value <= settings.alpha else Signal.NO_SIGNAL), figures


def judge_s40(
    captured: CapturedFold, anchor: AnchorResult | None, settings: ProbeSettings
) -> S40Verdict:
    """Run the probe and cross-reference it with the anchor.

    ``anchor=None`` means the anchor was skipped: the cross-reference is SKIPPED and the
    verdict DOWNGRADED, never CERTIFIED (see
    :func:`~diag_assets.core.diagnostics.certification.certify`, which also downgrades a
    verdict on a single_fit capture).

    Raises:
        ValueError: the anchor was computed on a different capture than ``captured``.
    """
    started = time.perf_counter()
    manifest = captured.manifest
    if anchor is not None and anchor.capture_content_hash != manifest.content_hash:
        raise ValueError(
            f"The s22a1 anchor of {manifest.cell_ref} was fitted on capture "
            f"{anchor.capture_content_hash}, but the current capture is "
            f"{manifest.content_hash}. Re-materialize s22a1_anchor for this cell before s40."
        )
    signal, figures = run_probe(captured, settings)
    if anchor is None:
        crossref, finding = CrossrefStatus.SKIPPED, ""
    else:
        anchor_learned = anchor.best_iter > 1
        consistent = anchor_learned == (signal is Signal.SIGNAL)
        crossref = CrossrefStatus.CONSISTENT if consistent else CrossrefStatus.INCONSISTENT
        finding = (
            f"anchor best_iter={anchor.best_iter} "
            f"({'learns' if anchor_learned else 'does not learn'}), probe {signal.value}: "
            f"{crossref.value.lower()}."
        )
    decision = certify(
        capture_mode=manifest.mode,
        anchor=AnchorUse.SKIPPED if anchor is None else AnchorUse.USED,
        finding=finding,
        without_anchor=WITHOUT_ANCHOR,
    )
    return S40Verdict(
        cell_ref=manifest.cell_ref,
        signal=signal,
        probe=figures,
        s22a1_crossref_status=crossref,
        s22a1_anchor_available=anchor is not None,
        anchor_best_iter=None if anchor is None else anchor.best_iter,
        certification=decision.certification,
        certification_reason=decision.reason,
        capture_key=manifest.capture_key,
        capture_content_hash=manifest.content_hash,
        x_hash=manifest.x_hash,
        y_hash=manifest.y_hash,
        anchor_hash=None if anchor is None else anchor.content_hash(),
        elapsed_s=round(time.perf_counter() - started, 6),
        capture_mode=str(manifest.mode),
    )


def inconclusive_s40(
    cell_ref: str, reason: str, manifest: CaptureManifest | None = None
) -> S40Verdict:
    """The verdict when the probe's input is missing or unverifiable: no figures, no claim."""
    decision = certify(
        capture_mode=manifest.mode if manifest else None,
        anchor=AnchorUse.SKIPPED,
        problem=reason or "the probe's input was missing or could not be verified.",
        without_anchor=WITHOUT_ANCHOR,
    )
    return S40Verdict(
        cell_ref=cell_ref,
        signal=None,
        probe=None,
        s22a1_crossref_status=CrossrefStatus.SKIPPED,
        s22a1_anchor_available=False,
        anchor_best_iter=None,
        certification=decision.certification,
        certification_reason=decision.reason,
        capture_key=manifest.capture_key if manifest else "",
        capture_content_hash=manifest.content_hash if manifest else "",
        x_hash=manifest.x_hash if manifest else "",
        y_hash=manifest.y_hash if manifest else "",
        anchor_hash=None,
        elapsed_s=0.0,
        capture_mode=str(manifest.mode) if manifest else "",
    )
