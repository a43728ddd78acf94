"""The market-data source protocol: where the bars of one universe come from.

Each backend lives in its own module: :mod:`~diag_assets.core.market_data.synthetic` generates
the bars, :mod:`~diag_assets.core.market_data.files` reads them from a directory of files.
"""

from abc import ABC, abstractmethod

from diag_assets.core.errors import DiagInputError
from diag_assets.core.market_data.bars import Bars


class MarketDataSource(ABC):
    """Where the bars of one universe come from.

    Attributes:
        universe: Name of the symbol universe, e.g. ``"defi_top5"``.
        timeframe: Bar length of every series this source returns.
    """

    universe: str
    timeframe: str

    @abstractmethod
    def symbols(self) -> tuple[str, ...]:
        """Return the symbols this source can load."""

    @abstractmethod
    def load(self, symbol: str) -> Bars:
        """Return the validated bars of one symbol.

        Raises:
            DiagInputError: The symbol is unknown (the message lists the known symbols) or
                its data is invalid.
        """

    def _require_known(self, symbol: str) -> None:
        known = self.symbols()
        if symbol not in known:
            raise DiagInputError(
                f"Symbol {symbol!r} is not in universe {self.universe!r} "
                f"({type(self).__name__}); known symbols: {', '.join(known)}.",
                f"use one of {', '.join(known)}, or add the symbol's data to the universe.",
            )
