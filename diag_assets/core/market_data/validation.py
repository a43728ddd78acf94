"""Bar validation and gap reporting: a bar table in, :class:`Bars` or a precise error out.

Every consumer of candles goes through :func:`validate_bars`, so downstream code can rely on
one shape (see :class:`~diag_assets.core.market_data.bars.Bars`). OHLCV is validated; the
other numeric columns pass through as extra columns, checked only for what float64 cannot
carry. Errors name the source, the first bad row and the fix. Gaps are reported by
:func:`detect_gaps`, never filled.
"""

import re
from dataclasses import dataclass

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

# An empty name, or pandas' name for a column whose header cell is empty: "Unnamed: 3"
# (or "Unnamed: 3_level_1").
_UNNAMED = re.compile(r"(?:unnamed: \d+(?:_level_\d+)?)?")
# Every integer of smaller magnitude is exact in float64; from here on some are not.
_FLOAT64_EXACT_INT = 2.0**53


def gap_positions(dates: pd.Series, timeframe: str) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Where a strictly increasing series of bar open times has gaps, and how long each is.

    Args:
        dates: Bar open times, strictly increasing (as :func:`validate_bars` guarantees);
            naive values are taken as UTC.
        timeframe: Bar length, see :func:`timeframe_to_timedelta`.

    Returns:
        ``(times, at, missing_ns)``: the dates as UTC timestamps, the positions ``i`` whose
        next bar is further away than one timeframe, and the time missing after each, in
        nanoseconds (the spacing minus one timeframe).

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
    spacing = np.diff(ns)
    if (spacing <= 0).any():
        pos = int(np.flatnonzero(spacing <= 0)[0]) + 1
        raise DiagInputError(
            f"detect_gaps: dates are not strictly increasing at row {pos} "
            f"({series.iloc[pos].isoformat()}).",
            "validate the bars with validate_bars() before looking for gaps.",
        )
    at = np.flatnonzero(spacing > step.value)
    return series, at, spacing[at] - step.value


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
    step_ns = timeframe_to_timedelta(timeframe).value
    series, at, missing = gap_positions(dates, timeframe)
    if at.size == 0:
        return GapReport(count=0, longest=pd.Timedelta(0), missing_bars=0, first_gaps=())
    first_gaps = tuple(
        (series.iloc[int(i)], series.iloc[int(i) + 1]) for i in at[:_MAX_REPORTED_GAPS]
    )
    return GapReport(
        count=int(at.size),
        longest=pd.Timedelta(int(missing.max()), unit="ns"),
        missing_bars=int(((missing + step_ns) // step_ns - 1).sum()),
        first_gaps=first_gaps,
    )


def _fmt_ts(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return repr(value)


@dataclass(frozen=True)
class _Columns:
    """A bar table split by column role."""

    ohlcv: pd.DataFrame
    extras: tuple[tuple[str, pd.Series], ...]
    ignored: tuple[str, ...]


def _column_key(label: object) -> str:
    return str(label).strip().lower()


def _map_columns(frame: pd.DataFrame, source: str) -> _Columns:
    """Split a frame into BAR_COLUMNS (matched case-insensitively), extras and ignored names."""
    if not any(_column_key(c) == "date" for c in frame.columns) and (
        _column_key(frame.index.name or "") == "date"
    ):
        # A date index (e.g. from set_index("date")) is as good as a date column.
        frame = frame.reset_index()
    found: dict[str, object] = {}
    for col in frame.columns:
        key = _column_key(col)
        if key in found:
            what = f"keep only one {key!r} column in the data."
            if key not in BAR_COLUMNS:
                what = "rename or drop one of them: every column needs a name of its own."
            raise DiagInputError(
                f"{source}: columns {found[key]!r} and {col!r} both map to {key!r} "
                "(names are stripped and matched case-insensitively).",
                what,
            )
        found[key] = col
    missing = [c for c in BAR_COLUMNS if c not in found]
    if missing:
        raise DiagInputError(
            f"{source}: missing column(s) {', '.join(missing)}; found columns "
            f"{[str(c) for c in frame.columns]}.",
            f"provide columns {', '.join(BAR_COLUMNS)} (any letter case; other numeric "
            "columns are kept as extra columns).",
        )
    # Keys are unique, so labels are too: label lookups below are unambiguous.
    ohlcv = frame[[found[c] for c in BAR_COLUMNS]].copy()
    ohlcv.columns = list(BAR_COLUMNS)
    extras: list[tuple[str, pd.Series]] = []
    ignored: list[str] = []
    for key, col in found.items():
        if key in BAR_COLUMNS:
            continue
        series = frame[col].reset_index(drop=True)
        if _UNNAMED.fullmatch(key) or not _is_numeric(series):
            ignored.append(str(col))
        else:
            extras.append((key, series))
    return _Columns(
        ohlcv=ohlcv.reset_index(drop=True), extras=tuple(extras), ignored=tuple(ignored)
    )


def _is_numeric(series: pd.Series) -> bool:
    """Integers, floats and booleans, numpy or pandas nullable (complex is not numeric here)."""
    types, dtype = pd.api.types, series.dtype
    return bool(
        types.is_bool_dtype(dtype) or types.is_integer_dtype(dtype) or types.is_float_dtype(dtype)
    )


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


def _parse_extra(raw: pd.Series, column: str, dates: pd.Series, source: str) -> np.ndarray:
    """An extra column as float64, or an error naming the first row float64 cannot carry."""
    values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_integer_dtype(raw.dtype):
        _raise_first_row(
            np.abs(values) >= _FLOAT64_EXACT_INT,
            dates,
            source,
            f"extra column {column!r} holds an integer of magnitude 2**53 or more, which "
            "float64 cannot store exactly",
            f"drop column {column!r} or store it in a coarser unit (e.g. epoch milliseconds "
            "instead of nanoseconds); extra columns are kept as float64.",
        )
    _raise_first_row(
        np.isinf(values),
        dates,
        source,
        f"extra column {column!r} is infinite",
        f"replace the infinite values of {column!r} with finite numbers or leave them empty "
        f"(NaN, counted as missing), or drop column {column!r}.",
    )
    return values


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

    Column names are stripped and matched case-insensitively (``Close`` is ``close``); a
    ``date`` index is accepted in place of a ``date`` column. The input is not modified.
    Rows are never sorted, de-duplicated or filled: such problems are errors.

    Columns beyond date and OHLCV are *extra columns* when their dtype is integer, float or
    boolean: they follow ``volume`` in source order, named in lower case, as float64, and
    only two checks apply to them: no infinity, and no integer float64 cannot hold exactly
    (magnitude 2**53 or more). NaN is allowed and counted. Other columns (text, datetimes,
    categories) and unnamed ones (``Unnamed: 0``, a written row index) are left out and
    listed in ``Bars.ignored_columns``. Two columns whose names match once stripped and
    lower-cased are an error, whatever their role.

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
    has them); then the extra columns' checks. Row positions in messages are 0-based
    positions in ``frame``.

    Args:
        frame: Bar table with columns date, open, high, low, close, volume, and any others.
        symbol: Symbol the bars belong to.
        timeframe: Bar length, see :func:`timeframe_to_timedelta`.
        source: Where the table came from (a file path or a label); named in every error.

    Returns:
        The validated bars, with the gaps reported in ``Bars.gaps`` and the extra and
        ignored columns listed.

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
    columns = _map_columns(frame, source)
    table = columns.ohlcv
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

    extras = {name: _parse_extra(raw, name, dates, source) for name, raw in columns.extras}

    clean = pd.DataFrame({"date": dates, **arrays, **extras})
    clean.index = pd.RangeIndex(len(clean))
    return Bars(
        symbol=symbol,
        timeframe=timeframe,
        frame=clean,
        source=source,
        gaps=detect_gaps(clean["date"], timeframe),
        extra_columns=tuple(extras),
        ignored_columns=columns.ignored,
        extra_nan_counts={name: int(np.isnan(v).sum()) for name, v in extras.items()},
    )
