"""The one place that calls ``lightgbm.train``.

Trials, the s22a1 anchor and the s40 probe all fit through :func:`fit_booster`, so every fit
gets the same determinism settings and a replay can be instrumented at a single seam. The
objective and validation metric come from the fit's task
(:func:`~diag_assets.core.recipe.tasks.lightgbm_params`).
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from diag_assets.core.recipe.tasks import TaskKind, lightgbm_params, task_spec

if TYPE_CHECKING:
    import lightgbm as lgb

# The binary task's validation metric, which the reference recipe's trials minimise.
VALIDATION_METRIC = task_spec(TaskKind.BINARY).metric

# Fixed so that the same inputs give the same trees, curve and best_iter on every run:
# LightGBM is only reproducible with deterministic=True, a fixed thread count and a fixed
# histogram layout. The objective and metric are the task's.
DETERMINISM_PARAMS: dict[str, Any] = {
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}

# LightGBM's boolean parameters. A trial log stores parameters as numbers (True as 1), and
# LightGBM refuses 1 or 1.0 for these; they are handed back as booleans.
BOOLEAN_PARAMS = frozenset(
    {"extra_trees", "linear_tree", "xgboost_dart_mode", "uniform_drop", "boost_from_average"}
)


def lightgbm_ready(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the boolean ones (stored as 0/1 in a trial log) as booleans."""
    return {k: bool(v) if k in BOOLEAN_PARAMS else v for k, v in params.items()}


def _full_params(
    params: dict[str, Any], objective: dict[str, Any], *, num_threads: int, seed: int
) -> dict[str, Any]:
    """What ``lightgbm.train`` is given: the fit's params, the task's and the determinism's."""
    return {
        **lightgbm_ready(params),
        **objective,
        **DETERMINISM_PARAMS,
        "num_threads": num_threads,
        "seed": seed,
    }


@dataclass(frozen=True)
class FitResult:
    """What one fit tells an audit."""

    booster: "lgb.Booster"
    best_iter: int
    best_score: float
    curve: list[float]
    elapsed_s: float


def fit_booster(
    params: dict[str, Any],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    num_rounds: int,
    early_stopping_rounds: int | None,
    num_threads: int,
    seed: int,
    track_validation: bool = True,
    task: TaskKind = TaskKind.BINARY,
) -> FitResult:
    """Fit a LightGBM model of ``task``, tracking the task's validation loss every round.

    The loss is binary log-loss, multiclass log-loss (``num_class`` is the largest label + 1)
    or l2 for regression.
    ``best_iter`` is the 1-based round with the lowest validation loss (LightGBM's own count);
    without early stopping it is still the best round of the recorded curve. With
    ``track_validation=False`` (no early stopping allowed) the validation rows are not
    evaluated each round: the curve is empty, ``best_iter`` is ``num_rounds`` and
    ``best_score`` is NaN. A caller that only needs the final model's predictions saves
    most of the fit's time that way.

    Raises:
        DiagInputError: a multiclass class has no training row.
    """
    # Imported here, not at module load: a code location loads without paying for LightGBM.
    # The replay trace patches the module's attributes, which this still reaches.
    import lightgbm as lgb

    objective = lightgbm_params(task, y_train, y_val)
    full_params = _full_params(params, objective, num_threads=num_threads, seed=seed)
    train_set = lgb.Dataset(x_train, label=y_train, free_raw_data=False)
    if not track_validation:
        if early_stopping_rounds:
            raise ValueError("Early stopping needs the validation curve (track_validation).")
        started = time.perf_counter()
        booster = lgb.train(full_params, train_set, num_boost_round=num_rounds)
        return FitResult(
            booster=booster,
            best_iter=num_rounds,
            best_score=math.nan,
            curve=[],
            elapsed_s=time.perf_counter() - started,
        )
    valid_set = lgb.Dataset(x_val, label=y_val, reference=train_set, free_raw_data=False)
    history: dict[str, Any] = {}
    callbacks: list[Any] = [lgb.record_evaluation(history)]
    if early_stopping_rounds:
        callbacks.append(lgb.early_stopping(early_stopping_rounds, verbose=False))
    started = time.perf_counter()
    booster = lgb.train(
        full_params,
        train_set,
        num_boost_round=num_rounds,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=callbacks,
    )
    elapsed = time.perf_counter() - started
    curve = [float(v) for v in history["validation"][objective["metric"]]]
    best_iter = int(np.argmin(curve)) + 1
    return FitResult(
        booster=booster,
        best_iter=best_iter,
        best_score=curve[best_iter - 1],
        curve=curve,
        elapsed_s=elapsed,
    )


def relabelled_fits(
    params: dict[str, Any],
    x_train: np.ndarray,
    y_train: np.ndarray,
    y_val: np.ndarray,
    *,
    num_rounds: int,
    num_threads: int,
    task: TaskKind = TaskKind.BINARY,
) -> Callable[[np.ndarray, int], "lgb.Booster"]:
    """A fitter of ``x_train`` on any label vector, binning ``x_train`` once for all of them.

    Building a LightGBM Dataset bins every feature, which costs about as much as a short
    fit. LightGBM's bins depend on the feature values only, so a caller that fits the same
    rows on many label vectors (the s40 probe: the real labels, then each permutation) builds
    the Dataset once and swaps the labels in with ``set_label``. ``fit(labels, seed)`` gives
    the same model as :func:`fit_booster` with ``track_validation=False`` on those labels
    and that seed. The objective (``num_class`` for multiclass) is read off ``y_train`` and
    ``y_val``, so ``labels`` must hold the same classes as ``y_train`` (a permutation does).

    Raises:
        DiagInputError: a multiclass class has no training row.
    """
    import lightgbm as lgb  # at call time, as in fit_booster

    objective = lightgbm_params(task, y_train, y_val)
    train_set = lgb.Dataset(
        x_train,
        label=y_train,
        params=_full_params(params, objective, num_threads=num_threads, seed=0),
        free_raw_data=False,
    ).construct()

    def fit(labels: np.ndarray, seed: int) -> "lgb.Booster":
        train_set.set_label(labels)
        full_params = _full_params(params, objective, num_threads=num_threads, seed=seed)
        return lgb.train(full_params, train_set, num_boost_round=num_rounds)

    return fit
