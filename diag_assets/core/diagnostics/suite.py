"""Three more diagnostics of a captured fold: trial spread, adversarial drift, calibration.

- ``s22a2`` (``trial_dynamics``): does the best trial stand out from the spread of all trials?
  It reads the trial log only and fits nothing.
- ``s23`` (``xy_only``): are the training and validation rows of X distinguishable? An
  adversarial classifier is cross-validated on "is this row a validation row"; an
  out-of-fold AUC near 0.5 means no drift.
- ``s27`` (``trial_dynamics``): is the anchor's model calibrated on the validation rows? It
  re-fits the s22a1 anchor's params for exactly the anchor's ``best_iter`` rounds.

Each is registered with :func:`diag_assets.core.diagnostics.consumers.diagnostic`, so it is
called with a :class:`~diag_assets.core.capture.replay.CapturedFold` (and ``anchor=`` for s27) and
receives a
guarded :class:`~diag_assets.core.diagnostics.consumers.CaptureView`. Every fit goes through
:func:`~diag_assets.core.recipe.training.fit_booster` with a fixed seed and thread count, so a
verdict's :meth:`content_hash` is the same on every run with the same inputs and settings.
"""

import time
from enum import StrEnum
from typing import Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from diag_assets.core.capture.replay import CapturedFold
from diag_assets.core.diagnostics.consumers import CaptureRequirement, CaptureView, diagnostic
from diag_assets.core.diagnostics.probe import roc_auc
from diag_assets.core.diagnostics.verdicts import Certification
from diag_assets.core.hashing.digests import hash_json
from diag_assets.core.recipe.training import VALIDATION_METRIC, fit_booster

# Scales a median absolute deviation to the standard deviation of a normal distribution.
MAD_TO_SIGMA = 1.4826
# Scales a mean absolute deviation likewise; the usual fallback when the MAD is 0 (Iglewicz &
# Hoaglin's modified z-score), because then at least half the trials tie at the median.
MEAN_AD_TO_SIGMA = 1.253314
# LightGBM clamps probabilities the same way in its binary_logloss metric.
LOGLOSS_EPSILON = 1e-15
# The refit must reproduce the anchor's validation loss to this tolerance, or it is not the
# anchor's model that is being judged.
ANCHOR_REPRODUCTION_TOLERANCE = 1e-9
DIGITS = 6


def _r(value: float) -> float:
    return round(float(value), DIGITS)


# --------------------------------------------------------------------------------------------
# s22a2: trial spread
# --------------------------------------------------------------------------------------------


class SpreadSettings(BaseModel):
    """When the best trial counts as standing out from the others."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    z_threshold: float = Field(
        default=2.0, gt=0, description="STANDS_OUT when the best trial's robust z >= this."
    )
    min_trials: int = Field(
        default=3, ge=2, le=10_000, description="Fewer trials than this give TOO_FEW_TRIALS."
    )


class SpreadStatus(StrEnum):
    """Outcome of s22a2."""

    STANDS_OUT = "STANDS_OUT"
    WITHIN_SPREAD = "WITHIN_SPREAD"
    TOO_FEW_TRIALS = "TOO_FEW_TRIALS"


class SpreadScale(StrEnum):
    """Which dispersion the robust z is divided by."""

    MAD = "MAD"
    MEAN_AD = "MEAN_AD"
    NONE = "NONE"


class SpreadFigures(BaseModel):
    """The numbers behind an s22a2 verdict; scores are validation log-loss (lower is better).

    ``robust_z`` is ``(median - best) / scale``, where the scale is ``1.4826 x MAD`` of the
    trials' best scores, or ``1.2533 x`` their mean absolute deviation when the MAD is 0. When
    both are 0 every trial scored the same and ``robust_z`` is 0. It is ``None`` when there
    are too few trials to judge.
    """

    model_config = ConfigDict(frozen=True)

    metric: str
    n_trials: int
    best_trial: int
    best_score: float
    median_score: float
    p25_score: float
    p75_score: float
    iqr_score: float
    mad_score: float
    scale: SpreadScale
    robust_z: float | None
    best_iter_min: int
    best_iter_median: float
    best_iter_max: int
    share_best_iter_1: float


class S22a2Verdict(BaseModel):
    """s22a2: does the best trial stand out from the spread of the trials?"""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    status: SpreadStatus
    stands_out: bool
    figures: SpreadFigures | None
    settings: SpreadSettings
    certification: Certification
    certification_reason: str
    capture_key: str
    capture_content_hash: str
    trial_log_hash: str
    elapsed_s: float

    def content_hash(self) -> str:
        """Hash of the reproducible fields (the wall-clock ``elapsed_s`` is left out)."""
        return hash_json(self.model_dump(mode="json", exclude={"elapsed_s"}))


def robust_z(scores: np.ndarray) -> tuple[float, float, SpreadScale]:
    """Robust z of the lowest score against all of them.

    Args:
        scores: The trials' best validation losses (lower is better), at least one.

    Returns:
        ``(z, mad, scale_used)``; ``z >= 0`` because the lowest score is never above the median.
    """
    median = float(np.median(scores))
    gap = median - float(scores.min())
    deviations = np.abs(scores - median)
    mad = float(np.median(deviations))
    if mad > 0:
        return gap / (MAD_TO_SIGMA * mad), mad, SpreadScale.MAD
    mean_ad = float(deviations.mean())
    if mean_ad > 0:
        return gap / (MEAN_AD_TO_SIGMA * mean_ad), mad, SpreadScale.MEAN_AD
    return 0.0, mad, SpreadScale.NONE


@diagnostic("s22a2", CaptureRequirement.TRIAL_DYNAMICS)
def run_s22a2(view: CaptureView, settings: SpreadSettings | None = None) -> S22a2Verdict:
    """Judge whether the best trial stands out from the spread of all trials (no fitting).

    Args:
        view: The guarded capture (callers pass a ``CapturedFold``).
        settings: Thresholds; the defaults when ``None``.

    Returns:
        The verdict. An empty trial log is INCONCLUSIVE_TOOLING with no figures; fewer than
        ``settings.min_trials`` trials is TOO_FEW_TRIALS, still CERTIFIED because the log is
        complete.

    Raises:
        ValueError: the log's metric is not the validation log-loss, so "lower is better"
            would not hold.
    """
    started = time.perf_counter()
    settings = settings or SpreadSettings()
    log = view.trial_log
    manifest = view.manifest
    if log.metric != VALIDATION_METRIC:
        raise ValueError(
            f"s22a2 of {manifest.cell_ref}: the trial log's metric is {log.metric!r}; s22a2 "
            f"reads best_score as {VALIDATION_METRIC} (lower is better)."
        )

    def verdict(
        status: SpreadStatus,
        figures: SpreadFigures | None,
        certification: Certification,
        reason: str,
    ) -> S22a2Verdict:
        return S22a2Verdict(
            cell_ref=manifest.cell_ref,
            status=status,
            stands_out=status is SpreadStatus.STANDS_OUT,
            figures=figures,
            settings=settings,
            certification=certification,
            certification_reason=reason,
            capture_key=manifest.capture_key,
            capture_content_hash=manifest.content_hash,
            trial_log_hash=log.content_hash(),
            elapsed_s=round(time.perf_counter() - started, 6),
        )

    if not log.trials:
        return verdict(
            SpreadStatus.TOO_FEW_TRIALS,
            None,
            Certification.INCONCLUSIVE_TOOLING,
            "the trial log holds no trials.",
        )
    scores = np.array([t.best_score for t in log.trials], dtype=np.float64)
    iters = np.array([t.best_iter for t in log.trials], dtype=np.int64)
    best = log.best_trial
    enough = len(scores) >= settings.min_trials
    z, mad, scale = robust_z(scores)
    p25, median, p75 = (float(v) for v in np.percentile(scores, [25, 50, 75]))
    figures = SpreadFigures(
        metric=log.metric,
        n_trials=len(scores),
        best_trial=best.trial,
        best_score=_r(best.best_score),
        median_score=_r(median),
        p25_score=_r(p25),
        p75_score=_r(p75),
        iqr_score=_r(p75 - p25),
        mad_score=_r(mad),
        scale=scale,
        robust_z=_r(z) if enough else None,
        best_iter_min=int(iters.min()),
        best_iter_median=_r(float(np.median(iters))),
        best_iter_max=int(iters.max()),
        share_best_iter_1=_r(float(np.mean(iters == 1))),
    )
    if not enough:
        return verdict(
            SpreadStatus.TOO_FEW_TRIALS,
            figures,
            Certification.CERTIFIED,
            f"{len(scores)} trial(s), fewer than the {settings.min_trials} needed to judge "
            "the spread.",
        )
    status = SpreadStatus.STANDS_OUT if z >= settings.z_threshold else SpreadStatus.WITHIN_SPREAD
    reason = (
        f"best trial {best.trial}: robust z {z:.3g} ({scale.value} scale) "
        f"{'>=' if status is SpreadStatus.STANDS_OUT else '<'} {settings.z_threshold} over "
        f"{len(scores)} trials."
    )
    return verdict(status, figures, Certification.CERTIFIED, reason)


# --------------------------------------------------------------------------------------------
# s23: train-vs-validation drift by adversarial validation
# --------------------------------------------------------------------------------------------


class DriftSettings(BaseModel):
    """The adversarial classifier's budget and the AUC thresholds of s23."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_splits: int = Field(
        default=3, ge=2, le=20, description="Cross-validation folds (stratified, shuffled)."
    )
    num_rounds: int = Field(default=50, ge=1, le=1_000, description="Rounds per fit.")
    num_leaves: int = Field(default=15, ge=2, le=255, description="Leaves per tree.")
    learning_rate: float = Field(default=0.1, gt=0, le=1, description="Learning rate.")
    min_data_in_leaf: int = Field(default=20, ge=1, description="Minimum rows per leaf.")
    mild_auc: float = Field(
        default=0.6, gt=0.5, lt=1, description="Out-of-fold AUC at or above this is MILD drift."
    )
    strong_auc: float = Field(
        default=0.75, gt=0.5, le=1, description="Out-of-fold AUC at or above this is STRONG."
    )
    top_k: int = Field(default=5, ge=1, le=100, description="Features listed by share of gain.")
    seed: int = Field(default=0, ge=0, description="Seed of the fold assignment and the fits.")
    num_threads: int = Field(default=2, ge=1, le=64, description="LightGBM threads.")

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> Self:
        if self.mild_auc >= self.strong_auc:
            raise ValueError(
                f"mild_auc ({self.mild_auc}) must be below strong_auc ({self.strong_auc})."
            )
        return self


class DriftLevel(StrEnum):
    """Outcome of s23."""

    NONE = "NONE"
    MILD = "MILD"
    STRONG = "STRONG"


class FeatureGain(BaseModel):
    """A feature's total split gain in the adversarial model, averaged over the folds."""

    model_config = ConfigDict(frozen=True)

    feature: str
    gain: float
    share: float


class DriftFigures(BaseModel):
    """The numbers behind an s23 verdict."""

    model_config = ConfigDict(frozen=True)

    auc: float
    fold_aucs: list[float]
    n_train: int
    n_validation: int
    n_splits: int
    top_features: list[FeatureGain]


class S23Verdict(BaseModel):
    """s23: can a classifier tell the fold's validation rows from its training rows?"""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    drift: DriftLevel
    figures: DriftFigures
    settings: DriftSettings
    certification: Certification
    certification_reason: str
    capture_key: str
    capture_content_hash: str
    x_hash: str
    elapsed_s: float

    def content_hash(self) -> str:
        """Hash of the reproducible fields (the wall-clock ``elapsed_s`` is left out)."""
        return hash_json(self.model_dump(mode="json", exclude={"elapsed_s"}))


def stratified_folds(labels: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    """Assign each row to one of ``n_splits`` folds, each class shuffled and dealt evenly.

    Rows are in time order, so contiguous folds would hold mostly one class (the validation
    block sits at the end); dealing each class separately puts both classes in every fold.

    Raises:
        ValueError: a class has fewer rows than ``n_splits``.
    """
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=np.int64)
    for cls in (0, 1):
        members = np.flatnonzero(labels == cls)
        if len(members) < n_splits:
            raise ValueError(
                f"class {cls} has {len(members)} rows, fewer than the {n_splits} folds."
            )
        assignment[rng.permutation(members)] = np.arange(len(members)) % n_splits
    return assignment


@diagnostic("s23", CaptureRequirement.XY_ONLY)
def run_s23(view: CaptureView, settings: DriftSettings | None = None) -> S23Verdict:
    """Adversarial validation: out-of-fold AUC of "validation row" predicted from X alone.

    Args:
        view: The guarded capture (callers pass a ``CapturedFold``); only X is read.
        settings: Budget and thresholds; the defaults when ``None``.

    Returns:
        The verdict: NONE below ``mild_auc``, MILD below ``strong_auc``, else STRONG, with the
        features that separate the two blocks most.

    Raises:
        ValueError: the training or validation block has fewer rows than ``n_splits``.
    """
    started = time.perf_counter()
    settings = settings or DriftSettings()
    data = view.data
    manifest = view.manifest
    x = data.X.to_numpy(dtype=np.float32, copy=False)
    names = [str(c) for c in data.X.columns]
    is_validation = (np.arange(len(x)) >= data.n_train).astype(np.int8)
    folds = stratified_folds(is_validation, settings.n_splits, settings.seed)
    params = {
        "num_leaves": settings.num_leaves,
        "learning_rate": settings.learning_rate,
        "min_data_in_leaf": settings.min_data_in_leaf,
    }
    out_of_fold = np.empty(len(x), dtype=np.float64)
    gains = np.zeros(len(names), dtype=np.float64)
    fold_aucs = []
    for k in range(settings.n_splits):
        held = folds == k
        fit = fit_booster(
            params,
            x[~held],
            is_validation[~held],
            x[held],
            is_validation[held],
            num_rounds=settings.num_rounds,
            early_stopping_rounds=None,
            num_threads=settings.num_threads,
            seed=settings.seed + k,
        )
        predicted = np.asarray(fit.booster.predict(x[held]), dtype=np.float64)
        out_of_fold[held] = predicted
        fold_aucs.append(roc_auc(is_validation[held], predicted))
        gains += np.asarray(fit.booster.feature_importance(importance_type="gain"))
    gains /= settings.n_splits
    auc = roc_auc(is_validation, out_of_fold)
    total = float(gains.sum())
    # Ties broken by column position so the list is deterministic.
    order = sorted(range(len(names)), key=lambda i: (-gains[i], i))
    top = [
        FeatureGain(feature=names[i], gain=_r(gains[i]), share=_r(gains[i] / total))
        for i in order[: settings.top_k]
        if gains[i] > 0
    ]
    if auc >= settings.strong_auc:
        drift = DriftLevel.STRONG
    elif auc >= settings.mild_auc:
        drift = DriftLevel.MILD
    else:
        drift = DriftLevel.NONE
    leader = f"; top feature {top[0].feature} ({top[0].share:.0%} of gain)" if top else ""
    return S23Verdict(
        cell_ref=manifest.cell_ref,
        drift=drift,
        figures=DriftFigures(
            auc=_r(auc),
            fold_aucs=[_r(a) for a in fold_aucs],
            n_train=data.n_train,
            n_validation=data.n_validation,
            n_splits=settings.n_splits,
            top_features=top,
        ),
        settings=settings,
        certification=Certification.CERTIFIED,
        certification_reason=f"out-of-fold adversarial AUC {auc:.3f}: {drift.value}{leader}.",
        capture_key=manifest.capture_key,
        capture_content_hash=manifest.content_hash,
        x_hash=manifest.x_hash,
        elapsed_s=round(time.perf_counter() - started, 6),
    )


# --------------------------------------------------------------------------------------------
# s27: calibration of the anchor model on validation
# --------------------------------------------------------------------------------------------


class CalibrationSettings(BaseModel):
    """Binning and threshold of s27."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_bins: int = Field(
        default=10, ge=2, le=100, description="Equal-width probability bins over [0, 1]."
    )
    ece_threshold: float = Field(
        default=0.05, gt=0, lt=1, description="WELL_CALIBRATED when ECE <= this."
    )
    num_threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="LightGBM threads; keep the anchor's (2) so the refit is its model.",
    )


class CalibrationStatus(StrEnum):
    """Outcome of s27."""

    WELL_CALIBRATED = "WELL_CALIBRATED"
    MISCALIBRATED = "MISCALIBRATED"


class ReliabilityBin(BaseModel):
    """One bin of the reliability table; the means are ``None`` for an empty bin."""

    model_config = ConfigDict(frozen=True)

    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    observed_frequency: float | None


class CalibrationFigures(BaseModel):
    """The numbers behind an s27 verdict, on the fold's validation rows.

    ``refit_best_score`` is LightGBM's validation log-loss of the refit after
    ``anchor_best_iter`` rounds; ``reproduces_anchor`` says it equals the anchor's
    ``best_score``, i.e. the model judged is the anchor's.
    """

    model_config = ConfigDict(frozen=True)

    n_validation: int
    base_rate: float
    mean_predicted: float
    brier: float
    ece: float
    logloss: float
    n_bins: int
    reliability: list[ReliabilityBin]
    anchor_best_iter: int
    anchor_best_score: float
    refit_best_score: float
    reproduces_anchor: bool


class S27Verdict(BaseModel):
    """s27: are the anchor model's validation probabilities calibrated?

    ``calibration`` and ``figures`` are ``None`` only when the anchor was not available
    (DOWNGRADED, see :func:`s27_without_anchor`).
    """

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    calibration: CalibrationStatus | None
    figures: CalibrationFigures | None
    settings: CalibrationSettings
    anchor_available: bool
    anchor_hash: str | None
    certification: Certification
    certification_reason: str
    capture_key: str
    capture_content_hash: str
    x_hash: str
    y_hash: str
    elapsed_s: float

    def content_hash(self) -> str:
        """Hash of the reproducible fields (the wall-clock ``elapsed_s`` is left out)."""
        return hash_json(self.model_dump(mode="json", exclude={"elapsed_s"}))


def _bin_index(probs: np.ndarray, n_bins: int) -> np.ndarray:
    # Bins are [i/n, (i+1)/n); a probability of exactly 1 belongs to the last bin.
    return np.minimum((probs * n_bins).astype(np.int64), n_bins - 1)


def brier_score(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared difference between the predicted probability and the 0/1 label."""
    return float(np.mean((np.asarray(probs, np.float64) - np.asarray(labels, np.float64)) ** 2))


def binary_logloss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood, probabilities clamped to ``[1e-15, 1 - 1e-15]``."""
    p = np.clip(np.asarray(probs, np.float64), LOGLOSS_EPSILON, 1 - LOGLOSS_EPSILON)
    y = np.asarray(labels, np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def reliability_table(labels: np.ndarray, probs: np.ndarray, n_bins: int) -> list[ReliabilityBin]:
    """Per equal-width bin of the predicted probability: count, mean prediction, frequency."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.float64)
    index = _bin_index(probs, n_bins)
    table = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        table.append(
            ReliabilityBin(
                lower=_r(b / n_bins),
                upper=_r((b + 1) / n_bins),
                count=count,
                mean_predicted=_r(probs[members].mean()) if count else None,
                observed_frequency=_r(labels[members].mean()) if count else None,
            )
        )
    return table


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int) -> float:
    """ECE over ``n_bins`` equal-width bins: ``sum_b n_b / N * |mean_p_b - freq_b|``.

    Args:
        labels: 0/1 outcomes.
        probs: Predicted probabilities of class 1, in ``[0, 1]``.
        n_bins: Number of equal-width bins over ``[0, 1]``; 1.0 falls in the last bin.

    Returns:
        The ECE in ``[0, 1]``; 0.0 for no rows.
    """
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.float64)
    if len(probs) == 0:
        return 0.0
    index = _bin_index(probs, n_bins)
    counts = np.bincount(index, minlength=n_bins)
    prob_sums = np.bincount(index, weights=probs, minlength=n_bins)
    label_sums = np.bincount(index, weights=labels, minlength=n_bins)
    # |sum_p - sum_y| / N per bin is n_b / N * |mean_p - freq| without dividing by empty bins.
    return float(np.abs(prob_sums - label_sums).sum() / counts.sum())


@diagnostic("s27", CaptureRequirement.TRIAL_DYNAMICS)
def run_s27(view: CaptureView, settings: CalibrationSettings | None = None) -> S27Verdict:
    """Re-fit the anchor's model and judge the calibration of its validation probabilities.

    The anchor's params are fitted on the training rows for exactly ``anchor.best_iter``
    rounds, without early stopping, with the anchor's seed (trial seed x 1000 + trial).

    Args:
        view: The guarded capture (callers pass a ``CapturedFold`` and ``anchor=``).
        settings: Binning and threshold; the defaults when ``None``.

    Returns:
        The verdict: CERTIFIED when the refit reproduces the anchor's validation loss,
        INCONCLUSIVE_TOOLING (figures kept) when it does not, since another model than the
        anchor's would have been judged.

    Raises:
        LookupError: no anchor was given (use :func:`s27_without_anchor` then).
        ValueError: the anchor was computed on a different capture.
    """
    started = time.perf_counter()
    settings = settings or CalibrationSettings()
    anchor = view.anchor
    manifest = view.manifest
    if anchor.capture_content_hash != manifest.content_hash:
        raise ValueError(
            f"The s22a1 anchor of {manifest.cell_ref} was fitted on capture "
            f"{anchor.capture_content_hash}, but the current capture is "
            f"{manifest.content_hash}. Re-materialize s22a1_anchor for this cell before s27."
        )
    x_train, y_train, x_val, y_val = view.data.split()
    fit = fit_booster(
        dict(anchor.params),
        x_train,
        y_train,
        x_val,
        y_val,
        num_rounds=anchor.best_iter,
        early_stopping_rounds=None,
        num_threads=settings.num_threads,
        # The seed rule of run_anchor: the model judged must be the anchor's own.
        seed=manifest.config.trials.seed * 1_000 + anchor.trial,
    )
    probs = np.asarray(fit.booster.predict(x_val, num_iteration=anchor.best_iter), np.float64)
    labels = np.asarray(y_val, np.float64)
    ece = expected_calibration_error(labels, probs, settings.n_bins)
    refit_score = fit.curve[-1]
    reproduces = abs(refit_score - anchor.best_score) <= ANCHOR_REPRODUCTION_TOLERANCE * max(
        1.0, abs(anchor.best_score)
    )
    calibration = (
        CalibrationStatus.WELL_CALIBRATED
        if ece <= settings.ece_threshold
        else CalibrationStatus.MISCALIBRATED
    )
    figures = CalibrationFigures(
        n_validation=len(labels),
        base_rate=_r(labels.mean()),
        mean_predicted=_r(probs.mean()),
        brier=_r(brier_score(labels, probs)),
        ece=_r(ece),
        logloss=_r(binary_logloss(labels, probs)),
        n_bins=settings.n_bins,
        reliability=reliability_table(labels, probs, settings.n_bins),
        anchor_best_iter=anchor.best_iter,
        anchor_best_score=_r(anchor.best_score),
        refit_best_score=_r(refit_score),
        reproduces_anchor=reproduces,
    )
    summary = (
        f"anchor trial {anchor.trial} refit for {anchor.best_iter} rounds: ECE {ece:.4f} "
        f"{'<=' if calibration is CalibrationStatus.WELL_CALIBRATED else '>'} "
        f"{settings.ece_threshold}, {calibration.value}."
    )
    if reproduces:
        certification, reason = Certification.CERTIFIED, summary
    else:
        certification = Certification.INCONCLUSIVE_TOOLING
        reason = (
            f"the refit's validation loss {refit_score:.9f} differs from the anchor's "
            f"{anchor.best_score:.9f}: the model judged is not the anchor's. {summary}"
        )
    return S27Verdict(
        cell_ref=manifest.cell_ref,
        calibration=calibration,
        figures=figures,
        settings=settings,
        anchor_available=True,
        anchor_hash=anchor.content_hash(),
        certification=certification,
        certification_reason=reason,
        capture_key=manifest.capture_key,
        capture_content_hash=manifest.content_hash,
        x_hash=manifest.x_hash,
        y_hash=manifest.y_hash,
        elapsed_s=round(time.perf_counter() - started, 6),
    )


def s27_without_anchor(
    captured: CapturedFold, reason: str, settings: CalibrationSettings | None = None
) -> S27Verdict:
    """The s27 verdict when the s22a1 anchor was skipped: DOWNGRADED, no figures, no claim."""
    manifest = captured.manifest
    return S27Verdict(
        cell_ref=manifest.cell_ref,
        calibration=None,
        figures=None,
        settings=settings or CalibrationSettings(),
        anchor_available=False,
        anchor_hash=None,
        certification=Certification.DOWNGRADED,
        certification_reason=reason,
        capture_key=manifest.capture_key,
        capture_content_hash=manifest.content_hash,
        x_hash=manifest.x_hash,
        y_hash=manifest.y_hash,
        elapsed_s=0.0,
    )
