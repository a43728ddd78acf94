"""The one place that calls ``lightgbm.train``.

Trials, the s22a1 anchor and the s40 probe all fit through :func:`fit_booster`, so every fit
gets the same determinism settings and a replay can be instrumented at a single seam.
"""

import math
import time
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

VALIDATION_METRIC = "binary_logloss"

# Fixed so that the same inputs give the same trees, curve and best_iter on every run:
# LightGBM is only reproducible with deterministic=True, a fixed thread count and a fixed
# histogram layout.
DETERMINISM_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": VALIDATION_METRIC,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}


@dataclass(frozen=True)
class FitResult:
    """What one fit tells an audit."""

    booster: lgb.Booster
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
) -> FitResult:
    """Fit a binary LightGBM model, tracking the validation log-loss every round.

    ``best_iter`` is the 1-based round with the lowest validation loss (LightGBM's own count);
    without early stopping it is still the best round of the recorded curve. With
    ``track_validation=False`` (no early stopping allowed) the validation rows are not
    evaluated each round: the curve is empty, ``best_iter`` is ``num_rounds`` and
    ``best_score`` is NaN. A caller that only needs the final model's predictions saves
    most of the fit's time that way.
    """
    full_params = {**params, **DETERMINISM_PARAMS, "num_threads": num_threads, "seed": seed}
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
    curve = [float(v) for v in history["validation"][VALIDATION_METRIC]]
    best_iter = int(np.argmin(curve)) + 1
    return FitResult(
        booster=booster,
        best_iter=best_iter,
        best_score=curve[best_iter - 1],
        curve=curve,
        elapsed_s=elapsed,
    )
