"""s40, the permutation probe: does the fold's X carry signal about y?

The probe reads X/y only (``xy_only``), so it runs with the s22a1 anchor skipped and on a
reduced capture; its verdict cross-references the anchor when there is one. It never replays
the recipe. It fits the capture's task and scores the validation predictions with that
task's statistic, higher is better (:func:`probe_statistic`): ROC AUC for binary, macro
one-vs-rest ROC AUC for multiclass, Spearman rank IC for regression.

The p-value is a sequential Monte-Carlo one (Besag & Clifford 1991, "Sequential Monte Carlo
p-values", Biometrika 78). The permutations run one at a time; an *exceedance* is a
permutation whose statistic is at least the observed one. The probe stops as soon as the
exceedances reach ``h`` (:attr:`ProbeSettings.stop_at_exceedances`), after ``l``
permutations, with p-value ``h / l``; a probe that never reaches ``h`` runs all
``max_permutations`` (``m``) and its p-value is ``(1 + exceedances) / (m + 1)``. Both are
valid p-values. ``h = ceil(2 * alpha * m)``: a stopped probe's p-value ``h / l >= h / m`` is
at least twice alpha, clearly NO_SIGNAL, and since ``h`` exceedances already put the full
run's p-value above alpha, stopping never changes the verdict the full ``m`` permutations
would give. A fold without signal beats about half its permutations, so it stops after about
``2h`` (20 with the defaults); a fold with signal runs all ``m``, and one that beats every
permutation gets the smallest p-value, ``1 / (m + 1)``.
"""

import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    rounded,
)
from diag_assets.core.errors import DiagInputError
from diag_assets.core.recipe.tasks import TaskKind, num_classes, task_spec
from diag_assets.core.recipe.training import relabelled_fits

WITHOUT_ANCHOR = "the probe was not cross-referenced with the anchor"


DEFAULT_MAX_PERMUTATIONS = 99
"""With the default alpha 0.05, the smallest p-value ``1 / (99 + 1) = 0.01`` is alpha / 5."""


class ProbeSettings(BaseModel):
    """The s40 probe's small, fixed budget.

    Refused: a ``max_permutations`` whose p-value resolution ``1 / (max_permutations + 1)``
    is above ``alpha``, since no p-value could then reach alpha and the probe could never
    say SIGNAL.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_rounds: int = Field(default=50, ge=1, le=1_000, description="Rounds per probe fit.")
    num_leaves: int = Field(default=15, ge=2, le=255, description="Leaves per probe tree.")
    learning_rate: float = Field(default=0.1, gt=0, le=1, description="Probe learning rate.")
    max_permutations: int = Field(
        default=DEFAULT_MAX_PERMUTATIONS,
        ge=1,
        le=9_999,
        description="Most label permutations behind the p-value; the smallest p-value is "
        "1 / (max_permutations + 1). A fold without signal stops well before.",
    )
    alpha: float = Field(default=0.05, gt=0, lt=1, description="SIGNAL when p-value <= alpha.")
    seed: int = Field(default=0, ge=0, description="Seed of the permutations and fits.")
    num_threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Permutations fitted at once, each on one LightGBM thread (a probe's fits "
        "are too small for LightGBM's own threads to pay).",
    )
    max_train_rows: int = Field(
        default=20_000,
        ge=100,
        description="The probe trains on at most this many of the most recent training rows, "
        "so its cost stays fixed however long the fold's history is.",
    )

    @model_validator(mode="after")
    def _resolution_reaches_alpha(self) -> "ProbeSettings":
        if self.p_value_resolution > self.alpha:
            needed = math.ceil(1 / self.alpha - 1 - 1e-9)
            raise ValueError(
                f"With max_permutations={self.max_permutations} the smallest p-value is "
                f"1/{self.max_permutations + 1} = {self.p_value_resolution:.4g}, above "
                f"alpha={self.alpha}, so the probe could never say SIGNAL. Raise "
                f"max_permutations to at least {needed} (default {DEFAULT_MAX_PERMUTATIONS}) "
                "or raise alpha."
            )
        return self

    @property
    def p_value_resolution(self) -> float:
        """The smallest p-value the probe can give: ``1 / (max_permutations + 1)``."""
        return 1 / (self.max_permutations + 1)

    @property
    def stop_at_exceedances(self) -> int:
        """``h``: the probe stops once this many permutations scored at least the observed.

        ``ceil(2 * alpha * max_permutations)`` (see the module docstring): a stopped probe's
        p-value is then at least twice alpha. The tolerance keeps float noise in
        ``2 * alpha * m`` (e.g. 10.000000000000002) from adding one.
        """
        return max(1, math.ceil(2 * self.alpha * self.max_permutations - 1e-9))


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
    """The validation statistic on the real labels vs on up to ``max_permutations`` shuffles.

    The statistic is the capture's task's (:func:`probe_statistic`). The permutations run one
    by one and stop at ``settings.stop_at_exceedances`` exceedances; the p-value is
    Besag-Clifford's (the module docstring). SIGNAL when it is at most ``alpha``. The
    training rows are binned once and every fit swaps its labels in
    (:func:`~diag_assets.core.recipe.training.relabelled_fits`); permutation ``i`` is the
    ``i``-th draw of ``numpy.random.default_rng(seed)`` and is fitted with seed
    ``seed + 1 + i``, so the result is the same on every run. Registered ``xy_only``: it
    sees X/y and nothing else, which is what lets it run without the anchor.

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
    # One fitter per worker, each binning the training rows once and fitting on one thread:
    # small fits scale badly over LightGBM's threads, and well over fits run side by side
    # (LightGBM releases the GIL while it trains and predicts). Every fit has the same
    # single-thread settings, so the figures do not depend on how many workers ran them.
    fitters = [
        relabelled_fits(
            params,
            x_train,
            y_train,
            y_val,
            num_rounds=settings.num_rounds,
            num_threads=1,
            task=task,
        )
        for _ in range(settings.num_threads)
    ]

    def validation_statistic(worker: int, train_labels: np.ndarray, seed: int) -> float:
        booster = fitters[worker](train_labels, seed)
        return probe_statistic(task, y_val, np.asarray(booster.predict(x_val)))

    observed = validation_statistic(0, y_train, settings.seed)
    rng = np.random.default_rng(settings.seed)
    permuted: list[float] = []
    exceedances = 0
    stop_at = settings.stop_at_exceedances
    with ThreadPoolExecutor(max_workers=settings.num_threads) as pool:
        while len(permuted) < settings.max_permutations and exceedances < stop_at:
            # A batch of the next permutations, in the order one worker would draw them;
            # results are taken in that order and the rule stops where a lone worker would.
            batch = range(
                len(permuted), min(len(permuted) + settings.num_threads, settings.max_permutations)
            )
            draws = [rng.permutation(y_train) for _ in batch]
            statistics = pool.map(
                validation_statistic,
                range(len(draws)),
                draws,
                [settings.seed + 1 + i for i in batch],
            )
            for statistic in statistics:
                if exceedances >= stop_at:
                    break
                permuted.append(statistic)
                exceedances += statistic >= observed
    stopped_early = exceedances >= stop_at
    if stopped_early:
        p_value = exceedances / len(permuted)
    else:
        p_value = (1 + exceedances) / (settings.max_permutations + 1)
    figures = ProbeFigures(
        statistic=task_spec(task).statistic,
        observed=rounded(observed),
        permutation_mean=rounded(float(np.mean(permuted))),
        permutation_max=rounded(float(np.max(permuted))),
        permutations_run=len(permuted),
        max_permutations=settings.max_permutations,
        exceedances=exceedances,
        stopped_early=stopped_early,
        p_value=rounded(p_value),
        p_value_resolution=rounded(settings.p_value_resolution),
        alpha=settings.alpha,
        num_rounds=settings.num_rounds,
        train_rows=len(y_train),
        permutation_statistics=[rounded(statistic) for statistic in permuted],
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
    # What SIGNAL or NO_SIGNAL rests on comes first, then the cross-reference.
    probed = f"Probe {signal.value}: {figures.describe()}."
    if anchor is None:
        crossref, finding = CrossrefStatus.SKIPPED, probed
    else:
        anchor_learned = anchor.best_iter > 1
        consistent = anchor_learned == (signal is Signal.SIGNAL)
        crossref = CrossrefStatus.CONSISTENT if consistent else CrossrefStatus.INCONSISTENT
        finding = (
            f"{probed} Anchor best_iter={anchor.best_iter} "
            f"({'learns' if anchor_learned else 'does not learn'}): "
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
