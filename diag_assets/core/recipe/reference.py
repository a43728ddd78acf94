"""The reference recipe: prep once upstream of the loop, then seeded LightGBM trials."""

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from diag_assets.core.folds import Fold
from diag_assets.core.hashing.digests import combine_digests
from diag_assets.core.hashing.table import canonical_hash
from diag_assets.core.recipe.prep import LOOKBACK_BARS, FoldData, PrepSettings, prepare_fold
from diag_assets.core.recipe.protocol import TrialLog, TrialObserver, TrialRecord, TrialSettings
from diag_assets.core.recipe.tasks import TaskKind, task_spec
from diag_assets.core.recipe.training import fit_booster


def draw_params(rng: np.random.Generator) -> dict[str, float | int]:
    """One draw from the reference search space."""
    return {
        "num_leaves": int(rng.integers(7, 64)),
        "learning_rate": float(math.exp(rng.uniform(math.log(0.01), math.log(0.2)))),
        "min_data_in_leaf": int(rng.integers(20, 201)),
        "feature_fraction": round(float(rng.uniform(0.6, 1.0)), 6),
        "bagging_fraction": round(float(rng.uniform(0.6, 1.0)), 6),
        "bagging_freq": 1,
        "lambda_l2": float(math.exp(rng.uniform(math.log(1e-3), math.log(10.0)))),
    }


def xy_hash(data: FoldData) -> str:
    """Canonical hash of a fold's X/y together with its train/validation split."""
    return combine_digests(
        "fold-xy",
        canonical_hash(data.X).digest,
        canonical_hash(data.y).digest,
        str(data.n_train),
    )


class ReferenceRecipe:
    """Prep once upstream of the loop, then N seeded LightGBM trials on the frozen X/y."""

    name = "reference"
    version = "1"
    task = TaskKind.BINARY
    lookback_bars = LOOKBACK_BARS

    def __init__(
        self, prep_settings: PrepSettings | None = None, *, dead_zone_sigma: float | None = None
    ) -> None:
        if prep_settings is not None and dead_zone_sigma is not None:
            raise TypeError("give either prep_settings or dead_zone_sigma, not both")
        if dead_zone_sigma is not None:
            prep_settings = PrepSettings(dead_zone_sigma=float(dead_zone_sigma))
        self.prep_settings = prep_settings or PrepSettings()

    def parameters(self) -> Mapping[str, Any]:
        """The prep settings (``dead_zone_sigma``), as an audit's ``recipe_params`` give them."""
        return dataclasses.asdict(self.prep_settings)

    def prep(self, bars: pd.DataFrame, fold: Fold) -> FoldData:
        """Build the fold's features and labels (see :mod:`diag_assets.core.recipe.prep`)."""
        return prepare_fold(bars, fold, self.prep_settings)

    def run_trials(
        self, data: FoldData, settings: TrialSettings, observer: TrialObserver | None = None
    ) -> TrialLog:
        """Run ``settings.n_trials`` trials; each trial's params come from its own seeded RNG."""
        records = []
        for trial in range(settings.n_trials):
            if observer is not None:
                observer(trial, data)
            records.append(fit_trial(trial, data, settings, task=self.task))
        return TrialLog(metric=task_spec(self.task).metric, trials=records)


def fit_trial(
    trial: int, data: FoldData, settings: TrialSettings, task: TaskKind = TaskKind.BINARY
) -> TrialRecord:
    """One trial of the reference search: its own seeded params, fitted on ``data`` for ``task``.

    A recipe that keeps the reference search but another label (a subclass declaring another
    task) gets the task's objective and loss. The X/y hash is taken from what this trial
    receives, so the log can prove (or disprove) that every trial trained on the same X/y.
    """
    x_train, y_train, x_val, y_val = data.split()
    trial_xy_hash = xy_hash(data)
    params = draw_params(np.random.default_rng([settings.seed, trial]))
    started = time.perf_counter()
    fit = fit_booster(
        params,
        x_train,
        y_train,
        x_val,
        y_val,
        num_rounds=settings.max_rounds,
        early_stopping_rounds=settings.early_stopping_rounds,
        num_threads=settings.num_threads,
        seed=settings.seed * 1_000 + trial,
        task=task,
    )
    return TrialRecord(
        trial=trial,
        params=params,
        best_iter=fit.best_iter,
        best_score=fit.best_score,
        curve=fit.curve,
        elapsed_s=round(time.perf_counter() - started, 6),
        xy_hash=trial_xy_hash,
    )
