"""Bar validation and gap reporting: a bar table in, :class:`Bars` or a precise error out.

Every consumer of candles goes through :func:`validate_bars`, so downstream code can rely on
one shape (see :class:`~diag_assets.core.market_data.bars.Bars`). Errors name the source, the
first bad row and the fix. Gaps are reported by :func:`detect_gaps`, never filled.
"""

import numpy as np
import pandas as pd

from diag_assets.core.errors import DiagInputError
from diag_assets.core.market_data.bars import (
    BAR_COLUMNS,
    Bars,
    GapReport,
    check_symbol,
    timeframe_to_timedelta,
)

_PRICE_COLUMNS = ("open", "high", "low", "close")
_VALUE_COLUMNS = ("open", "high", "low", "close", "volume")

# Epoch milliseconds between 1973-03 and 2286-11; anything outside is almost surely seconds
# or micro/nanoseconds, which would otherwise parse silently into absurd dates.
_EPOCH_MS_MIN = 100_000_000_000
_EPOCH_MS_MAX = 10_000_000_000_000

_MAX_REPORTED_GAPS = 5


def detect_gaps(dates: pd.Series, timeframe: str) -> GapReport:
    """Find the gaps in a strictly increasing series of bar open times.

    Args:
        dates: Bar open times, strictly increasing (as :func:`validate_bars` guarantees);
            naive values are taken as UTC.
        timeframe: Bar length, see :func:`timeframe_to_timedelta`.

    Returns:
        The gap report; timestamps in it are UTC.

    Raises:
        DiagInputError: Unknown timeframe, or ``dates`` holds NaT or is not strictly
            increasing.
    """
    step = timeframe_to_timedelta(timeframe)
    series = pd.Series(pd.to_datetime(dates, utc=True)).reset_index(drop=True)
    if series.isna().any():
        pos = int(np.flatnonzero(series.isna().to_numpy())[0])
        raise DiagInputError(
            f"detect_gaps: date is missing at row {pos}.",
            "validate the bars with validate_bars() before looking for gaps.",
        )
    ns = series.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64)
    if ns.shape[0] < 2:
        return GapReport(count=0, longest=pd.Timedelta(0), missing_bars=0, first_gaps=())
    spacing = np.diff(ns)
    if (spacing <= 0).any():
        pos = int(np.flatnonzero(spacing <= 0)[0]) + 1
        raise DiagInputError(
            f"detect_gaps: dates are not strictly increasing at row {pos} "
            f"({series.iloc[pos].isoformat()}).",
            "validate the bars with validate_bars() before looking for gaps.",
        )
    step_ns = step.value
    at = np.flatnonzero(spacing > step_ns)
    if at.size == 0:
        return GapReport(count=0, longest=pd.Timedelta(0), missing_bars=0, first_gaps=())
    gap_spacing = spacing[at]
    first_gaps = tuple(
        (series.iloc[int(i)], series.iloc[int(i) + 1]) for i in at[:_MAX_REPORTED_GAPS]
    )
    return GapReport(
        count=int(at.size),
        longest=pd.Timedelta(int(gap_spacing.max()) - step_ns, unit="ns"),
        missing_bars=int((gap_spacing // step_ns - 1).sum()),
        first_gaps=first_gaps,
    )


def _fmt_ts(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return repr(value)


def _map_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Return a frame holding exactly BAR_COLUMNS, matched case-insensitively."""
    if not any(str(c).strip().lower() == "date" for c in frame.columns) and (
        str(frame.index.name or "").strip().lower() == "date"
    ):
        # A date index (e.g. from set_index("date")) is as good as a date column.
        frame = frame.reset_index()
    found: dict[str, object] = {}
    for col in frame.columns:
        key = str(col).strip().lower()
        if key not in BAR_COLUMNS:
            continue
        if key in found:
            raise DiagInputError(
                f"{source}: columns {found[key]!r} and {col!r} both map to {key!r} "
                "(names are matched case-insensitively).",
                f"keep only one {key!r} column in the data.",
            )
        found[key] = col
    missing = [c for c in BAR_COLUMNS if c not in found]
    if missing:
        raise DiagInputError(
            f"{source}: missing column(s) {', '.join(missing)}; found columns "
            f"{[str(c) for c in frame.columns]}.",
            f"provide columns {', '.join(BAR_COLUMNS)} (any letter case; extra columns are "
            "dropped).",
        )
    out = frame[[found[c] for c in BAR_COLUMNS]].copy()
    out.columns = list(BAR_COLUMNS)
    return out.reset_index(drop=True)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _parse_dates(raw: pd.Series, source: str) -> pd.Series:
    """Convert a date column to datetime64[ns, UTC] or raise naming the first bad row."""
    fix_format = (
        "store the candle open time as UTC datetimes, integer epoch milliseconds "
        "(freqtrade/Binance style) or ISO 8601 strings such as '2024-01-01T00:00:00Z'."
    )
    dtype = raw.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        parsed = raw.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(dtype):
        parsed = raw.dt.tz_localize("UTC")
    elif pd.api.types.is_bool_dtype(dtype):
        raise DiagInputError(f"{source}: column 'date' holds booleans.", fix_format)
    elif pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
        not_int = ~np.isfinite(values) | (values != np.round(values))
        if not_int.any():
            pos = _first_bad(not_int)
            raise DiagInputError(
                f"{source}: date at row {pos} is {raw.iloc[pos]!r}, not an integer epoch "
                "millisecond.",
                fix_format,
            )
        out_of_range = (values < _EPOCH_MS_MIN) | (values >= _EPOCH_MS_MAX)
        if out_of_range.any():
            pos = _first_bad(out_of_range)
            unit = "seconds" if values[pos] < _EPOCH_MS_MIN else "micro- or nanoseconds"
            raise DiagInputError(
                f"{source}: date at row {pos} is {raw.iloc[pos]!r}, which looks like epoch "
                f"{unit}, not milliseconds.",
                "convert the date column to epoch milliseconds (or to UTC datetimes).",
            )
        parsed = pd.to_datetime(raw.astype(np.int64), unit="ms", utc=True)
    elif pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
        unparsable = parsed.isna().to_numpy() & raw.notna().to_numpy()
        if unparsable.any():
            pos = _first_bad(unparsable)
            raise DiagInputError(
                f"{source}: date at row {pos} is {raw.iloc[pos]!r}, which is not an "
                "ISO 8601 timestamp.",
                fix_format,
            )
    else:
        raise DiagInputError(f"{source}: column 'date' has unsupported type {dtype}.", fix_format)
    if parsed.isna().any():
        pos = _first_bad(parsed.isna().to_numpy())
        raise DiagInputError(
            f"{source}: date is missing at row {pos}.",
            "drop the rows without a date, or fill in their candle open time.",
        )
    return parsed.dt.as_unit("ns").astype("datetime64[ns, UTC]").rename("date")


def _parse_values(raw: pd.Series, column: str, dates: pd.Series, source: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(raw.dtype):
        raise DiagInputError(
            f"{source}: column {column!r} holds booleans.",
            f"store {column} as numbers.",
        )
    if pd.api.types.is_numeric_dtype(raw.dtype):
        return raw.astype(np.float64)
    parsed = pd.to_numeric(raw, errors="coerce")
    unparsable = parsed.isna().to_numpy() & raw.notna().to_numpy()
    if unparsable.any():
        pos = _first_bad(unparsable)
        raise DiagInputError(
            f"{source}: column {column!r} at row {pos} ({_fmt_ts(dates.iloc[pos])}) is "
            f"{raw.iloc[pos]!r}, not a number.",
            f"store {column} as plain numbers (a dot as decimal separator, no units).",
        )
    return parsed.astype(np.float64)


def _raise_first_row(mask: np.ndarray, dates: pd.Series, source: str, what: str, fix: str) -> None:
    if not mask.any():
        return
    pos = _first_bad(mask)
    raise DiagInputError(
        f"{source}: {what} at row {pos} ({_fmt_ts(dates.iloc[pos])}); "
        f"{int(mask.sum())} bad row(s) in all.",
        fix,
    )


def validate_bars(frame: pd.DataFrame, *, symbol: str, timeframe: str, source: str) -> Bars:
    """Check a bar table and return it in the canonical shape, or explain what is wrong.

    Columns are matched case-insensitively (``Close`` is ``close``); extra columns are
    dropped; a ``date`` index is accepted in place of a ``date`` column. The input is not
    modified. Rows are never sorted, de-duplicated or filled: such problems are errors.

    The ``date`` column (candle open time) may be:

    * ``datetime64`` tz-aware: converted to UTC;
    * ``datetime64`` naive: **taken to be UTC already** (localized, not shifted);
    * integers (or integral floats) in epoch milliseconds, as freqtrade and Binance write;
    * ISO 8601 strings; strings without an offset are taken as UTC.

    Checks, in order: symbol matches :data:`SYMBOL_PATTERN`; the timeframe is known; the
    frame is not empty; columns; dates parse; no duplicate timestamps; timestamps strictly
    increasing; consecutive bars at least one timeframe apart; no column entirely NaN; no
    NaN or infinity in any price or volume; prices > 0; ``high >= max(open, close)``;
    ``low <= min(open, close)``; ``volume >= 0`` (zero-volume bars are allowed: real data
    has them). Row positions in messages are 0-based positions in ``frame``.

    Args:
        frame: Bar table with columns date, open, high, low, close, volume.
        symbol: Symbol the bars belong to.
        timeframe: Bar length, see :func:`timeframe_to_timedelta`.
        source: Where the table came from (a file path or a label); named in every error.

    Returns:
        The validated bars, with the gaps reported in ``Bars.gaps``.

    Raises:
        DiagInputError: Any check fails; the message names ``source``, the first bad row
            (position and timestamp) or column, and the fix.
    """
    check_symbol(symbol, source)
    step = timeframe_to_timedelta(timeframe)
    if not isinstance(frame, pd.DataFrame):
        raise DiagInputError(
            f"{source}: expected a pandas DataFrame, got {type(frame).__name__}.",
            f"pass a DataFrame with columns {', '.join(BAR_COLUMNS)}.",
        )
    if len(frame) == 0:
        raise DiagInputError(
            f"{source}: the bar table is empty (0 rows).",
            "point the loader at a file that holds candles for this symbol and timeframe.",
        )
    table = _map_columns(frame, source)
    dates = _parse_dates(table["date"], source)

    duplicated = dates.duplicated(keep="first").to_numpy()
    if duplicated.any():
        pos = _first_bad(duplicated)
        first_pos = _first_bad((dates == dates.iloc[pos]).to_numpy())
        raise DiagInputError(
            f"{source}: duplicate timestamp {_fmt_ts(dates.iloc[pos])} at row {pos} "
            f"(first seen at row {first_pos}); {int(duplicated.sum())} duplicate row(s) in all.",
            "remove the duplicated rows from the file, keeping the one you trust "
            "(the loader never drops rows silently).",
        )
    ns = dates.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64)
    spacing = np.diff(ns)
    backwards = np.concatenate(([False], spacing < 0))
    if backwards.any():
        pos = _first_bad(backwards)
        raise DiagInputError(
            f"{source}: timestamps are not sorted: row {pos} ({_fmt_ts(dates.iloc[pos])}) "
            f"comes before row {pos - 1} ({_fmt_ts(dates.iloc[pos - 1])}).",
            "sort the file by date (oldest first) before loading; the loader does not "
            "re-order rows silently.",
        )
    too_close = np.concatenate(([False], spacing < step.value))
    if too_close.any():
        pos = _first_bad(too_close)
        gap = pd.Timedelta(int(spacing[pos - 1]), unit="ns")
        raise DiagInputError(
            f"{source}: row {pos} ({_fmt_ts(dates.iloc[pos])}) is only {gap} after the "
            f"previous bar, shorter than the {timeframe} timeframe.",
            f"load this file with its real timeframe, or resample it to {timeframe} first.",
        )

    values = {c: _parse_values(table[c], c, dates, source) for c in _VALUE_COLUMNS}
    for column, series in values.items():
        if series.isna().all():
            raise DiagInputError(
                f"{source}: column {column!r} is entirely NaN (rows 0-{len(series) - 1}).",
                f"fill column {column!r} with real values; an empty column usually means the "
                "export went wrong.",
            )
    arrays = {c: s.to_numpy(dtype=np.float64) for c, s in values.items()}
    for column in _VALUE_COLUMNS:
        _raise_first_row(
            np.isnan(arrays[column]),
            dates,
            source,
            f"column {column!r} is NaN",
            "drop or repair the rows with missing values in the file; the loader never "
            "fills bars itself.",
        )
    for column in _VALUE_COLUMNS:
        _raise_first_row(
            np.isinf(arrays[column]),
            dates,
            source,
            f"column {column!r} is infinite",
            "repair the rows with infinite values in the file.",
        )
    for column in _PRICE_COLUMNS:
        _raise_first_row(
            arrays[column] <= 0,
            dates,
            source,
            f"price {column!r} is not positive ({column} <= 0)",
            "repair or drop the rows with zero or negative prices; prices must be > 0.",
        )
    o, h, low, c = (arrays[k] for k in _PRICE_COLUMNS)
    _raise_first_row(
        h < np.maximum(o, c),
        dates,
        source,
        "high is below max(open, close)",
        "check the column order (date, open, high, low, close, volume) and repair the bar; "
        "high must be >= open and close.",
    )
    _raise_first_row(
        low > np.minimum(o, c),
        dates,
        source,
        "low is above min(open, close)",
        "check the column order (date, open, high, low, close, volume) and repair the bar; "
        "low must be <= open and close.",
    )
    _raise_first_row(
        arrays["volume"] < 0,
        dates,
        source,
        "volume is negative",
        "repair the rows with negative volume; volume must be >= 0.",
    )

    clean = pd.DataFrame({"date": dates, **arrays})
    clean.index = pd.RangeIndex(len(clean))
    return Bars(
        symbol=symbol,
        timeframe=timeframe,
        frame=clean,
        source=source,
        gaps=detect_gaps(clean["date"], timeframe),
    )
