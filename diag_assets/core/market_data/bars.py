"""A bar series: the one shape every consumer of candles can rely on.

:class:`Bars` holds the candles of one symbol in the canonical shape :func:`validate_bars
<diag_assets.core.market_data.validation.validate_bars>` guarantees: columns :data:`BAR_COLUMNS`,
then the file's other numeric columns (its *extra columns*, e.g. a funding rate or a trade
count), ``date`` as ``datetime64[ns, UTC]`` strictly increasing, everything else float64, a
``RangeIndex``. Only the OHLCV columns are validated; extra columns reach the recipe's prep and
the canonical hash as they are, with NaN allowed (sparse data such as funding is common).
Gaps (missing bars, e.g. exchange maintenance windows) are *reported* in a :class:`GapReport`
and never filled, because filled bars would invent prices a model never could have traded on.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from diag_assets.core.cells import SYMBOL_PATTERN
from diag_assets.core.errors import DiagInputError

BAR_COLUMNS = ("date", "open", "high", "low", "close", "volume")

_TIMEFRAMES: dict[str, pd.Timedelta] = {
    "1m": pd.Timedelta(minutes=1),
    "5m": pd.Timedelta(minutes=5),
    "15m": pd.Timedelta(minutes=15),
    "30m": pd.Timedelta(minutes=30),
    "1h": pd.Timedelta(hours=1),
    "4h": pd.Timedelta(hours=4),
    "1d": pd.Timedelta(days=1),
}


@dataclass(frozen=True)
class GapReport:
    """Where a bar series has holes.

    A gap is a pair of consecutive bars further apart than one timeframe.

    Attributes:
        count: Number of gaps.
        longest: Longest stretch of missing time, i.e. the largest spacing between consecutive
            bars minus one timeframe (bars at 10:00 and 14:00 on 1h leave 3h missing).
            ``pd.Timedelta(0)`` when there are no gaps.
        missing_bars: Bars absent inside all gaps together (``spacing // timeframe - 1`` per
            gap, so a spacing that is not a whole number of timeframes rounds down).
        first_gaps: Up to five gaps in time order, each as (last bar before, first bar after).
    """

    count: int
    longest: pd.Timedelta
    missing_bars: int
    first_gaps: tuple[tuple[pd.Timestamp, pd.Timestamp], ...]


# eq=False: a DataFrame field makes generated __eq__/__hash__ raise, so identity semantics
# are the only honest ones; compare ``bars.frame`` explicitly instead.
@dataclass(frozen=True, eq=False)
class Bars:
    """A validated bar series for one symbol.

    Attributes:
        symbol: Upper-case symbol matching :data:`SYMBOL_PATTERN`, e.g. ``"BTCUSDT"``.
        timeframe: Bar length, e.g. ``"1h"``.
        frame: Columns :data:`BAR_COLUMNS`, then :attr:`extra_columns`; ``date`` is
            ``datetime64[ns, UTC]`` (candle open time) strictly increasing; the others are
            float64; ``RangeIndex``.
        source: Where the bars came from, e.g. ``"synthetic:UNIUSDC:seed=7"`` or a file path.
        gaps: The gaps found in ``frame.date``.
        extra_columns: The source's numeric columns beyond date and OHLCV, in source order,
            named as in ``frame`` (stripped, lower-case). Integers and booleans are stored
            as float64 (``True`` is 1.0), so a column hashes alike whichever file format
            carried it. They may hold NaN (missing), never infinity.
        ignored_columns: The source's columns left out of ``frame``, as the source named
            them: non-numeric ones (text, datetimes, categories) and unnamed ones (a header
            cell left empty, typically a written row index).
        extra_nan_counts: NaN count of each extra column, in :attr:`extra_columns` order.
    """

    symbol: str
    timeframe: str
    frame: pd.DataFrame
    source: str
    gaps: GapReport
    extra_columns: tuple[str, ...] = ()
    ignored_columns: tuple[str, ...] = ()
    extra_nan_counts: Mapping[str, int] = field(default_factory=dict)


def timeframe_to_timedelta(tf: str) -> pd.Timedelta:
    """Return the length of one bar.

    Args:
        tf: One of ``"1m", "5m", "15m", "30m", "1h", "4h", "1d"``.

    Returns:
        The bar length.

    Raises:
        DiagInputError: The timeframe is not supported.
    """
    try:
        return _TIMEFRAMES[tf]
    except (KeyError, TypeError):
        raise DiagInputError(
            f"Unknown timeframe {tf!r}.",
            f"use one of {', '.join(_TIMEFRAMES)} (lower-case, as freqtrade spells them).",
        ) from None


def check_symbol(symbol: str, source: str) -> None:
    """Check that a symbol is spelled as cells and bar files spell it.

    Args:
        symbol: The symbol, e.g. ``"BTCUSDT"``.
        source: Where the symbol came from (a file path or a label); named in the error.

    Raises:
        DiagInputError: The symbol does not match :data:`SYMBOL_PATTERN
            <diag_assets.core.cells.SYMBOL_PATTERN>`.
    """
    if not isinstance(symbol, str) or not SYMBOL_PATTERN.fullmatch(symbol):
        raise DiagInputError(
            f"{source}: symbol {symbol!r} does not match the pattern {SYMBOL_PATTERN.pattern}.",
            "use 2-24 upper-case letters and digits without separators, e.g. 'BTCUSDT' "
            "(not 'BTC/USDT' or 'btc_usdt').",
        )
