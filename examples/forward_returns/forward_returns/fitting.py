"""LightGBM fits of the recipe's trials and of the stability diagnostic's re-fits.

The harness's ``fit_booster`` fits binary models only, so the fits are made here, with the
harness's determinism settings and an objective and metric chosen by the task. They call
``lgb.train`` and build ``lgb.Dataset`` from the ``FoldData.split()`` arrays, which is what
the replay tracer and the prep/train seam gate recognise.
"""

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
from diag_assets.core.errors import DiagInputError
from diag_assets.core.recipe.tasks import TaskKind
from diag_assets.core.recipe.training import DETERMINISM_PARAMS

OBJECTIVES: dict[TaskKind, tuple[str, str]] = {
    TaskKind.REGRESSION: ("regression", "l2"),
    TaskKind.BINARY: ("binary", "binary_logloss"),
}

# A trial log stores parameters as numbers; LightGBM accepts only true/false for these.
BOOLEAN_PARAMS = frozenset({"extra_trees", "linear_tree", "xgboost_dart_mode", "uniform_drop"})


@dataclass(frozen=True)
class TrialFit:
    """A fit with early stopping: the model, its validation curve and its best round."""

    booster: lgb.Booster
    curve: list[float]
    best_iter: int
    best_score: float


def trial_seed(seed: int, trial: int) -> int:
    """LightGBM's seed for a trial: the reference recipe's scheme, so re-fits can match it."""
    return seed * 1_000 + trial


def lightgbm_params(
    params: dict[str, float | int], task: TaskKind, *, num_threads: int, seed: int
) -> dict[str, Any]:
    """A trial's parameters as ``lgb.train`` takes them, for ``task``.

    Raises:
        DiagInputError: no objective is defined here for ``task``.
    """
    if task not in OBJECTIVES:
        raise DiagInputError(
            f"No LightGBM objective is defined for the {task} task.",
            f"use a recipe whose task is one of {', '.join(OBJECTIVES)}.",
        )
    objective, metric = OBJECTIVES[task]
    converted = {k: bool(v) if k in BOOLEAN_PARAMS else v for k, v in params.items()}
    return {
        **converted,
        **DETERMINISM_PARAMS,
        "objective": objective,
        "metric": metric,
        "num_threads": num_threads,
        "seed": seed,
    }


def fit_with_early_stopping(
    params: dict[str, Any],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    num_rounds: int,
    early_stopping_rounds: int,
) -> TrialFit:
    """Fit ``params`` (from :func:`lightgbm_params`), tracking the validation metric."""
    train_set = lgb.Dataset(x_train, label=y_train, free_raw_data=False)
    valid_set = lgb.Dataset(x_val, label=y_val, reference=train_set, free_raw_data=False)
    history: dict[str, Any] = {}
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=num_rounds,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[
            lgb.record_evaluation(history),
            lgb.early_stopping(early_stopping_rounds, verbose=False),
        ],
    )
    curve = [float(v) for v in history["validation"][params["metric"]]]
    best_iter = int(np.argmin(curve)) + 1
    return TrialFit(booster, curve, best_iter, curve[best_iter - 1])


def fit_rounds(
    params: dict[str, Any], x_train: np.ndarray, y_train: np.ndarray, *, num_rounds: int
) -> lgb.Booster:
    """Fit ``params`` for exactly ``num_rounds`` rounds on the training rows alone."""
    train_set = lgb.Dataset(x_train, label=y_train, free_raw_data=False)
    return lgb.train(params, train_set, num_boost_round=num_rounds)
