"""Walk-forward folds with a purge gap, cut in bars or in time.

Fold ``k`` of a :class:`FoldSpec` trains on an expanding window that starts at the first bar
and validates on the next block::

    |<---------- train (expanding) ---------->|purge|<-- validation k -->|horizon|
    0                                    train_end  val_start        val_end   window_end

The layout is given in bars (``min_train_bars``, ``validation_bars``, ``purge_bars``) or in
time (``first_validation``, ``validation_span``, ``purge_span``, ``min_train_span``): the
time layout cuts on timestamps, so a fold's validation block is the same stretch of the
calendar however many bars an exchange gap removed from it. Either way a fold is a set of
bar positions (:class:`Fold`), and the label horizon counts bars.

Labels look ``label_horizon`` bars ahead, so a training row ``t`` is kept only when
``t + label_horizon < val_start``: the purge gap (at least the horizon, in bars, in both
layouts) guarantees that no training label is computed from a price at or after the
train/validation boundary. The bars a fold *uses* end ``label_horizon`` bars after the
validation block (the validation labels need them); that window is what the fold's
source-data hash covers, so bars appended later never change a fold's capture.

Gaps in the bars are the business of :mod:`diag_assets.core.window_gaps`: the spec holds its
tolerances (``gap_tolerance``, ``max_validation_gap``, ``max_gap_row_share``), and a fold
carries the positions whose rows span a gap (:attr:`Fold.excluded`).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from diag_assets.core.errors import DiagInputError

TIME_FIELDS = ("first_validation", "validation_span", "purge_span", "min_train_span")


def parse_duration(value: str, name: str) -> pd.Timedelta:
    """A duration setting (``"6h"``, ``"30D"``, ``"1 days 12:00:00"``) as a Timedelta.

    Raises:
        DiagInputError: it is not a duration pandas reads, or it is negative.
    """
    try:
        duration = pd.Timedelta(value)
    except (TypeError, ValueError):
        duration = None
    if duration is None or pd.isna(duration) or duration < pd.Timedelta(0):
        raise DiagInputError(
            f"Fold spec {name}={value!r} is not a duration.",
            f"give {name} as a duration such as '6h', '2D' or '90D' (pandas Timedelta).",
        )
    return duration


def parse_instant(value: str, name: str) -> pd.Timestamp:
    """A date setting (``"2021-01-01"``, ISO 8601) as a UTC timestamp; naive means UTC.

    Raises:
        DiagInputError: it is not a date pandas reads.
    """
    try:
        instant = pd.Timestamp(value)
    except (TypeError, ValueError):
        instant = None
    if instant is None or pd.isna(instant):
        raise DiagInputError(
            f"Fold spec {name}={value!r} is not a date.",
            f"give {name} as an ISO 8601 date or time, e.g. '2021-01-01' or "
            "'2021-01-01T00:00:00Z' (UTC).",
        )
    return instant.tz_localize("UTC") if instant.tzinfo is None else instant.tz_convert("UTC")


@dataclass(frozen=True)
class FoldSpec:
    """How a history is cut into walk-forward folds, and which gaps a fold tolerates.

    Every field is part of the capture key. Sizes ending in ``_bars`` count bars; the time
    layout (see the module docstring) is used when ``first_validation`` is set, and then
    needs ``validation_span``, ``purge_span`` and ``min_train_span``; ``min_train_bars``,
    ``validation_bars`` and ``purge_bars`` are not used by it (the purge still covers at
    least ``label_horizon`` bars).

    Gaps: a row whose feature window or label horizon spans a gap of more than
    ``gap_tolerance`` is dropped; a fold whose validation block holds a gap of more than
    ``max_validation_gap``, or that loses more than ``max_gap_row_share`` of its training
    and validation rows to gaps, is refused.
    """

    n_folds: int = 5
    min_train_bars: int = 8_760
    validation_bars: int = 1_440
    purge_bars: int = 24
    label_horizon: int = 12
    first_validation: str = ""
    validation_span: str = ""
    purge_span: str = ""
    min_train_span: str = ""
    gap_tolerance: str = "3h"
    max_validation_gap: str = "1D"
    max_gap_row_share: float = 0.25

    def __post_init__(self) -> None:
        if self.n_folds < 1 or self.min_train_bars < 1 or self.validation_bars < 1:
            raise DiagInputError(
                f"Fold spec {self} has a non-positive size.",
                "use n_folds, min_train_bars and validation_bars of at least 1.",
            )
        if self.label_horizon < 1:
            raise DiagInputError(
                f"Fold spec label_horizon={self.label_horizon} is not a positive bar count.",
                "set label_horizon to the bars the label looks ahead (at least 1).",
            )
        if self.purge_bars < self.label_horizon:
            raise DiagInputError(
                f"purge_bars={self.purge_bars} is shorter than label_horizon="
                f"{self.label_horizon}: training labels would look into the validation block.",
                "set purge_bars to at least label_horizon.",
            )
        for name in ("gap_tolerance", "max_validation_gap"):
            parse_duration(getattr(self, name), name)
        if not 0 <= self.max_gap_row_share <= 1:
            raise DiagInputError(
                f"Fold spec max_gap_row_share={self.max_gap_row_share} is not a share.",
                "set max_gap_row_share between 0 and 1 (0.25: refuse a fold that loses more "
                "than a quarter of its rows to gaps).",
            )
        given = [name for name in TIME_FIELDS if getattr(self, name)]
        if given and len(given) < len(TIME_FIELDS):
            missing = [name for name in TIME_FIELDS if name not in given]
            raise DiagInputError(
                f"Fold spec gives {', '.join(given)} but not {', '.join(missing)}: a time "
                "layout needs all four.",
                "set first_validation (date), validation_span, purge_span and min_train_span "
                "(durations), or none of them to cut folds in bars.",
            )
        if given:
            parse_instant(self.first_validation, "first_validation")
            if parse_duration(self.validation_span, "validation_span") <= pd.Timedelta(0):
                raise DiagInputError(
                    f"Fold spec validation_span={self.validation_span!r} is empty.",
                    "give validation_span a positive duration, e.g. '60D'.",
                )
            parse_duration(self.purge_span, "purge_span")
            parse_duration(self.min_train_span, "min_train_span")

    @property
    def in_time(self) -> bool:
        """Whether the layout is given in time (``first_validation`` is set)."""
        return bool(self.first_validation)

    def bars_needed(self, fold: int) -> int:
        """How many bars (from the first) fold ``fold`` needs in the bar layout."""
        return self.min_train_bars + (fold + 1) * self.validation_bars + self.label_horizon


@dataclass(frozen=True)
class Fold:
    """Bar positions of one fold; ``[start, end)`` half-open ranges over the bar index.

    ``excluded`` holds position ranges ``(start, end)`` whose rows a recipe must drop: their
    feature window or label horizon spans a gap longer than the spec tolerates (see
    :mod:`diag_assets.core.window_gaps`). :meth:`row_allowed` is the same as a mask.
    """

    index: int
    train_end: int
    val_start: int
    val_end: int
    window_end: int
    label_horizon: int
    excluded: tuple[tuple[int, int], ...] = ()

    def row_allowed(self) -> np.ndarray:
        """One flag per bar of the window: False where a row would span a gap."""
        allowed = np.ones(self.window_end, dtype=bool)
        for start, end in self.excluded:
            allowed[start:end] = False
        return allowed


def _check_index(spec: FoldSpec, fold: int) -> None:
    if not 0 <= fold < spec.n_folds:
        raise DiagInputError(
            f"Fold {fold} does not exist: the fold spec has {spec.n_folds} folds "
            f"(fold-0 to fold-{spec.n_folds - 1}).",
            f"pick a fold from 0 to {spec.n_folds - 1}, or raise n_folds.",
        )


def make_fold(spec: FoldSpec, fold: int, n_bars: int, *, what: str = "the history") -> Fold:
    """Cut fold ``fold`` out of ``n_bars`` bars in the bar layout, or say why it cannot."""
    _check_index(spec, fold)
    needed = spec.bars_needed(fold)
    if n_bars < needed:
        fitting = [k for k in range(spec.n_folds) if spec.bars_needed(k) <= n_bars]
        hint = (
            f"the longest fold it holds is fold-{fitting[-1]}"
            if fitting
            else "it holds no fold at all"
        )
        raise DiagInputError(
            f"History too short for fold {fold}: {what} has {n_bars} bars, fold {fold} needs "
            f"{needed} ({spec.min_train_bars} minimum training + {fold + 1} x "
            f"{spec.validation_bars} validation + {spec.label_horizon} label horizon); {hint}.",
            "supply more history, audit an earlier fold, or use a smaller fold spec.",
        )
    val_start = spec.min_train_bars + fold * spec.validation_bars
    val_end = val_start + spec.validation_bars
    return Fold(
        index=fold,
        train_end=val_start - spec.purge_bars,
        val_start=val_start,
        val_end=val_end,
        window_end=val_end + spec.label_horizon,
        label_horizon=spec.label_horizon,
    )


def cut_fold(spec: FoldSpec, fold: int, dates: pd.Series, *, what: str = "the history") -> Fold:
    """Cut fold ``fold`` out of bars with open times ``dates``, in the spec's layout.

    In the time layout fold ``k`` validates on ``[first_validation + k x validation_span,
    + validation_span)`` and trains on the bars before ``purge_span`` ahead of it, and at
    least ``label_horizon`` bars ahead of it.

    Raises:
        DiagInputError: the fold does not exist, or the history does not hold it (the
            message gives the dates the fold needs and the history's).
    """
    if not spec.in_time:
        return make_fold(spec, fold, len(dates), what=what)
    _check_index(spec, fold)
    times = pd.DatetimeIndex(pd.to_datetime(dates, utc=True))
    span = parse_duration(spec.validation_span, "validation_span")
    first = parse_instant(spec.first_validation, "first_validation") + fold * span
    last = first + span
    train_until = first - parse_duration(spec.purge_span, "purge_span")
    train_from = train_until - parse_duration(spec.min_train_span, "min_train_span")
    window = f"fold {fold} validates on {first.isoformat()} to {last.isoformat()}"
    if len(times) == 0 or times[0] > train_from:
        start = times[0].isoformat() if len(times) else "nothing"
        raise DiagInputError(
            f"History too short for fold {fold}: {window} and trains from "
            f"{train_from.isoformat()} ({spec.min_train_span} before its purge), but {what} "
            f"starts at {start}.",
            "supply earlier history, move first_validation later, or shorten min_train_span.",
        )
    val_start = int(times.searchsorted(first, side="left"))
    val_end = int(times.searchsorted(last, side="left"))
    window_end = val_end + spec.label_horizon
    if times[-1] < last or window_end > len(times):
        raise DiagInputError(
            f"History too short for fold {fold}: {window} (and {spec.label_horizon} label "
            f"horizon bars after), but {what} ends at {times[-1].isoformat()}.",
            "supply more history, audit an earlier fold, or move first_validation earlier.",
        )
    if val_end == val_start:
        raise DiagInputError(
            f"Fold {fold} of {what} has no bars to validate on: {window}, and the history "
            "holds no bar in that stretch (an exchange gap covers it).",
            "audit another fold, or move first_validation so that no validation block falls "
            "inside the gap.",
        )
    train_end = min(
        int(times.searchsorted(train_until, side="left")), val_start - spec.label_horizon
    )
    return Fold(
        index=fold,
        train_end=max(train_end, 0),
        val_start=val_start,
        val_end=val_end,
        window_end=window_end,
        label_horizon=spec.label_horizon,
    )
