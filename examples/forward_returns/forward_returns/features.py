"""Features of the forward-returns recipe: scale-free summaries of the recent bars.

Every feature is causal: row ``t`` uses bars ``<= t`` only (a prediction is made at bar
``t``'s close). Windows count bars, not hours, so a gap in the candles shortens the time a
window covers; gaps are not filled. Rows before the longest window is full are NaN; prep
drops them.

- ``mom_{h}``: log return over ``h`` bars, divided by the rolling volatility scaled to ``h``;
- ``vol_ratio``: short over long rolling volatility of the 1-bar returns;
- ``skew_{w}``: rolling skew of the 1-bar returns;
- ``range_z_{w}``: z-score of the bar's high-low log range against its rolling mean and std;
- ``volume_trend``: fast minus slow rolling mean of ``log1p(volume)``.

Bars may carry numeric columns beyond OHLCV (funding, open interest, ...) when the market
data passes them through. None is used by default; the recipe's ``extra_columns`` adds the
named ones to X unchanged, so each value must be known by its bar's close.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd

MOMENTUM_HORIZONS = (3, 12, 48)
VOLATILITY_WINDOW = 48
FAST_VOLATILITY_WINDOW = 12
SKEW_WINDOW = 72
RANGE_WINDOW = 72
VOLUME_WINDOWS = (12, 72)
# The oldest bar a row's features read: skew_72 is over 72 one-bar returns, the oldest of
# which starts 72 bars back.
LOOKBACK_BARS = max(*MOMENTUM_HORIZONS, VOLATILITY_WINDOW, SKEW_WINDOW, RANGE_WINDOW - 1)

FEATURE_NAMES = (
    *(f"mom_{h}" for h in MOMENTUM_HORIZONS),
    "vol_ratio",
    f"skew_{SKEW_WINDOW}",
    f"range_z_{RANGE_WINDOW}",
    "volume_trend",
)


def build_features(bars: pd.DataFrame, extra_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Causal features for every bar (NaN during warm-up), as float32, one row per bar."""
    log_close = pd.Series(np.log(bars["close"].to_numpy(dtype=np.float64)))
    ret_1 = log_close.diff()
    volatility = ret_1.rolling(VOLATILITY_WINDOW).std()
    volatility = volatility.where(volatility > 0)
    features: dict[str, pd.Series] = {}
    for horizon in MOMENTUM_HORIZONS:
        features[f"mom_{horizon}"] = log_close.diff(horizon) / (volatility * np.sqrt(horizon))
    features["vol_ratio"] = ret_1.rolling(FAST_VOLATILITY_WINDOW).std() / volatility
    features[f"skew_{SKEW_WINDOW}"] = ret_1.rolling(SKEW_WINDOW).skew()
    log_range = pd.Series(np.log(bars["high"].to_numpy() / bars["low"].to_numpy()))
    range_std = log_range.rolling(RANGE_WINDOW).std()
    features[f"range_z_{RANGE_WINDOW}"] = (
        log_range - log_range.rolling(RANGE_WINDOW).mean()
    ) / range_std.where(range_std > 0)
    log_volume = pd.Series(np.log1p(bars["volume"].to_numpy(dtype=np.float64)))
    fast, slow = VOLUME_WINDOWS
    features["volume_trend"] = log_volume.rolling(fast).mean() - log_volume.rolling(slow).mean()
    for column in extra_columns:
        features[column] = pd.Series(bars[column].to_numpy(dtype=np.float64))
    return pd.DataFrame({name: s.to_numpy(dtype=np.float32) for name, s in features.items()})


def forward_log_return(close: pd.Series, horizon: int) -> np.ndarray:
    """``log(close[t + horizon] / close[t])`` per bar; NaN for the last ``horizon`` bars."""
    log_close = np.log(close.to_numpy(dtype=np.float64))
    forward = np.full(len(log_close), np.nan)
    forward[:-horizon] = log_close[horizon:] - log_close[:-horizon]
    return forward
