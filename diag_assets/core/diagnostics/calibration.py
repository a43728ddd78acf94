"""s27, calibration: is the s22a1 anchor's model calibrated on the validation rows?

It re-fits the anchor's params for exactly the anchor's ``best_iter`` rounds, with the
anchor's seed, and bins the validation probabilities. It needs the anchor
(``trial_dynamics``): with the anchor skipped its verdict is DOWNGRADED and carries no
figures (:func:`s27_without_anchor`). It judges probabilities of class 1, so it applies to
binary tasks only (:data:`CALIBRATION_TASKS`). Brier score and log-loss are scikit-learn's.
"""

import time
from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.capture.replay import CapturedFold
from diag_assets.core.diagnostics.certification import AnchorUse, certify
from diag_assets.core.diagnostics.consumers import CaptureRequirement, CaptureView, diagnostic
from diag_assets.core.diagnostics.verdicts import Verdict, rounded
from diag_assets.core.errors import DiagInputError
from diag_assets.core.recipe.tasks import TaskKind
from diag_assets.core.recipe.training import fit_booster

# The tasks s27 judges: the calibration of a probability of class 1.
CALIBRATION_TASKS: frozenset[TaskKind] = frozenset({TaskKind.BINARY})
# The refit must reproduce the anchor's validation loss to this tolerance, or it is not the
# anchor's model that is being judged.
ANCHOR_REPRODUCTION_TOLERANCE = 1e-9
WITHOUT_ANCHOR = "the anchor's model was not re-fitted, so its calibration was not judged"


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


class S27Verdict(Verdict):
    """s27: are the anchor model's validation probabilities calibrated?

    ``calibration`` and ``figures`` are ``None`` only when the anchor was not available
    (DOWNGRADED, see :func:`s27_without_anchor`).
    """

    calibration: CalibrationStatus | None
    figures: CalibrationFigures | None
    settings: CalibrationSettings
    anchor_available: bool
    anchor_hash: str | None
    x_hash: str
    y_hash: str

    @property
    def anchor_use(self) -> AnchorUse:
        """Whether the anchor's model was judged, or the anchor was skipped."""
        return AnchorUse.USED if self.anchor_available else AnchorUse.SKIPPED


def _bin_index(probs: np.ndarray, n_bins: int) -> np.ndarray:
    # Bins are [i/n, (i+1)/n); a probability of exactly 1 belongs to the last bin.
    return np.minimum((probs * n_bins).astype(np.int64), n_bins - 1)


def _binned(
    labels: np.ndarray, probs: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: row count, sum of predicted probabilities, sum of labels."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.float64)
    index = _bin_index(probs, n_bins)
    return (
        np.bincount(index, minlength=n_bins),
        np.bincount(index, weights=probs, minlength=n_bins),
        np.bincount(index, weights=labels, minlength=n_bins),
    )


def brier_score(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared difference between the predicted probability and the 0/1 label."""
    from sklearn.metrics import brier_score_loss

    return float(brier_score_loss(np.asarray(labels), np.asarray(probs, np.float64)))


def binary_logloss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood of the 0/1 labels under the predicted probabilities."""
    from sklearn.metrics import log_loss

    return float(log_loss(np.asarray(labels), np.asarray(probs, np.float64), labels=[0, 1]))


def reliability_table(labels: np.ndarray, probs: np.ndarray, n_bins: int) -> list[ReliabilityBin]:
    """Per equal-width bin of the predicted probability: count, mean prediction, frequency."""
    counts, prob_sums, label_sums = _binned(labels, probs, n_bins)
    return [
        ReliabilityBin(
            lower=rounded(b / n_bins),
            upper=rounded((b + 1) / n_bins),
            count=int(count),
            mean_predicted=rounded(prob_sums[b] / count) if count else None,
            observed_frequency=rounded(label_sums[b] / count) if count else None,
        )
        for b, count in enumerate(counts)
    ]


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int) -> float:
    """ECE over ``n_bins`` equal-width bins: ``sum_b n_b / N * |mean_p_b - freq_b|``.

    Args:
        labels: 0/1 outcomes.
        probs: Predicted probabilities of class 1, in ``[0, 1]``.
        n_bins: Number of equal-width bins over ``[0, 1]``; 1.0 falls in the last bin.

    Returns:
        The ECE in ``[0, 1]``; 0.0 for no rows.
    """
    if len(probs) == 0:
        return 0.0
    counts, prob_sums, label_sums = _binned(labels, probs, n_bins)
    # |sum_p - sum_y| / N per bin is n_b / N * |mean_p - freq| without dividing by empty bins.
    return float(np.abs(prob_sums - label_sums).sum() / counts.sum())


def refuse_non_binary(manifest: CaptureManifest) -> None:
    """Raise unless the capture's task is one s27 judges (:data:`CALIBRATION_TASKS`).

    Raises:
        DiagInputError: the capture's task is multiclass or regression.
    """
    if manifest.task not in CALIBRATION_TASKS:
        raise DiagInputError(
            f"s27 judges the calibration of binary probabilities, but the capture of "
            f"{manifest.cell_ref} is a {manifest.task} task.",
            "leave s27 out of the audit for this recipe (it applies to the tasks in "
            "CALIBRATION_TASKS: binary).",
        )


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
        DiagInputError: the capture's task is not binary (:data:`CALIBRATION_TASKS`).
        LookupError: no anchor was given (use :func:`s27_without_anchor` then).
        ValueError: the anchor was computed on a different capture.
    """
    started = time.perf_counter()
    settings = settings or CalibrationSettings()
    manifest = view.manifest
    refuse_non_binary(manifest)
    anchor = view.anchor
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
        base_rate=rounded(labels.mean()),
        mean_predicted=rounded(probs.mean()),
        brier=rounded(brier_score(labels, probs)),
        ece=rounded(ece),
        logloss=rounded(binary_logloss(labels, probs)),
        n_bins=settings.n_bins,
        reliability=reliability_table(labels, probs, settings.n_bins),
        anchor_best_iter=anchor.best_iter,
        anchor_best_score=rounded(anchor.best_score),
        refit_best_score=rounded(refit_score),
        reproduces_anchor=reproduces,
    )
    summary = (
        f"anchor trial {anchor.trial} refit for {anchor.best_iter} rounds: ECE {ece:.4f} "
        f"{'<=' if calibration is CalibrationStatus.WELL_CALIBRATED else '>'} "
        f"{settings.ece_threshold}, {calibration.value}."
    )
    problem = (
        None
        if reproduces
        else f"the refit's validation loss {refit_score:.9f} differs from the anchor's "
        f"{anchor.best_score:.9f}: the model judged is not the anchor's."
    )
    decision = certify(
        capture_mode=manifest.mode, anchor=AnchorUse.USED, problem=problem, finding=summary
    )
    return S27Verdict(
        cell_ref=manifest.cell_ref,
        calibration=calibration,
        figures=figures,
        settings=settings,
        anchor_available=True,
        anchor_hash=anchor.content_hash(),
        certification=decision.certification,
        certification_reason=decision.reason,
        capture_key=manifest.capture_key,
        capture_content_hash=manifest.content_hash,
        x_hash=manifest.x_hash,
        y_hash=manifest.y_hash,
        elapsed_s=round(time.perf_counter() - started, 6),
    )


def s27_without_anchor(
    captured: CapturedFold, settings: CalibrationSettings | None = None
) -> S27Verdict:
    """The s27 verdict when the s22a1 anchor was skipped: DOWNGRADED, no figures, no claim.

    Raises:
        DiagInputError: the capture's task is not binary (:data:`CALIBRATION_TASKS`).
    """
    manifest = captured.manifest
    refuse_non_binary(manifest)
    decision = certify(
        capture_mode=manifest.mode, anchor=AnchorUse.SKIPPED, without_anchor=WITHOUT_ANCHOR
    )
    return S27Verdict(
        cell_ref=manifest.cell_ref,
        calibration=None,
        figures=None,
        settings=settings or CalibrationSettings(),
        anchor_available=False,
        anchor_hash=None,
        certification=decision.certification,
        certification_reason=decision.reason,
        capture_key=manifest.capture_key,
        capture_content_hash=manifest.content_hash,
        x_hash=manifest.x_hash,
        y_hash=manifest.y_hash,
        elapsed_s=0.0,
    )
