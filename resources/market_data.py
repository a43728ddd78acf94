"""Market data resources: where bars come from, and how a history is cut into folds."""

from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import FoldSpec
from diag_assets.core.market_data.files import DirectoryMarketData
from diag_assets.core.market_data.sources import MarketDataSource
from diag_assets.core.market_data.synthetic import DEFI_TOP5, SyntheticMarketData
from diag_assets.core.plugins import load_plugin

_FOLDS = FoldSpec()


class MarketDataResource(dg.ConfigurableResource, ABC):
    """A universe of symbols with bars, and the walk-forward fold layout of its cells.

    Every setting defines what a capture hashes (the source's bars and the fold layout are
    part of each capture key and source version), so the code location fixes them: a run
    cannot override one (see :func:`bind_market_data` and :func:`refuse_run_override`).
    """

    n_folds: int = Field(default=5, ge=1, le=5, description="Walk-forward folds per symbol.")
    min_train_bars: int = Field(default=8_760, description="Bars in fold 0's training window.")
    validation_bars: int = Field(default=1_440, description="Bars in each validation block.")
    purge_bars: int = Field(default=24, description="Bars dropped before each validation block.")
    label_horizon: int = Field(default=12, description="Bars the label looks ahead.")
    first_validation: str = Field(
        default="",
        description="Cut folds in time: the date fold 0's validation starts (ISO 8601, UTC). "
        "Needs validation_span, purge_span and min_train_span; the bar sizes are then unused.",
    )
    validation_span: str = Field(default="", description="Time layout: each validation block.")
    purge_span: str = Field(default="", description="Time layout: time dropped before it.")
    min_train_span: str = Field(default="", description="Time layout: fold 0's training time.")
    gap_tolerance: str = Field(
        default=_FOLDS.gap_tolerance,
        description="A row whose feature window or label spans a longer gap is dropped.",
    )
    max_validation_gap: str = Field(
        default=_FOLDS.max_validation_gap,
        description="A fold whose validation block holds a longer gap is refused.",
    )
    max_gap_row_share: float = Field(
        default=_FOLDS.max_gap_row_share,
        ge=0,
        le=1,
        description="A fold that loses a larger share of its rows to gaps is refused.",
    )

    def fold_spec(self) -> FoldSpec:
        """The fold layout as the core's :class:`FoldSpec` (validated there)."""
        return FoldSpec(
            n_folds=self.n_folds,
            min_train_bars=self.min_train_bars,
            validation_bars=self.validation_bars,
            purge_bars=self.purge_bars,
            label_horizon=self.label_horizon,
            first_validation=self.first_validation,
            validation_span=self.validation_span,
            purge_span=self.purge_span,
            min_train_span=self.min_train_span,
            gap_tolerance=self.gap_tolerance,
            max_validation_gap=self.max_validation_gap,
            max_gap_row_share=self.max_gap_row_share,
        )

    @abstractmethod
    def source(self) -> MarketDataSource:
        """The core market-data source this resource configures."""


@cache
def _synthetic(universe: str, symbols: tuple[str, ...], n_bars: int, seed: int, timeframe: str):
    # One instance per configuration and process, so its per-symbol bars are generated once.
    return SyntheticMarketData(
        universe=universe, symbols=symbols, n_bars=n_bars, seed=seed, timeframe=timeframe
    )


class SyntheticMarketDataResource(MarketDataResource):
    """Deterministic synthetic bars (the embedded default: the defi_top5 universe)."""

    universe: str = Field(default="defi_top5", description="Universe name used in cell_refs.")
    symbols: list[str] = Field(default=list(DEFI_TOP5), description="Symbols to generate.")
    n_bars: int = Field(default=16_500, ge=100, description="Hourly bars per symbol.")
    seed: int = Field(default=0, ge=0, description="Seed of the generator.")
    timeframe: str = Field(default="1h", description="Bar timeframe.")

    def source(self) -> MarketDataSource:
        """The synthetic source for this configuration."""
        return _synthetic(
            self.universe, tuple(self.symbols), self.n_bars, self.seed, self.timeframe
        )


class DirectoryMarketDataResource(MarketDataResource):
    """Real candles from a folder: freqtrade ``BTC_USDT-1h.feather`` or ``BTCUSDT_1h.csv[.gz]``."""

    directory: str = Field(description="Folder holding one file per symbol.")
    universe: str = Field(description="Universe name used in cell_refs, e.g. 'binance_usdt'.")
    timeframe: str = Field(default="1h", description="Timeframe of the files to use.")

    def source(self) -> MarketDataSource:
        """A directory source over ``directory``."""
        return DirectoryMarketData(
            Path(self.directory), universe=self.universe, timeframe=self.timeframe
        )


class SourceMarketDataResource(MarketDataResource):
    """A team's own market data source: a ``MarketDataSource`` subclass named by import path."""

    source_class: str = Field(description="Import path of the class, package.module:Class.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments the class is built with."
    )

    def source(self) -> MarketDataSource:
        """An instance of the named class, built with ``params``.

        Raises:
            DiagInputError: the path does not resolve to a MarketDataSource subclass, or the
                class refuses its parameters.
        """
        target = load_plugin(self.source_class, "diag_harness.market_data", what="market source")
        if not (isinstance(target, type) and issubclass(target, MarketDataSource)):
            raise DiagInputError(
                f"The market source {self.source_class!r} is {target!r}, not a "
                "MarketDataSource subclass.",
                "point market_data.source at a subclass of "
                "diag_assets.core.market_data.sources.MarketDataSource.",
            )
        try:
            return target(**self.params)
        except TypeError as error:
            raise DiagInputError(
                f"The market source {self.source_class!r} refuses params {self.params}: {error}",
                "give market_data.params the keyword arguments of the class.",
            ) from error


FIXED_BY_LOCATION = (
    "market data settings define what every capture hashes (its bars and fold layout), so "
    "they are the code location's, never a run's"
)


def bind_market_data(resource: MarketDataResource) -> dg.ResourceDefinition:
    """``resource`` as the code location binds it: with no run config at all.

    The run config schema the UI's Launchpad gets has no field under the resource, so a run
    that sets one (``resources.market_data.config.seed``) is refused at launch, before any
    step runs. The settings are changed where the code location gets them: the profile's
    environment (``DIAG_MARKET_DATA_DIR``...) or the audit's ``defs.yaml``.
    """
    return dg.ResourceDefinition(
        resource_fn=lambda _context: resource,
        config_schema={},
        description=f"{type(resource).__name__}: {FIXED_BY_LOCATION}.",
    )


def refuse_run_override(run_config: Mapping[str, Any], resource_key: str) -> None:
    """Refuse a run whose config overrides the market data resource ``resource_key``.

    A resource handed to ``dg.materialize`` (or to a code location) unbound still accepts run
    config; a run that uses it is refused here, at its first step that reads market data.

    Raises:
        DiagInputError: names the overridden settings and where to change them instead.
    """
    resources = run_config.get("resources")
    entry = resources.get(resource_key) if isinstance(resources, Mapping) else None
    config = entry.get("config") if isinstance(entry, Mapping) else None
    if not config:
        return
    named = ", ".join(sorted(config)) if isinstance(config, Mapping) else repr(config)
    raise DiagInputError(
        f"This run overrides the market data resource {resource_key} ({named}) in its run "
        f"config, but {FIXED_BY_LOCATION}: bars or folds of another setting would be hashed "
        "into captures no audit reads.",
        f"remove resources.{resource_key} from the run config; to audit other market data, "
        "change the code location's profile (DIAG_MARKET_DATA_DIR, DIAG_UNIVERSE, "
        "DIAG_TIMEFRAME) or the audit's market_data in its defs.yaml, and reload it.",
    )
