"""Data prep of the reference recipe: bars + fold -> X/y.

Features are causal (each row uses bars at or before its own time): multi-horizon log
returns, rolling volatility, bar range, a volume z-score and time-of-day/day-of-week cycles.
The label is the sign of the log return over ``label_horizon`` bars ahead, with a dead zone:
rows whose forward move is smaller than ``dead_zone_sigma`` x the recent volatility scaled to
the horizon carry no usable direction and are dropped rather than labelled at random.

Rolling windows count bars, not wall-clock time, so a row whose windows span a gap longer than
the fold spec tolerates is dropped (the fold's ``row_allowed()``, from
:mod:`diag_assets.core.window_gaps`); gaps are never filled.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import Fold

RETURN_HORIZONS = (1, 4, 12, 24, 72)
VOLATILITY_WINDOWS = (24, 72, 168)
VOLUME_WINDOW = 168
# The longest window reaches back this many bars: vol_168 is the std of 168 one-bar returns,
# the oldest of which starts 168 bars before the row.
LOOKBACK_BARS = max(*RETURN_HORIZONS, *VOLATILITY_WINDOWS, VOLUME_WINDOW - 1)
MIN_TRAIN_ROWS = 200
MIN_VALIDATION_ROWS = 50


@dataclass(frozen=True)
class PrepSettings:
    """Knobs of the reference prep."""

    dead_zone_sigma: float = 0.1


@dataclass(frozen=True)
class FoldData:
    """The X/y of one fold. Rows ``[0, n_train)`` train, the rest validate, in time order."""

    X: pd.DataFrame
    y: pd.DataFrame
    n_train: int
    feature_names: tuple[str, ...] = field(default=())

    @property
    def n_validation(self) -> int:
        """Number of validation rows."""
        return len(self.X) - self.n_train

    def split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return ``X_train, y_train, X_val, y_val`` as numpy arrays (views where possible)."""
        x = self.X.to_numpy(dtype=np.float32, copy=False)
        labels = self.y["label"].to_numpy()
        return x[: self.n_train], labels[: self.n_train], x[self.n_train :], labels[self.n_train :]


def build_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Causal features for every bar (NaN during each window's warm-up)."""
    close = bars["close"].to_numpy(dtype=np.float64)
    log_close = pd.Series(np.log(close))
    ret_1 = log_close.diff()
    features: dict[str, pd.Series] = {}
    for horizon in RETURN_HORIZONS:
        features[f"ret_{horizon}"] = log_close.diff(horizon)
    for window in VOLATILITY_WINDOWS:
        features[f"vol_{window}"] = ret_1.rolling(window).std()
    bar_range = pd.Series(np.log(bars["high"].to_numpy() / bars["low"].to_numpy()))
    features["range_1"] = bar_range
    features["range_24"] = bar_range.rolling(24).mean()
    log_volume = pd.Series(np.log1p(bars["volume"].to_numpy(dtype=np.float64)))
    volume_mean = log_volume.rolling(VOLUME_WINDOW).mean()
    volume_std = log_volume.rolling(VOLUME_WINDOW).std()
    features[f"volume_z_{VOLUME_WINDOW}"] = (log_volume - volume_mean) / volume_std.where(
        volume_std > 0
    )
    dates = pd.DatetimeIndex(bars["date"])
    hour = dates.hour.to_numpy() + dates.minute.to_numpy() / 60.0
    dow = dates.day_of_week.to_numpy()
    features["hour_sin"] = pd.Series(np.sin(2 * np.pi * hour / 24))
    features["hour_cos"] = pd.Series(np.cos(2 * np.pi * hour / 24))
    features["dow_sin"] = pd.Series(np.sin(2 * np.pi * dow / 7))
    features["dow_cos"] = pd.Series(np.cos(2 * np.pi * dow / 7))
    return pd.DataFrame({name: s.to_numpy(dtype=np.float32) for name, s in features.items()})


def prepare_fold(
    bars: pd.DataFrame, fold: Fold, settings: PrepSettings = PrepSettings()
) -> FoldData:
    """Turn the fold's bar window into X/y; rows outside train/validation are dropped.

    Raises:
        DiagInputError: when the bars do not cover the fold's window, or the fold keeps too
            few rows or a single class once warm-up and dead-zone rows are dropped.
    """
    if len(bars) < fold.window_end:
        raise DiagInputError(
            f"Prep got {len(bars)} bars but fold {fold.index} needs {fold.window_end}.",
            "pass the fold's whole window (bars[:fold.window_end]).",
        )
    window = bars.iloc[: fold.window_end].reset_index(drop=True)
    features = build_features(window)
    log_close = np.log(window["close"].to_numpy(dtype=np.float64))
    horizon = fold.label_horizon
    forward = np.full(len(window), np.nan)
    forward[:-horizon] = log_close[horizon:] - log_close[:-horizon]
    threshold = settings.dead_zone_sigma * features["vol_24"].to_numpy() * np.sqrt(horizon)

    position = np.arange(len(window))
    in_train = position < fold.train_end
    in_validation = (position >= fold.val_start) & (position < fold.val_end)
    usable = (
        features.notna().all(axis=1).to_numpy()
        & np.isfinite(forward)
        & (np.abs(forward) > threshold)
        & (in_train | in_validation)
        & fold.row_allowed()
    )
    keep = np.flatnonzero(usable)
    n_train = int(np.count_nonzero(in_train[keep]))
    X = features.iloc[keep].reset_index(drop=True)
    y = pd.DataFrame(
        {
            "open_time": window["date"].iloc[keep].reset_index(drop=True),
            "label": (forward[keep] > 0).astype(np.int8),
        }
    )
    _check_fold_rows(y, n_train, fold)
    return FoldData(X=X, y=y, n_train=n_train, feature_names=tuple(X.columns))


def _check_fold_rows(y: pd.DataFrame, n_train: int, fold: Fold) -> None:
    n_validation = len(y) - n_train
    if n_train < MIN_TRAIN_ROWS or n_validation < MIN_VALIDATION_ROWS:
        raise DiagInputError(
            f"Fold {fold.index} keeps {n_train} training and {n_validation} validation rows "
            f"after warm-up and dead-zone filtering; at least {MIN_TRAIN_ROWS} and "
            f"{MIN_VALIDATION_ROWS} are needed.",
            "use a longer history or a larger fold spec (min_train_bars, validation_bars).",
        )
    for part, labels in (("training", y["label"][:n_train]), ("validation", y["label"][n_train:])):
        if labels.nunique() < 2:
            raise DiagInputError(
                f"Fold {fold.index}'s {part} labels hold a single class.",
                "check the bars for a flat or constant price series, or lower dead_zone_sigma.",
            )
