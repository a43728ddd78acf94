"""s22a2, trial spread: does the best trial stand out from the spread of all trials?

It reads the trial log only (``trial_dynamics``) and fits nothing. Registered with
:func:`~diag_assets.core.diagnostics.consumers.diagnostic`, it is called with a
:class:`~diag_assets.core.capture.replay.CapturedFold` and receives a guarded
:class:`~diag_assets.core.diagnostics.consumers.CaptureView`; a reduced capture is refused
before it runs.
"""

import time
from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.diagnostics.certification import AnchorUse, certify
from diag_assets.core.diagnostics.consumers import CaptureRequirement, CaptureView, diagnostic
from diag_assets.core.diagnostics.verdicts import Verdict, rounded
from diag_assets.core.recipe.tasks import task_spec

# Scales a median absolute deviation to the standard deviation of a normal distribution.
MAD_TO_SIGMA = 1.4826
# Scales a mean absolute deviation likewise; the usual fallback when the MAD is 0 (Iglewicz &
# Hoaglin's modified z-score), because then at least half the trials tie at the median.
MEAN_AD_TO_SIGMA = 1.253314


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
    """The numbers behind an s22a2 verdict; scores are the validation loss (lower is better).

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


class S22a2Verdict(Verdict):
    """s22a2: does the best trial stand out from the spread of the trials?"""

    status: SpreadStatus
    stands_out: bool
    figures: SpreadFigures | None
    settings: SpreadSettings
    trial_log_hash: str

    @property
    def anchor_use(self) -> AnchorUse:
        """s22a2 reads the trial log, never the anchor."""
        return AnchorUse.NOT_NEEDED


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
        ValueError: the log's metric is not the validation loss of the capture's task
            (binary_logloss, multi_logloss or l2), so "lower is better" would not hold.
    """
    started = time.perf_counter()
    settings = settings or SpreadSettings()
    log = view.trial_log
    manifest = view.manifest
    expected = task_spec(manifest.task).metric
    if log.metric != expected:
        raise ValueError(
            f"s22a2 of {manifest.cell_ref}: the trial log's metric is {log.metric!r}; s22a2 "
            f"reads best_score as the {manifest.task} task's validation loss {expected} "
            "(lower is better)."
        )

    def verdict(
        status: SpreadStatus,
        figures: SpreadFigures | None,
        *,
        finding: str = "",
        problem: str | None = None,
    ) -> S22a2Verdict:
        decision = certify(
            capture_mode=manifest.mode,
            anchor=AnchorUse.NOT_NEEDED,
            problem=problem,
            finding=finding,
        )
        return S22a2Verdict(
            cell_ref=manifest.cell_ref,
            status=status,
            stands_out=status is SpreadStatus.STANDS_OUT,
            figures=figures,
            settings=settings,
            certification=decision.certification,
            certification_reason=decision.reason,
            capture_key=manifest.capture_key,
            capture_content_hash=manifest.content_hash,
            trial_log_hash=log.content_hash(),
            elapsed_s=round(time.perf_counter() - started, 6),
        )

    if not log.trials:
        return verdict(SpreadStatus.TOO_FEW_TRIALS, None, problem="the trial log holds no trials.")
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
        best_score=rounded(best.best_score),
        median_score=rounded(median),
        p25_score=rounded(p25),
        p75_score=rounded(p75),
        iqr_score=rounded(p75 - p25),
        mad_score=rounded(mad),
        scale=scale,
        robust_z=rounded(z) if enough else None,
        best_iter_min=int(iters.min()),
        best_iter_median=rounded(float(np.median(iters))),
        best_iter_max=int(iters.max()),
        share_best_iter_1=rounded(float(np.mean(iters == 1))),
    )
    if not enough:
        return verdict(
            SpreadStatus.TOO_FEW_TRIALS,
            figures,
            finding=f"{len(scores)} trial(s), fewer than the {settings.min_trials} needed to "
            "judge the spread.",
        )
    status = SpreadStatus.STANDS_OUT if z >= settings.z_threshold else SpreadStatus.WITHIN_SPREAD
    finding = (
        f"best trial {best.trial}: robust z {z:.3g} ({scale.value} scale) "
        f"{'>=' if status is SpreadStatus.STANDS_OUT else '<'} {settings.z_threshold} over "
        f"{len(scores)} trials."
    )
    return verdict(status, figures, finding=finding)
