"""``market_bars``: one symbol's validated bars, observed and versioned by their canonical hash.

The bars are not made by Dagster, they are read from the market data source, so
``market_bars`` is an observable source asset: an observation reads each symbol's bars,
validates them and records their canonical hash as the partition's data version. When the
candles change, the next observation records a new version and Dagster marks that symbol's
captured folds, their diagnostics and their report as out of date, without re-running them.
The ``market_data_observation`` schedule observes every registered symbol, so this needs
nobody to remember a job.
"""

import time
import warnings
from typing import Any

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.definitions.external_asset import create_external_asset_from_source_asset

from diag_assets.component.audit import Audit
from diag_assets.core.errors import DiagInputError
from diag_assets.core.hashing.table import canonical_hash
from diag_assets.core.market_data.bars import Bars
from diag_assets.core.names import MARKET_BARS, MARKET_DATA_JOB, MARKET_DATA_SCHEDULE
from diag_assets.partitions import SYMBOL_DIMENSION
from resources.market_data import MarketDataResource

# How often the schedule observes the candles: a change shows in the UI within this delay.
OBSERVATION_CRON = "*/15 * * * *"

with warnings.catch_warnings():
    # The mapping is marked beta upstream; it is the documented way to map a cell to its symbol.
    warnings.simplefilter("ignore", dg.BetaWarning)
    CELL_TO_SYMBOL = dg.MultiToSingleDimensionPartitionMapping(SYMBOL_DIMENSION)


def market_data_of(
    context: dg.AssetExecutionContext | dg.OpExecutionContext, audit: Audit
) -> MarketDataResource:
    """The audit's market data resource in a running step."""
    return getattr(context.resources, audit.market_data_key)


def bars_dep(audit: Audit) -> dg.AssetDep:
    """A cell asset's dependency on its symbol's ``market_bars``.

    Every asset of a cell declares it, so a new version of the bars marks the cell's capture,
    diagnostics and report out of date, each naming ``market_bars`` as the cause.
    """
    return dg.AssetDep(audit.key(MARKET_BARS), partition_mapping=CELL_TO_SYMBOL)


def bars_metadata(bars: Bars, digest: str, elapsed_s: float) -> dict[str, Any]:
    """What an operator reads about a symbol's bars on its observation."""
    frame = bars.frame
    return {
        "source": bars.source,
        "timeframe": bars.timeframe,
        "bars": dg.MetadataValue.int(len(frame)),
        "first_bar": frame["date"].iloc[0].isoformat(),
        "last_bar": frame["date"].iloc[-1].isoformat(),
        "gaps": dg.MetadataValue.int(bars.gaps.count),
        "longest_gap": str(bars.gaps.longest),
        "missing_bars": dg.MetadataValue.int(bars.gaps.missing_bars),
        "extra_columns": dg.MetadataValue.json(list(bars.extra_columns)),
        "extra_column_count": dg.MetadataValue.int(len(bars.extra_columns)),
        "ignored_columns": dg.MetadataValue.json(list(bars.ignored_columns)),
        "canonical_hash": digest,
        "elapsed_s": dg.MetadataValue.float(round(elapsed_s, 3)),
    }


def observe_bars(source_load, key: dg.AssetKey, symbol: str) -> dg.AssetObservation:
    """The observation of ``symbol``'s bars: their canonical hash as data version, and metadata.

    Raises:
        DiagInputError: the symbol's bars do not validate; the message names the file.
    """
    started = time.perf_counter()
    bars = source_load(symbol)
    digest = canonical_hash(bars.frame).digest
    return dg.AssetObservation(
        asset_key=key,
        partition=symbol,
        metadata=bars_metadata(bars, digest, time.perf_counter() - started),
        tags={DATA_VERSION_TAG: digest},
    )


def _refused(refusals: list[tuple[str, DiagInputError]], observed: int) -> dg.Failure:
    lines = [f"{symbol}: {error}" for symbol, error in refusals]
    return dg.Failure(
        description=(
            f"The bars of {len(refusals)} symbol(s) do not validate, so they were not observed "
            f"({observed} other symbol(s) were): " + "; ".join(lines)
        ),
        metadata={
            "refused": dg.MetadataValue.json(
                {symbol: {"error": str(error), "fix": error.fix} for symbol, error in refusals}
            ),
            "fix": "; ".join(sorted({error.fix for _, error in refusals})),
        },
    )


def build_market(audit: Audit) -> dg.Definitions:
    """The audit's ``market_bars``, its ``market_data`` job and the schedule that observes it."""
    key = audit.key(MARKET_BARS)
    symbols = audit.symbols_partitions

    with warnings.catch_warnings():
        # Observable source assets are marked beta upstream; they are how Dagster versions data
        # it does not produce, and the staleness of everything downstream follows them.
        warnings.simplefilter("ignore", dg.BetaWarning)

        @dg.observable_source_asset(
            key=key,
            partitions_def=symbols,
            group_name=audit.group("market_data"),
            tags={"dagster/kind/pandas": ""},
            required_resource_keys={audit.market_data_key},
        )
        def market_bars(context: dg.OpExecutionContext) -> dg.DataVersionsByPartition:
            """A symbol's bars as the market data source serves them, validated and observed.

            Its data version is the canonical hash of the bars, so any change to the source
            marks the symbol's captured folds, their diagnostics and their report as out of
            date. Gaps are reported here, never filled. Bars are not copied: captures read the
            source and hash the window they use. A run for one partition observes that symbol;
            a run without one (the schedule's) observes every registered symbol. Bars that do
            not validate fail the run, naming the file, after the other symbols are observed.
            """
            source = market_data_of(context, audit).source()
            wanted = (
                [context.partition_key]
                if context.has_partition_key
                else context.instance.get_dynamic_partitions(symbols.name or "")
            )
            refusals: list[tuple[str, DiagInputError]] = []
            for symbol in wanted:
                try:
                    observation = observe_bars(source.load, key, symbol)
                except DiagInputError as refused:
                    context.log.error(f"{symbol}: {refused}")
                    refusals.append((symbol, refused))
                    continue
                context.log_event(observation)
            if refusals:
                raise _refused(refusals, len(wanted) - len(refusals))
            # Each observation was logged above with its metadata and data version.
            return dg.DataVersionsByPartition({})

    market_data_job = dg.define_asset_job(
        audit.name(MARKET_DATA_JOB),
        selection=[key],
        description="Observe the market data: validate the bars and record their canonical "
        "hash, for one symbol (a partition) or, without a partition, every registered symbol.",
    )
    observation = dg.ScheduleDefinition(
        name=audit.name(MARKET_DATA_SCHEDULE),
        job=market_data_job,
        cron_schedule=OBSERVATION_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every 15 minutes: observe every registered symbol's bars, so a change "
        "to the candles marks its cells out of date in the UI. Launches no capture.",
    )
    # As an assets definition, as Dagster holds every source asset once it is composed, so the
    # code location treats it as any other of the audit's assets.
    with warnings.catch_warnings():
        # The conversion reads a deprecated property of the observation's op upstream.
        warnings.simplefilter("ignore", DeprecationWarning)
        observed = create_external_asset_from_source_asset(market_bars)
    return dg.Definitions(assets=[observed], jobs=[market_data_job], schedules=[observation])
