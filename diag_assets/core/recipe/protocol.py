"""The recipe: the team's fine-tune as code, replayed to recover a fold's X/y and trial log.

A recipe has two parts (:class:`Recipe`): ``prep`` turns the fold's bars into X/y, and
``run_trials`` runs a seeded search of LightGBM hyper-parameters on that X/y, with early
stopping on the fold's validation rows. In the reference recipe prep runs once, upstream of
the trial loop, and every trial receives the same frozen X/y; each trial records the
canonical hash of the X/y it trained on so that this can be proven after the fact.
"""

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.folds import Fold
from diag_assets.core.hashing.digests import hash_json
from diag_assets.core.recipe.prep import FoldData
from diag_assets.core.recipe.tasks import TaskKind


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
    """What the harness needs of a fine-tune to replay it: the recipe plug-in API.

    A recipe is a class, named in an audit by import path (``team_pkg.recipes:MyRecipe``) or by
    a name registered under the ``diag_harness.recipes`` entry point group, and built with the
    audit's ``recipe_params`` as keyword arguments. ``name`` and ``version`` label its
    captures; ``task`` says what its label is; :meth:`parameters` returns the parameters it
    was built with (JSON values), which are part of the capture key together with a hash of
    the recipe's package (:mod:`diag_assets.core.recipe.code_version`).

    ``prep`` must be deterministic: the same bars and fold give the same X/y. ``y`` has a
    ``label`` column (0/1 for binary, 0..K-1 for multiclass, a float for regression) and an
    ``open_time`` column (the open time of each row's bar). ``lookback_bars`` says how far
    back the features reach; prep keeps no row where ``fold.row_allowed()`` is False (its
    feature window or label spans a gap), and the harness checks that it did.
    ``run_trials`` runs the seeded search and returns the trial log; its ``metric`` is the
    validation loss each trial minimised (lower is better).
    """

    name: str
    version: str
    task: TaskKind
    # Bars before a row that its longest feature window reaches: a row is dropped when that
    # window, or its label horizon, spans a gap in the bars (diag_assets.core.window_gaps).
    lookback_bars: int

    def parameters(self) -> Mapping[str, Any]:
        """The parameters the recipe was built with; part of the capture key."""
        ...

    def prep(self, bars: pd.DataFrame, fold: Fold) -> FoldData:
        """Bars of the fold's window -> X/y."""
        ...

    def run_trials(
        self, data: FoldData, settings: TrialSettings, observer: TrialObserver | None = None
    ) -> TrialLog:
        """Run the seeded trial loop on ``data``; ``observer`` sees each trial's X/y first."""
        ...
