"""The recipe: the team's fine-tune as code, replayed to recover a fold's X/y and trial log.

A recipe has two parts (:class:`Recipe`): ``prep`` turns the fold's bars into X/y, and
``run_trials`` runs a seeded search of LightGBM hyper-parameters on that X/y, with early
stopping on the fold's validation rows. In the reference recipe prep runs once, upstream of
the trial loop, and every trial receives the same frozen X/y; each trial records the
canonical hash of the X/y it trained on so that this can be proven after the fact.
"""

import dataclasses
import inspect
import math
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core import prep as prep_module
from diag_assets.core import training as training_module
from diag_assets.core.folds import Fold
from diag_assets.core.hashing import canonical_hash, combine_digests, hash_json
from diag_assets.core.prep import FoldData, PrepSettings, prepare_fold
from diag_assets.core.training import VALIDATION_METRIC, fit_booster


class TrialSettings(BaseModel):
    """How the trial loop searches; every field is part of the capture key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_trials: int = Field(default=8, ge=1, le=500, description="Hyper-parameter trials to run.")
    seed: int = Field(default=0, ge=0, description="Seed of the parameter draws and the fits.")
    max_rounds: int = Field(default=300, ge=1, le=5_000, description="Boosting rounds per trial.")
    early_stopping_rounds: int = Field(
        default=30, ge=1, description="Stop a trial after this many rounds without improvement."
    )
    num_threads: int = Field(
        default=2, ge=1, le=64, description="LightGBM threads; fixed so fits are reproducible."
    )


class TrialRecord(BaseModel):
    """One trial of the search."""

    model_config = ConfigDict(frozen=True)

    trial: int
    params: dict[str, float | int]
    best_iter: int
    best_score: float
    curve: list[float]
    elapsed_s: float
    xy_hash: str


class TrialLog(BaseModel):
    """The trials of one replay, in order. ``best_trial`` has the lowest validation loss."""

    model_config = ConfigDict(frozen=True)

    metric: str
    trials: list[TrialRecord]

    @property
    def best_trial(self) -> TrialRecord:
        """The trial with the lowest best validation loss (the first one on a tie)."""
        return min(self.trials, key=lambda t: (t.best_score, t.trial))

    def content_hash(self) -> str:
        """Hash of everything reproducible in the log; wall-clock timings are left out."""
        return hash_json(self.model_dump(exclude={"trials": {"__all__": {"elapsed_s"}}}))

    @property
    def elapsed_s(self) -> float:
        """Total training time over all trials."""
        return sum(t.elapsed_s for t in self.trials)


TrialObserver = Callable[[int, FoldData], None]


class Recipe(Protocol):
    """What the harness needs of a fine-tune to replay it."""

    name: str
    version: str

    def prep(self, bars: pd.DataFrame, fold: Fold) -> FoldData:
        """Bars of the fold's window -> X/y."""
        ...

    def run_trials(
        self, data: FoldData, settings: TrialSettings, observer: TrialObserver | None = None
    ) -> TrialLog:
        """Run the seeded trial loop on ``data``; ``observer`` sees each trial's X/y first."""
        ...


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

    def __init__(self, prep_settings: PrepSettings | None = None) -> None:
        self.prep_settings = prep_settings or PrepSettings()

    def prep(self, bars: pd.DataFrame, fold: Fold) -> FoldData:
        """Build the fold's features and labels (see :mod:`diag_assets.core.prep`)."""
        return prepare_fold(bars, fold, self.prep_settings)

    def run_trials(
        self, data: FoldData, settings: TrialSettings, observer: TrialObserver | None = None
    ) -> TrialLog:
        """Run ``settings.n_trials`` trials; each trial's params come from its own seeded RNG."""
        records = []
        for trial in range(settings.n_trials):
            if observer is not None:
                observer(trial, data)
            records.append(fit_trial(trial, data, settings))
        return TrialLog(metric=VALIDATION_METRIC, trials=records)


def fit_trial(trial: int, data: FoldData, settings: TrialSettings) -> TrialRecord:
    """One trial of the reference search: its own seeded params, fitted on ``data``.

    The X/y hash is taken from what this trial receives, so the log can prove (or disprove)
    that every trial trained on the same X/y.
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


def recipe_code_version(recipe: Any) -> str:
    """The recipe's declared version plus a hash of its code and its prep settings.

    The code is the source of the recipe's module and of the prep and training modules it
    runs, so a change there changes this value even when nobody bumped ``version``; the prep
    settings (e.g. the dead zone) change X/y, so they count too.
    """
    # Whole modules, not just the recipe class: the trial body and the search space live
    # beside it (fit_trial, draw_params). Module source comes from linecache; a class's
    # source would need an AST parse, which CPython 3.11 does not make thread-safe.
    modules = [prep_module, training_module, sys.modules[__name__]]
    recipe_module = inspect.getmodule(type(recipe))
    if recipe_module is not None and recipe_module not in modules:
        modules.append(recipe_module)
    settings = getattr(recipe, "prep_settings", None)
    payload = {
        "sources": [inspect.getsource(module) for module in modules],
        "prep_settings": dataclasses.asdict(settings)
        if dataclasses.is_dataclass(settings) and not isinstance(settings, type)
        else None,
    }
    return f"{recipe.name}-v{recipe.version}-{hash_json(payload)[:16]}"
