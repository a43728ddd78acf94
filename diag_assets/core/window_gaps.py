"""Gaps inside a fold's window: which rows they cost, and when a fold must be refused.

Real histories have exchange gaps of hours, days and months. Rolling features count bars,
so a row just after a gap computes its features partly from bars before it, and a label
that looks ``label_horizon`` bars ahead across a gap is a return over far more time than it
claims (a "12-hour" return that spans four months). The harness therefore, before anything
is trained:

- drops every row whose feature window (the recipe's ``lookback_bars``) or label horizon
  spans a gap longer than the spec's ``gap_tolerance`` (:attr:`Fold.excluded
  <diag_assets.core.folds.Fold.excluded>`; a recipe's prep must honour it, and the harness
  checks that it did);
- refuses a fold whose validation block holds a gap longer than ``max_validation_gap``, or
  that would lose more than ``max_gap_row_share`` of its training and validation rows, with
  the gap's dates;
- records every gap of the window in the capture (:class:`WindowGap`), so every verdict on
  it can list them (the ``DATA_GAP`` finding).

A gap after bar ``i`` (bars ``i`` and ``i + 1`` further apart than one timeframe) is spanned
by the rows ``i - label_horizon + 1`` to ``i + lookback_bars``.
"""

from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, computed_field

from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import Fold, FoldSpec, parse_duration
from diag_assets.core.market_data.bars import timeframe_to_timedelta
from diag_assets.core.market_data.validation import gap_positions

_LISTED_IN_ERRORS = 3


class GapPart(StrEnum):
    """Which part of the fold a gap falls in (by the bars on either side of it)."""

    TRAIN = "train"
    PURGE = "purge"
    VALIDATION = "validation"
    LABEL_HORIZON = "label horizon"


class WindowGap(BaseModel):
    """One gap inside a fold's window, as the capture records it."""

    model_config = ConfigDict(frozen=True)

    last_before: str
    first_after: str
    missing_bars: int
    missing_seconds: int
    part: GapPart
    tolerated: bool
    rows_dropped: int

    @computed_field
    @property
    def missing(self) -> str:
        """How long the gap is, as a person reads it (``116d 3h``)."""
        return format_duration(pd.Timedelta(self.missing_seconds, unit="s"))

    def describe(self) -> str:
        """One line: the dates, how long, where, and what it cost."""
        cost = "tolerated" if self.tolerated else f"{self.rows_dropped} rows dropped"
        return (
            f"{self.last_before} -> {self.first_after} ({self.missing} missing, "
            f"{self.part}, {cost})"
        )


@dataclass(frozen=True)
class WindowGaps:
    """The gaps of one fold's window and the rows they cost.

    ``rows`` counts the fold's training and validation positions; ``rows_dropped`` those a
    gap excludes (each counted once, for the first gap that excludes it).
    """

    gaps: tuple[WindowGap, ...]
    excluded: tuple[tuple[int, int], ...]
    rows_dropped: int
    rows: int

    @property
    def dropped_share(self) -> float:
        """Share of the fold's rows the gaps cost."""
        return self.rows_dropped / self.rows if self.rows else 0.0


def format_duration(duration: pd.Timedelta) -> str:
    """A duration as a person reads it: ``116d 3h``, ``5h``, ``30min``."""
    total_minutes = int(duration.total_seconds() // 60)
    days, rest = divmod(total_minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min")]
    return " ".join(f"{value}{unit}" for value, unit in parts if value) or "0min"


def _part(i: int, fold: Fold, in_time: bool) -> GapPart:
    # In the time layout a gap just before the first validation bar cuts the block's start.
    first_validation_gap = fold.val_start - 1 if in_time else fold.val_start
    if i < fold.train_end - 1:
        return GapPart.TRAIN
    if i < first_validation_gap:
        return GapPart.PURGE
    if i < fold.val_end - 1:
        return GapPart.VALIDATION
    return GapPart.LABEL_HORIZON


def find_window_gaps(
    dates: pd.Series, timeframe: str, fold: Fold, spec: FoldSpec, lookback_bars: int
) -> WindowGaps:
    """The gaps among the first ``fold.window_end`` bars and the rows each one costs.

    Args:
        dates: Bar open times, strictly increasing (validated bars).
        timeframe: Bar length, e.g. ``"1h"``.
        fold: The fold, cut from these bars.
        spec: Its spec (the gap tolerances).
        lookback_bars: How many bars before a row the recipe's features reach.
    """
    step_ns = timeframe_to_timedelta(timeframe).value
    tolerance = parse_duration(spec.gap_tolerance, "gap_tolerance")
    times, at, missing_ns = gap_positions(dates.iloc[: fold.window_end], timeframe)
    row = np.zeros(fold.window_end, dtype=bool)
    row[: fold.train_end] = True
    row[fold.val_start : fold.val_end] = True
    taken = np.zeros(fold.window_end, dtype=bool)
    gaps: list[WindowGap] = []
    excluded: list[tuple[int, int]] = []
    for i, missing_ns_i in zip(at.tolist(), missing_ns.tolist(), strict=True):
        missing = pd.Timedelta(missing_ns_i, unit="ns")
        tolerated = missing <= tolerance
        dropped = 0
        if not tolerated:
            start = max(0, i + 1 - fold.label_horizon)
            end = min(fold.window_end, i + lookback_bars + 1)
            newly = row[start:end] & ~taken[start:end]
            dropped = int(np.count_nonzero(newly))
            taken[start:end] = True
            excluded.append((start, end))
        gaps.append(
            WindowGap(
                last_before=times.iloc[i].isoformat(),
                first_after=times.iloc[i + 1].isoformat(),
                missing_bars=(missing_ns_i + step_ns) // step_ns - 1,
                missing_seconds=int(missing.total_seconds()),
                part=_part(i, fold, spec.in_time),
                tolerated=tolerated,
                rows_dropped=dropped,
            )
        )
    return WindowGaps(
        gaps=tuple(gaps),
        excluded=tuple(excluded),
        rows_dropped=int(np.count_nonzero(taken & row)),
        rows=int(np.count_nonzero(row)),
    )


def apply_window_gaps(fold: Fold, gaps: WindowGaps, spec: FoldSpec, *, what: str) -> Fold:
    """The fold with its gap rows excluded, or a refusal naming the gap's dates.

    Raises:
        DiagInputError: a gap longer than ``max_validation_gap`` cuts the validation block,
            or the gaps cost more than ``max_gap_row_share`` of the fold's rows. Nothing has
            been trained.
    """
    limit = parse_duration(spec.max_validation_gap, "max_validation_gap")
    cutting = [
        gap
        for gap in gaps.gaps
        if gap.part is GapPart.VALIDATION and pd.Timedelta(gap.missing_seconds, unit="s") > limit
    ]
    if cutting:
        listed = "; ".join(
            f"no bars from {gap.last_before} to {gap.first_after} ({gap.missing})"
            for gap in cutting[:_LISTED_IN_ERRORS]
        )
        raise DiagInputError(
            f"Fold {fold.index} is refused, its validation block is cut by a gap: {listed}; "
            f"longer than max_validation_gap={spec.max_validation_gap}. Nothing was trained "
            f"(bars: {what}).",
            "audit another fold, cut the folds in time (first_validation, validation_span) so "
            "that no validation block falls in the gap, or raise max_validation_gap.",
        )
    if gaps.dropped_share > spec.max_gap_row_share:
        costliest = sorted(gaps.gaps, key=lambda gap: -gap.rows_dropped)[:_LISTED_IN_ERRORS]
        raise DiagInputError(
            f"Fold {fold.index} is refused, gaps would cost {gaps.rows_dropped} of its "
            f"{gaps.rows} rows ({gaps.dropped_share:.0%}), more than max_gap_row_share="
            f"{spec.max_gap_row_share}: "
            + "; ".join(gap.describe() for gap in costliest)
            + f". Rows spanning a gap longer than gap_tolerance={spec.gap_tolerance} are "
            f"dropped; nothing was trained (bars: {what}).",
            "audit another fold, start the history after the gaps, raise gap_tolerance, or "
            "raise max_gap_row_share.",
        )
    return replace(fold, excluded=gaps.excluded)
