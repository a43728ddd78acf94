"""importance_stability: do the best trials agree on which features matter?

The best ``top_trials`` trials of the trial log (lowest validation loss) are re-fitted on the
captured training rows, each with its own parameters and seed for its ``best_iter`` rounds,
and their gain importances are ranked. The verdict is STABLE when the mean pairwise Spearman
correlation of those importances reaches ``min_rank_correlation``: the search found one
story about the features, not several equally good ones.

It reads the trial log (``trial_dynamics``), so it is refused a dataset_only capture, and
never the s22a1 anchor. The objective of the re-fits follows the capture's task (regression
or binary), so it runs on the reference recipe's captures too.
"""

import itertools
import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
from diag_assets.core.diagnostics.certification import AnchorUse, certify
from diag_assets.core.diagnostics.consumers import CaptureRequirement, CaptureView
from diag_assets.core.diagnostics.plugin import Diagnostic
from diag_assets.core.diagnostics.verdicts import AnchorResult, Verdict, rounded
from diag_assets.core.recipe.prep import FoldData
from diag_assets.core.recipe.protocol import TrialRecord
from diag_assets.core.recipe.tasks import TaskKind, task_spec
from diag_assets.core.recipe.training import fit_booster
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import rankdata, spearmanr

from forward_returns.recipe import trial_seed


class StabilitySettings(BaseModel):
    """Which trials are compared, and when their importances count as agreeing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    top_trials: int = Field(
        default=5, ge=2, le=100, description="Best trials compared; fewer: TOO_FEW_TRIALS."
    )
    max_rounds: int = Field(
        default=300, ge=1, le=5_000, description="Cap on each re-fit's rounds (its best_iter)."
    )
    min_rank_correlation: float = Field(
        default=0.5, ge=-1.0, le=1.0, description="STABLE when the mean Spearman >= this."
    )
    num_threads: int = Field(default=2, ge=1, le=64, description="LightGBM threads.")


class StabilityStatus(StrEnum):
    """Outcome of importance_stability."""

    STABLE = "STABLE"
    UNSTABLE = "UNSTABLE"
    TOO_FEW_TRIALS = "TOO_FEW_TRIALS"


class StabilityFigures(BaseModel):
    """The numbers behind the verdict.

    ``mean_rank`` is each feature's rank by gain (1 = largest, ties averaged) averaged over
    the compared trials, smallest first. ``unranked_trials`` are compared trials whose
    re-fit made no split (all gains equal), so they rank nothing and are left out of the
    pairs; the correlations are ``None`` when fewer than two trials remain.
    """

    model_config = ConfigDict(frozen=True)

    task: TaskKind
    objective: str
    trials_used: list[int]
    rounds: list[int]
    unranked_trials: list[int]
    pairs: int
    mean_rank_correlation: float | None
    min_pair_correlation: float | None
    mean_rank: dict[str, float]
    top_feature: str | None


class ImportanceStabilityVerdict(Verdict):
    """importance_stability: do the best trials rank the features alike?"""

    status: StabilityStatus
    stable: bool
    figures: StabilityFigures | None
    settings: StabilitySettings
    trial_log_hash: str


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two importance vectors (scipy's)."""
    result: Any = spearmanr(a, b)  # scipy's result type is not annotated
    return float(result.statistic)


def refit(
    data: FoldData,
    trial: TrialRecord,
    task: TaskKind,
    *,
    seed: int,
    max_rounds: int,
    num_threads: int,
) -> lgb.Booster:
    """Re-fit ``trial`` on the training rows for its ``best_iter`` rounds, at most ``max_rounds``.

    With the trial's parameters and seed this is the trial's model at its best round.
    """
    x_train, y_train, x_val, y_val = data.split()
    fit = fit_booster(
        dict(trial.params),
        x_train,
        y_train,
        x_val,
        y_val,
        num_rounds=min(trial.best_iter, max_rounds),
        early_stopping_rounds=None,
        num_threads=num_threads,
        seed=trial_seed(seed, trial.trial),
        track_validation=False,
        task=task,
    )
    return fit.booster


class ImportanceStability(Diagnostic):
    """Agreement of the best trials' gain importances (see the module docstring)."""

    name = "importance_stability"
    requirement = CaptureRequirement.TRIAL_DYNAMICS
    reads_anchor = False
    result_model = ImportanceStabilityVerdict
    settings_model = StabilitySettings
    tasks: ClassVar[frozenset[TaskKind]] = frozenset({TaskKind.REGRESSION, TaskKind.BINARY})
    kinds: ClassVar[frozenset[str]] = frozenset({"lightgbm"})
    description = "Mean pairwise Spearman correlation of the best trials' gain importances."

    def run(
        self, view: CaptureView, settings: Any, anchor: AnchorResult | None
    ) -> ImportanceStabilityVerdict:
        """Re-fit the best trials and compare their feature rankings."""
        started = time.perf_counter()
        settings = StabilitySettings() if settings is None else settings
        if not isinstance(settings, StabilitySettings):
            raise TypeError(f"{self.name} takes StabilitySettings, not {type(settings).__name__}.")
        manifest = view.manifest
        log = view.trial_log

        def verdict(
            status: StabilityStatus,
            figures: StabilityFigures | None,
            finding: str,
            problem: str | None = None,
        ) -> ImportanceStabilityVerdict:
            decision = certify(
                capture_mode=manifest.mode,
                anchor=AnchorUse.NOT_NEEDED,
                problem=problem,
                finding=finding,
            )
            return ImportanceStabilityVerdict(
                cell_ref=manifest.cell_ref,
                status=status,
                stable=status is StabilityStatus.STABLE,
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
            return verdict(StabilityStatus.TOO_FEW_TRIALS, None, "", "the trial log is empty.")
        if len(log.trials) < settings.top_trials:
            return verdict(
                StabilityStatus.TOO_FEW_TRIALS,
                None,
                f"The trial log holds {len(log.trials)} trials; {settings.top_trials} are "
                "compared (top_trials).",
            )
        best = sorted(log.trials, key=lambda t: (t.best_score, t.trial))[: settings.top_trials]
        boosters = [
            refit(
                view.data,
                trial,
                manifest.task,
                seed=manifest.config.trials.seed,
                max_rounds=settings.max_rounds,
                num_threads=settings.num_threads,
            )
            for trial in best
        ]
        gains = [b.feature_importance(importance_type="gain").astype(np.float64) for b in boosters]
        ranked = [g for g in gains if np.ptp(g) > 0]
        correlations = [spearman(a, b) for a, b in itertools.combinations(ranked, 2)]
        mean_rank: dict[str, float] = {}
        if ranked:
            ranks = np.mean([rankdata(-g, method="average") for g in ranked], axis=0)
            by_rank = sorted(zip(ranks, view.data.X.columns, strict=True))
            mean_rank = {str(name): rounded(rank) for rank, name in by_rank}
        mean_correlation = rounded(float(np.mean(correlations))) if correlations else None
        figures = StabilityFigures(
            task=manifest.task,
            objective=task_spec(manifest.task).objective,
            trials_used=[t.trial for t in best],
            rounds=[b.current_iteration() for b in boosters],
            unranked_trials=[t.trial for t, g in zip(best, gains, strict=True) if np.ptp(g) == 0],
            pairs=len(correlations),
            mean_rank_correlation=mean_correlation,
            min_pair_correlation=rounded(min(correlations)) if correlations else None,
            mean_rank=mean_rank,
            top_feature=next(iter(mean_rank), None),
        )
        if mean_correlation is None:
            return verdict(
                StabilityStatus.TOO_FEW_TRIALS,
                figures,
                f"Fewer than two of the best {len(best)} trials made a split; nothing to compare.",
            )
        status = (
            StabilityStatus.STABLE
            if mean_correlation >= settings.min_rank_correlation
            else StabilityStatus.UNSTABLE
        )
        return verdict(
            status,
            figures,
            f"The best {len(ranked)} trials' gain importances have a mean pairwise Spearman "
            f"correlation of {mean_correlation:.3f} "
            f"({'at least' if status is StabilityStatus.STABLE else 'below'} "
            f"{settings.min_rank_correlation}); top feature {figures.top_feature}.",
        )

    def finding(self, result: BaseModel) -> str:
        """The status, with the mean rank correlation when there is one."""
        verdict = _verdict(result)
        figures = verdict.figures
        if figures is None or figures.mean_rank_correlation is None:
            return str(verdict.status)
        return f"{verdict.status} (mean Spearman {figures.mean_rank_correlation:.3f})"

    def figures(self, result: BaseModel) -> Mapping[str, float | int | str | None]:
        """Mean and worst pairwise correlation, trials compared, top feature."""
        figures = _verdict(result).figures
        if figures is None:
            return {"trials_used": 0}
        return {
            "mean_rank_correlation": figures.mean_rank_correlation,
            "min_pair_correlation": figures.min_pair_correlation,
            "trials_used": len(figures.trials_used),
            "top_feature": figures.top_feature,
        }


def _verdict(result: BaseModel) -> ImportanceStabilityVerdict:
    if not isinstance(result, ImportanceStabilityVerdict):
        raise TypeError(f"Not an importance_stability verdict: {type(result).__name__}.")
    return result
