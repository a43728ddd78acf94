"""The forward-returns recipe: regress the log return ``horizon`` bars ahead on causal features.

Prep builds X from :mod:`forward_returns.features` and the label from the forward log return,
clipped at ``clip_sigma`` times its standard deviation over the training rows (the
validation rows never set the clip). Rows are split at the fold's boundaries as the
harness's reference prep splits them. The trial loop runs a seeded search of its own over
LightGBM regression parameters, with early stopping on the validation l2.
"""

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import Fold
from diag_assets.core.recipe.prep import MIN_TRAIN_ROWS, MIN_VALIDATION_ROWS, FoldData
from diag_assets.core.recipe.protocol import TrialLog, TrialObserver, TrialRecord, TrialSettings
from diag_assets.core.recipe.reference import xy_hash
from diag_assets.core.recipe.tasks import TaskKind
from diag_assets.core.recipe.training import fit_booster

from forward_returns.features import (
    FEATURE_NAMES,
    LOOKBACK_BARS,
    build_features,
    forward_log_return,
)

METRIC = "l2"
MAX_HORIZON = 168


def draw_params(rng: np.random.Generator) -> dict[str, float | int]:
    """One draw from the recipe's search space (``extra_trees`` as 0/1).

    ``lambda_l1`` stays small because it shrinks sums of residuals, and a residual here is a
    log return of about 1e-2.
    """
    return {
        "num_leaves": int(rng.integers(4, 33)),
        "learning_rate": float(math.exp(rng.uniform(math.log(0.02), math.log(0.3)))),
        "min_data_in_leaf": int(rng.integers(10, 101)),
        "lambda_l1": float(math.exp(rng.uniform(math.log(1e-4), math.log(0.1)))),
        "extra_trees": int(rng.integers(0, 2)),
        "feature_fraction": round(float(rng.uniform(0.5, 1.0)), 6),
    }


def trial_seed(seed: int, trial: int) -> int:
    """LightGBM's seed for a trial: the reference recipe's, which the anchor also uses."""
    return seed * 1_000 + trial


class ForwardReturnsRecipe:
    """Forward log-return regression; see the module docstring."""

    name = "forward_returns"
    version = "1"
    task = TaskKind.REGRESSION
    lookback_bars = LOOKBACK_BARS

    def __init__(
        self, *, horizon: int = 6, clip_sigma: float = 5.0, extra_columns: Sequence[str] = ()
    ) -> None:
        """Check the parameters before any work.

        Raises:
            DiagInputError: ``horizon`` is not a whole number of bars in 1..168,
                ``clip_sigma`` is not a positive finite number, or ``extra_columns`` is not a
                list of distinct column names other than the recipe's own features.
        """
        if isinstance(horizon, bool) or not isinstance(horizon, int):
            raise DiagInputError(
                f"forward_returns: horizon={horizon!r} is not a whole number of bars.",
                f"set recipe_params horizon to an integer from 1 to {MAX_HORIZON}.",
            )
        if not 1 <= horizon <= MAX_HORIZON:
            raise DiagInputError(
                f"forward_returns: horizon={horizon} is outside 1..{MAX_HORIZON} bars.",
                f"set recipe_params horizon to an integer from 1 to {MAX_HORIZON}.",
            )
        if (
            isinstance(clip_sigma, bool)
            or not isinstance(clip_sigma, int | float)
            or not math.isfinite(clip_sigma)
            or clip_sigma <= 0
        ):
            raise DiagInputError(
                f"forward_returns: clip_sigma={clip_sigma!r} is not a positive finite number.",
                "set recipe_params clip_sigma to a number above 0, e.g. 5.0.",
            )
        if (
            isinstance(extra_columns, str)
            or not isinstance(extra_columns, Sequence)
            or not all(isinstance(c, str) for c in extra_columns)
        ):
            raise DiagInputError(
                f"forward_returns: extra_columns={extra_columns!r} is not a list of names.",
                "set recipe_params extra_columns to a list of column names, e.g. ['funding'].",
            )
        taken = {*FEATURE_NAMES, "date"}
        if len(set(extra_columns)) != len(extra_columns) or taken & set(extra_columns):
            raise DiagInputError(
                f"forward_returns: extra_columns={list(extra_columns)} repeats a name, or names "
                "the date or one of the recipe's own features.",
                "list each extra bar column once, and none of date, "
                + ", ".join(FEATURE_NAMES)
                + ".",
            )
        self.horizon = horizon
        self.clip_sigma = float(clip_sigma)
        self.extra_columns = tuple(extra_columns)

    def parameters(self) -> Mapping[str, Any]:
        """The parameters as an audit's ``recipe_params`` give them."""
        return {
            "horizon": self.horizon,
            "clip_sigma": self.clip_sigma,
            "extra_columns": list(self.extra_columns),
        }

    def prep(self, bars: pd.DataFrame, fold: Fold) -> FoldData:
        """The fold's bars -> X (causal features) and y (clipped forward log return).

        Training rows are bars in ``[0, train_end)`` whose label ends before ``val_start``;
        validation rows are bars in ``[val_start, val_end)``; warm-up rows, and rows the fold
        excludes for a gap in the bars (``fold.row_allowed()``), are dropped.

        Raises:
            DiagInputError: the bars do not cover the fold's window or lack an extra column,
                ``horizon`` is longer than the fold's ``label_horizon``, or too few rows
                remain.
        """
        self._check_inputs(bars, fold)
        window = bars.iloc[: fold.window_end].reset_index(drop=True)
        features = build_features(window, self.extra_columns)
        forward = forward_log_return(window["close"], self.horizon)
        position = np.arange(len(window))
        in_train = (position < fold.train_end) & (position + self.horizon < fold.val_start)
        in_validation = (position >= fold.val_start) & (position < fold.val_end)
        usable = (
            features.notna().all(axis=1).to_numpy()
            & np.isfinite(forward)
            & (in_train | in_validation)
            & fold.row_allowed()
        )
        keep = np.flatnonzero(usable)
        n_train = int(np.count_nonzero(in_train[keep]))
        n_validation = len(keep) - n_train
        if n_train < MIN_TRAIN_ROWS or n_validation < MIN_VALIDATION_ROWS:
            raise DiagInputError(
                f"forward_returns: fold {fold.index} keeps {n_train} training and "
                f"{n_validation} validation rows after warm-up; at least {MIN_TRAIN_ROWS} "
                f"and {MIN_VALIDATION_ROWS} are needed.",
                "use a longer history or a larger fold spec (min_train_bars, validation_bars).",
            )
        train_std = float(np.std(forward[keep[:n_train]]))
        if train_std == 0:
            raise DiagInputError(
                f"forward_returns: fold {fold.index}'s training labels are all equal.",
                "check the bars for a flat or constant price series.",
            )
        bound = self.clip_sigma * train_std
        X = features.iloc[keep].reset_index(drop=True)
        y = pd.DataFrame(
            {
                "open_time": window["date"].iloc[keep].reset_index(drop=True),
                "label": np.clip(forward[keep], -bound, bound),
            }
        )
        return FoldData(X=X, y=y, n_train=n_train, feature_names=tuple(X.columns))

    def _check_inputs(self, bars: pd.DataFrame, fold: Fold) -> None:
        if self.horizon > fold.label_horizon:
            raise DiagInputError(
                f"forward_returns: horizon={self.horizon} is longer than the fold spec's "
                f"label_horizon={fold.label_horizon}: training labels would reach past the "
                "purge gap into the validation block.",
                f"set the fold spec's label_horizon (and purge_bars) to at least {self.horizon}, "
                "or lower the recipe's horizon.",
            )
        if len(bars) < fold.window_end:
            raise DiagInputError(
                f"forward_returns: prep got {len(bars)} bars but fold {fold.index} needs "
                f"{fold.window_end}.",
                "pass the fold's whole window (bars[:fold.window_end]).",
            )
        missing = [c for c in self.extra_columns if c not in bars.columns]
        if missing:
            present = [c for c in bars.columns if c not in ("date", "open", "high", "low")]
            raise DiagInputError(
                f"forward_returns: the bars have no column {', '.join(missing)} (they have "
                f"{', '.join(map(str, present))}).",
                "drop it from recipe_params extra_columns, or use market data that passes it "
                "through.",
            )
        for column in self.extra_columns:
            if not pd.api.types.is_numeric_dtype(bars[column]):
                raise DiagInputError(
                    f"forward_returns: extra column {column!r} is {bars[column].dtype}, not "
                    "numeric.",
                    "pass only numeric bar columns in recipe_params extra_columns.",
                )

    def run_trials(
        self, data: FoldData, settings: TrialSettings, observer: TrialObserver | None = None
    ) -> TrialLog:
        """Run ``settings.n_trials`` trials, each with params from its own seeded RNG."""
        records = []
        for trial in range(settings.n_trials):
            if observer is not None:
                observer(trial, data)
            records.append(self._fit_trial(trial, data, settings))
        return TrialLog(metric=METRIC, trials=records)

    def _fit_trial(self, trial: int, data: FoldData, settings: TrialSettings) -> TrialRecord:
        trial_xy_hash = xy_hash(data)
        x_train, y_train, x_val, y_val = data.split()
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
            seed=trial_seed(settings.seed, trial),
            task=self.task,
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
