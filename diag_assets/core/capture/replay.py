"""Replay a cell's recipe in the requested capture mode, in memory; nothing is stored."""

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from diag_assets.core.capture.keys import (
    capture_key,
    check_cell_universe,
    content_hash,
    library_versions,
)
from diag_assets.core.capture.manifest import CaptureManifest, ParityCheck
from diag_assets.core.capture.modes import CaptureConfig, CaptureMode
from diag_assets.core.capture.trace import ReplayTrace, tracing
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import Fold, FoldSpec, cut_fold
from diag_assets.core.hashing.table import canonical_hash
from diag_assets.core.market_data.sources import MarketDataSource
from diag_assets.core.recipe.code_version import recipe_code_version
from diag_assets.core.recipe.prep import FoldData
from diag_assets.core.recipe.protocol import Recipe, TrialLog, TrialSettings
from diag_assets.core.recipe.tasks import validate_labels
from diag_assets.core.window_gaps import WindowGaps, apply_window_gaps, find_window_gaps


class CaptureParityFailed(RuntimeError):
    """A dataset_only capture's X/y differ from what a full replay trains on."""

    code = "CAPTURE_PARITY_FAILED"

    def __init__(self, cell_ref: str, check: ParityCheck, x_hash: str, y_hash: str) -> None:
        self.check = check
        super().__init__(
            f"{self.code}: {cell_ref}: the dataset_only X/y (X {x_hash[:16]}, y {y_hash[:16]}) "
            f"differ from what full_replay trial {check.trial} trained on (X "
            f"{check.x_hash[:16]}, y {check.y_hash[:16]}, n_train {check.n_train}). The capture "
            "is not stored. dataset_only is unsound for this recipe until this is explained: "
            "audit with capture_mode full_replay and re-run the release parity gate."
        )


@dataclass(frozen=True)
class PreparedCell:
    """A cell whose inputs passed every check, ready to replay; nothing has been trained.

    ``fold`` carries the positions whose rows span a gap (``fold.excluded``); ``gaps`` says
    which gaps they are and what they cost.
    """

    cell: CellRef
    fold: Fold
    gaps: WindowGaps
    fold_spec: FoldSpec
    window: pd.DataFrame
    source: str
    source_version: str
    recipe_version: str
    config: CaptureConfig
    key: str


@dataclass(frozen=True)
class CapturedFold:
    """A replayed fold in memory: its X/y, trial log (none for dataset_only) and manifest.

    ``trace`` is the replay's trace when one was recorded (full_replay captures).
    """

    data: FoldData
    trial_log: TrialLog | None
    manifest: CaptureManifest
    trace: ReplayTrace | None = None

    @property
    def mode(self) -> CaptureMode:
        """The capture's mode."""
        return self.manifest.mode


def prepare_cell(
    cell: CellRef,
    source: MarketDataSource,
    fold_spec: FoldSpec,
    recipe: Recipe,
    config: CaptureConfig,
) -> PreparedCell:
    """Check the cell against its source and cut its window; cheap, trains nothing.

    Raises:
        DiagInputError: unknown universe or symbol, history too short for the fold, bars
            that fail validation (duplicate timestamps, all-NaN columns, ...), or a fold the
            gaps in its window refuse (:mod:`diag_assets.core.window_gaps`).
    """
    check_cell_universe(cell, source.universe)
    lookback = recipe_lookback(recipe)
    bars = source.load(cell.symbol)
    what = f"{cell.symbol} ({bars.source})"
    fold = cut_fold(fold_spec, cell.fold, bars.frame["date"], what=what)
    gaps = find_window_gaps(bars.frame["date"], bars.timeframe, fold, fold_spec, lookback)
    fold = apply_window_gaps(fold, gaps, fold_spec, what=what)
    window = bars.frame.iloc[: fold.window_end].reset_index(drop=True)
    source_version = canonical_hash(window).digest
    version = recipe_code_version(recipe)
    key = capture_key(cell, source_version, version, fold_spec, config)
    return PreparedCell(
        cell=cell,
        fold=fold,
        gaps=gaps,
        fold_spec=fold_spec,
        window=window,
        source=bars.source,
        source_version=source_version,
        recipe_version=version,
        config=config,
        key=key,
    )


def replay_cell(
    prepared: PreparedCell, recipe: Recipe, *, check_parity: bool = False
) -> CapturedFold:
    """Run the prepared cell's capture mode.

    ``full_replay`` runs prep, then the trial loop, under a replay tracer: the capture keeps
    the trace, from which trial invariance and the prep/train seam can be judged later.
    ``single_fit`` runs prep, then trial 0 alone; ``dataset_only`` runs prep and trains
    nothing. With ``check_parity`` a ``dataset_only`` capture also runs
    :func:`full_replay_parity` and raises :class:`CaptureParityFailed` when its X/y is not
    what a full replay trains on.

    Args:
        prepared: The cell, from :func:`prepare_cell`.
        recipe: The recipe to replay.
        check_parity: Run the invariance assertion (``dataset_only`` only).

    Raises:
        DiagInputError: the prep's labels do not fit the recipe's task
            (:func:`~diag_assets.core.recipe.tasks.validate_labels`); nothing was trained.
    """
    mode = prepared.config.mode
    started = time.perf_counter()
    trial_log: TrialLog | None = None
    trace: ReplayTrace | None = None
    if mode is CaptureMode.FULL_REPLAY:
        with tracing(recipe) as tracer:
            data = _prep(prepared, recipe)
            prep_s = time.perf_counter() - started
            trial_log = recipe.run_trials(data, prepared.config.trials, tracer.trial_started)
        trace = tracer.trace(
            cell_ref=str(prepared.cell),
            recipe_version=prepared.recipe_version,
            trials_requested=prepared.config.trials.n_trials,
            trial_log=trial_log,
        )
    else:
        data = _prep(prepared, recipe)
        prep_s = time.perf_counter() - started
        if mode is CaptureMode.SINGLE_FIT:
            trial_log = recipe.run_trials(data, _one_trial(prepared.config.trials))
    trials_s = time.perf_counter() - started - prep_s
    x_hash = canonical_hash(data.X).digest
    y_hash = canonical_hash(data.y).digest
    parity = None
    if check_parity and mode is CaptureMode.DATASET_ONLY:
        parity = full_replay_parity(prepared, recipe, x_hash, y_hash, data.n_train)
        if not parity.matches:
            raise CaptureParityFailed(str(prepared.cell), parity, x_hash, y_hash)
    trial_log_hash = None if trial_log is None else trial_log.content_hash()
    best = None if trial_log is None else trial_log.best_trial
    labels = data.y["label"]
    fold = prepared.fold
    manifest = CaptureManifest(
        capture_key=prepared.key,
        cell_ref=str(prepared.cell),
        mode=mode,
        recipe=recipe.name,
        recipe_version=prepared.recipe_version,
        task=recipe.task,
        config=prepared.config,
        fold_spec=vars(prepared.fold_spec),
        fold={
            "index": fold.index,
            "train_end": fold.train_end,
            "val_start": fold.val_start,
            "val_end": fold.val_end,
            "window_end": fold.window_end,
        },
        source=prepared.source,
        source_version=prepared.source_version,
        window_first=prepared.window["date"].iloc[0].isoformat(),
        window_last=prepared.window["date"].iloc[-1].isoformat(),
        window_bars=len(prepared.window),
        gaps=list(prepared.gaps.gaps),
        gap_rows_dropped=prepared.gaps.rows_dropped,
        rows=len(data.X),
        n_train=data.n_train,
        feature_names=list(data.X.columns),
        label_balance_train=round(float(labels[: data.n_train].mean()), 6),
        label_balance_validation=round(float(labels[data.n_train :].mean()), 6),
        x_hash=x_hash,
        y_hash=y_hash,
        trial_log_hash=trial_log_hash,
        content_hash=content_hash(x_hash, y_hash, trial_log_hash, data.n_train, mode),
        n_trials=0 if trial_log is None else len(trial_log.trials),
        best_trial=None if best is None else best.trial,
        best_iter=None if best is None else best.best_iter,
        best_score=None if best is None else best.best_score,
        parity=parity,
        prep_s=round(prep_s, 6),
        trials_s=round(trials_s, 6),
        elapsed_s=round(time.perf_counter() - started, 6),
        files={},
        libraries=library_versions(),
        created_at=datetime.now(UTC).isoformat(),
    )
    return CapturedFold(data=data, trial_log=trial_log, manifest=manifest, trace=trace)


def recipe_lookback(recipe: Recipe) -> int:
    """How many bars before a row the recipe's features reach (``Recipe.lookback_bars``).

    Raises:
        DiagInputError: the recipe does not declare it as a whole number of bars.
    """
    lookback = getattr(recipe, "lookback_bars", None)
    if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 0:
        raise DiagInputError(
            f"The recipe {recipe.name!r} declares lookback_bars={lookback!r}: the harness "
            "cannot tell which rows' features span a gap in the bars.",
            "declare lookback_bars on the recipe class: the number of bars before a row that "
            "its longest feature window reaches (0 if its features use the row's bar only).",
        )
    return lookback


def _prep(prepared: PreparedCell, recipe: Recipe) -> FoldData:
    """The recipe's prep of the cell, with its labels and its gap rows checked."""
    data = recipe.prep(prepared.window, prepared.fold)
    validate_labels(recipe.task, data.y, data.n_train)
    _check_gap_rows(prepared, recipe, data)
    return data


def _check_gap_rows(prepared: PreparedCell, recipe: Recipe, data: FoldData) -> None:
    """Prove the prep dropped every row the fold excludes for a gap.

    Raises:
        DiagInputError: the prep kept such a row, or its ``y`` has no ``open_time`` column
            to tell which bar each row belongs to.
    """
    fold = prepared.fold
    if not fold.excluded:
        return
    if "open_time" not in data.y.columns:
        raise DiagInputError(
            f"{prepared.cell}: the recipe {recipe.name!r} returned a y without open_time, so "
            f"the harness cannot prove it dropped the {prepared.gaps.rows_dropped} rows that "
            "span a gap in the bars.",
            "give y an open_time column: the open time of the bar of each row.",
        )
    dates = pd.DatetimeIndex(prepared.window["date"])
    opened = pd.DatetimeIndex(pd.to_datetime(data.y["open_time"], utc=True))
    position = dates.searchsorted(opened)
    inside = position < len(dates)
    found = np.zeros(len(opened), dtype=bool)
    found[inside] = dates[position[inside]] == opened[inside]
    allowed = fold.row_allowed()
    kept = np.flatnonzero(found & ~allowed[np.minimum(position, len(allowed) - 1)])
    if kept.size:
        first = opened[int(kept[0])].isoformat()
        raise DiagInputError(
            f"{prepared.cell}: the recipe {recipe.name!r} kept {kept.size} rows whose "
            f"feature window or label spans a gap in the bars (first: {first}); nothing was "
            "trained.",
            "drop the rows the fold excludes in prep: keep a row only where "
            "fold.row_allowed() is True (see diag_assets.core.window_gaps).",
        )


def _one_trial(settings: TrialSettings) -> TrialSettings:
    return settings.model_copy(update={"n_trials": 1})


def full_replay_parity(
    prepared: PreparedCell, recipe: Recipe, x_hash: str, y_hash: str, n_train: int
) -> ParityCheck:
    """Replay one trial in full, from a prep of its own, and compare the X/y it trains on.

    The prep runs again on purpose: a prep that is not deterministic, or a trial loop that
    hands its first trial something other than the prep output, both show up as a mismatch.
    A recipe whose trial observer never fires proves nothing and fails the check.
    """
    started = time.perf_counter()
    received: dict[int, tuple[str, str, int]] = {}

    def observe(trial: int, data: FoldData) -> None:
        received.setdefault(
            trial, (canonical_hash(data.X).digest, canonical_hash(data.y).digest, data.n_train)
        )

    fresh = _prep(prepared, recipe)
    recipe.run_trials(fresh, _one_trial(prepared.config.trials), observe)
    seen_x, seen_y, seen_n_train = received.get(0, ("trial 0 never observed", "-", -1))
    return ParityCheck(
        trial=0,
        x_hash=seen_x,
        y_hash=seen_y,
        n_train=seen_n_train,
        matches=(seen_x, seen_y, seen_n_train) == (x_hash, y_hash, n_train),
        elapsed_s=round(time.perf_counter() - started, 6),
    )
