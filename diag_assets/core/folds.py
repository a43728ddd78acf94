"""Walk-forward folds with a purge gap.

Fold ``k`` of a :class:`FoldSpec` trains on an expanding window that starts at the first bar
and validates on the next block of ``validation_bars``::

    |<---------- train (expanding) ---------->|purge|<-- validation k -->|horizon|
    0                                    train_end  val_start        val_end   window_end

Labels look ``label_horizon`` bars ahead, so a training row ``t`` is kept only when
``t + label_horizon < val_start``: the purge gap (at least the horizon) guarantees that no
training label is computed from a price at or after the train/validation boundary. The
bars a fold *uses* end ``label_horizon`` bars after the validation block (the validation
labels need them); that window is what the fold's source-data hash covers, so bars
appended later never change a fold's capture.
"""

from dataclasses import dataclass

from diag_assets.core.errors import DiagInputError


@dataclass(frozen=True)
class FoldSpec:
    """How a history is cut into walk-forward folds (all sizes in bars)."""

    n_folds: int = 5
    min_train_bars: int = 8_760
    validation_bars: int = 1_440
    purge_bars: int = 24
    label_horizon: int = 12

    def __post_init__(self) -> None:
        if self.n_folds < 1 or self.min_train_bars < 1 or self.validation_bars < 1:
            raise DiagInputError(
                f"Fold spec {self} has a non-positive size.",
                "use n_folds, min_train_bars and validation_bars of at least 1.",
            )
        if self.purge_bars < self.label_horizon:
            raise DiagInputError(
                f"purge_bars={self.purge_bars} is shorter than label_horizon="
                f"{self.label_horizon}: training labels would look into the validation block.",
                "set purge_bars to at least label_horizon.",
            )

    def bars_needed(self, fold: int) -> int:
        """How many bars (from the first) fold ``fold`` needs."""
        return self.min_train_bars + (fold + 1) * self.validation_bars + self.label_horizon


@dataclass(frozen=True)
class Fold:
    """Bar positions of one fold; ``[start, end)`` half-open ranges over the bar index."""

    index: int
    train_end: int
    val_start: int
    val_end: int
    window_end: int
    label_horizon: int


def make_fold(spec: FoldSpec, fold: int, n_bars: int, *, what: str = "the history") -> Fold:
    """Cut fold ``fold`` out of ``n_bars`` bars, or say why the history cannot hold it."""
    if not 0 <= fold < spec.n_folds:
        raise DiagInputError(
            f"Fold {fold} does not exist: the fold spec has {spec.n_folds} folds "
            f"(fold-0 to fold-{spec.n_folds - 1}).",
            f"pick a fold from 0 to {spec.n_folds - 1}, or raise n_folds.",
        )
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
