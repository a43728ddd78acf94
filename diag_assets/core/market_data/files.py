"""A directory of candle files: which file holds which symbol, and how each is read.

Two layouts are recognized (see :func:`scan_directory`): freqtrade's ``{BASE}_{QUOTE}-{tf}.feather``
and plain ``{SYMBOL}_{tf}.csv``, ``.csv.gz`` or ``.parquet``. Every file read is validated by
:func:`~diag_assets.core.market_data.validation.validate_bars`.
"""

import re
from pathlib import Path

import pandas as pd

from diag_assets.core.errors import DiagInputError
from diag_assets.core.market_data.bars import Bars, check_symbol, timeframe_to_timedelta
from diag_assets.core.market_data.sources import MarketDataSource
from diag_assets.core.market_data.validation import validate_bars

_FREQTRADE_HINT = "{BASE}_{QUOTE}-{tf}.feather (freqtrade, e.g. BTC_USDT-1h.feather)"
_PLAIN_HINT = "{SYMBOL}_{tf}.csv, {SYMBOL}_{tf}.csv.gz or {SYMBOL}_{tf}.parquet"


def _file_kind(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, kind in (
        (".csv.gz", "csv"),
        (".csv", "csv"),
        (".parquet", "parquet"),
        (".feather", "feather"),
    ):
        if name.endswith(suffix):
            return kind
    return None


def load_bars_file(path: Path, *, symbol: str, timeframe: str) -> Bars:
    """Read one bar file and validate it.

    Supported formats, chosen by file extension: ``.feather`` (Arrow IPC, as freqtrade writes),
    ``.csv`` and ``.csv.gz`` (gzip by extension), ``.parquet``. The file must hold columns
    date, open, high, low, close, volume; its other numeric columns (funding rate, open
    interest, number of trades ...) are kept as extra columns, with the types the reader
    gives them (CSV types are inferred by pandas). See :func:`validate_bars` for what is
    accepted.

    Args:
        path: The file.
        symbol: Symbol the file holds, e.g. ``"BTCUSDT"``.
        timeframe: Bar length of the file, e.g. ``"1h"``.

    Returns:
        The validated bars, with ``source`` set to the file path.

    Raises:
        DiagInputError: The file is missing, has an unsupported extension, cannot be read,
            or fails validation.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DiagInputError(
            f"{source}: bar file does not exist.",
            "check the path and the data directory setting.",
        )
    kind = _file_kind(path)
    if kind is None:
        raise DiagInputError(
            f"{source}: unsupported file type.",
            "provide the bars as .feather, .csv, .csv.gz or .parquet.",
        )
    try:
        if kind == "feather":
            raw = pd.read_feather(path)
        elif kind == "parquet":
            raw = pd.read_parquet(path)
        else:
            gzipped = path.name.lower().endswith(".gz")
            raw = pd.read_csv(path, compression="gzip" if gzipped else None)
    except Exception as exc:  # any reader failure means a bad file, whatever the library raises
        raise DiagInputError(
            f"{source}: cannot read the file as {kind} ({type(exc).__name__}: {exc}).",
            f"check that the file is a complete, uncorrupted {kind} file.",
        ) from exc
    return validate_bars(raw, symbol=symbol, timeframe=timeframe, source=source)


def _layout_patterns(timeframe: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    tf = re.escape(timeframe)
    # Matched against whole file names (fullmatch): no trailing newline or space slips through.
    freqtrade = re.compile(rf"(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)-{tf}\.feather")
    plain = re.compile(rf"(?P<symbol>[A-Za-z0-9]+)_{tf}\.(?:csv|csv\.gz|parquet)")
    return freqtrade, plain


def scan_directory(directory: Path, timeframe: str) -> dict[str, Path]:
    """Find the bar files of one timeframe in a directory (not recursive).

    Two layouts are recognized, and may be mixed:

    * freqtrade: ``{BASE}_{QUOTE}-{tf}.feather``, e.g. ``BTC_USDT-1h.feather`` -> ``BTCUSDT``;
    * plain: ``{SYMBOL}_{tf}.csv``, ``.csv.gz`` or ``.parquet``, e.g. ``BTCUSDT_1h.csv.gz``.

    Symbols are upper-cased. Files of other timeframes and other names are ignored.

    Args:
        directory: The directory to scan.
        timeframe: Bar length, see :func:`timeframe_to_timedelta`.

    Returns:
        Symbol -> file, sorted by symbol.

    Raises:
        DiagInputError: Unknown timeframe; the directory does not exist or holds no matching
            file; two files map to one symbol; a matching name gives an invalid symbol.
    """
    timeframe_to_timedelta(timeframe)
    directory = Path(directory)
    expected = (
        f"expected file names {_FREQTRADE_HINT.replace('{tf}', timeframe)} or "
        f"{_PLAIN_HINT.replace('{tf}', timeframe)}"
    )
    if not directory.is_dir():
        raise DiagInputError(
            f"Bar directory {directory} does not exist (timeframe {timeframe}).",
            f"point the data directory at a folder with {expected}.",
        )
    freqtrade, plain = _layout_patterns(timeframe)
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        if match := freqtrade.fullmatch(path.name):
            symbol = (match["base"] + match["quote"]).upper()
        elif match := plain.fullmatch(path.name):
            symbol = match["symbol"].upper()
        else:
            continue
        check_symbol(symbol, str(path))
        if symbol in found:
            raise DiagInputError(
                f"Bar directory {directory}: files {found[symbol].name} and {path.name} both "
                f"hold symbol {symbol} for timeframe {timeframe}.",
                "keep only one file per symbol and timeframe (move or delete the other).",
            )
        found[symbol] = path
    if not found:
        raise DiagInputError(
            f"Bar directory {directory} holds no bar file for timeframe {timeframe}.",
            f"add files named as {expected}; files of other timeframes are ignored.",
        )
    return dict(sorted(found.items()))


class DirectoryMarketData(MarketDataSource):
    """Bars read from a directory laid out as :func:`scan_directory` expects.

    The directory is scanned once, at construction, so a bad directory fails before any
    work is done.
    """

    def __init__(self, directory: Path, universe: str, timeframe: str = "1h") -> None:
        self.directory = Path(directory)
        self.universe = universe
        self.timeframe = timeframe
        self._files = scan_directory(self.directory, timeframe)

    def symbols(self) -> tuple[str, ...]:
        """Return the symbols found in the directory, sorted."""
        return tuple(self._files)

    def path_for(self, symbol: str) -> Path:
        """Return the file that holds ``symbol``."""
        self._require_known(symbol)
        return self._files[symbol]

    def load(self, symbol: str) -> Bars:
        """Read and validate the bars of one symbol."""
        return load_bars_file(self.path_for(symbol), symbol=symbol, timeframe=self.timeframe)
