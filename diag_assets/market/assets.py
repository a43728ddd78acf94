"""``market_bars``: one symbol's validated bars, observed and versioned by their canonical hash.

The bars are not made by Dagster, they are read from the market data source, so
``market_bars`` is an observable source asset: an observation reads each symbol's bars,
validates them and records their canonical hash as the partition's data version. When the
candles change, the next observation records a new version and Dagster marks that symbol's
captured folds, their diagnostics and their report as out of date, without re-running them.
The ``market_data_observation`` schedule reads every registered symbol's bars and observes
each symbol whose bars changed, so this needs nobody to remember a job.
"""

import time
import warnings
from typing import Any

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.definitions.external_asset import create_external_asset_from_source_asset

from diag_assets.component.audit import Audit
from diag_assets.core.errors import DiagInputError
from diag_assets.core.hashing.digests import bytes_digest
from diag_assets.core.hashing.table import canonical_hash
from diag_assets.core.market_data.bars import Bars
from diag_assets.core.market_data.sources import MarketDataSource
from diag_assets.core.names import MARKET_BARS, MARKET_DATA_JOB, MARKET_DATA_SCHEDULE
from diag_assets.partitions import SYMBOL_DIMENSION
from resources.market_data import MarketDataResource, refuse_run_override

# How often the schedule observes the candles: a change shows in the UI within this delay.
OBSERVATION_CRON = "*/15 * * * *"

with warnings.catch_warnings():
    # The mapping is marked beta upstream; it is the documented way to map a cell to its symbol.
    warnings.simplefilter("ignore", dg.BetaWarning)
    CELL_TO_SYMBOL = dg.MultiToSingleDimensionPartitionMapping(SYMBOL_DIMENSION)


def market_data_of(
    context: dg.AssetExecutionContext | dg.OpExecutionContext, audit: Audit
) -> MarketDataResource:
    """The audit's market data resource in a running step.

    Raises:
        dg.Failure: the run's config overrides the resource's settings (the reason and the
            fix in its description); nothing has read the market data yet.
    """
    try:
        run_config = context.run.run_config
    except dg.DagsterError:
        # A direct call (dg.build_asset_context) has no run, so no run config.
        run_config = {}
    try:
        refuse_run_override(run_config, audit.market_data_key)
    except DiagInputError as refused:
        raise dg.Failure(description=str(refused), metadata={"fix": refused.fix}) from refused
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


def bars_version(source: MarketDataSource, symbol: str) -> tuple[Bars, str]:
    """``symbol``'s validated bars and their canonical hash (their data version).

    Raises:
        DiagInputError: the symbol's bars do not validate; the message names the file.
    """
    bars = source.load(symbol)
    return bars, canonical_hash(bars.frame).digest


def bars_observation(
    source: MarketDataSource, key: dg.AssetKey, symbol: str
) -> dg.AssetObservation:
    """The observation of ``symbol``'s bars: their canonical hash as data version, and metadata.

    Raises:
        DiagInputError: the symbol's bars do not validate; the message names the file.
    """
    started = time.perf_counter()
    bars, digest = bars_version(source, symbol)
    return dg.AssetObservation(
        asset_key=key,
        partition=symbol,
        metadata=bars_metadata(bars, digest, time.perf_counter() - started),
        tags={DATA_VERSION_TAG: digest},
    )


def observed_version(
    instance: dg.DagsterInstance, key: dg.AssetKey, symbol: str
) -> tuple[str | None, int | None]:
    """The data version of ``symbol``'s latest observation and its storage id, if it has one."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[symbol]), limit=1
    ).records
    observation = records[0].asset_observation if records else None
    if observation is None:
        return None, None
    return observation.tags.get(DATA_VERSION_TAG), records[0].storage_id


def forget_materializations(context: dg.OpExecutionContext, key: dg.AssetKey) -> None:
    """Wipe the event history of ``key`` if it still holds materializations, once.

    ``market_bars`` was a materialized asset in earlier releases. Dagster keeps pointing a new
    capture's provenance at the asset's last materialization while one exists, so every capture
    would look out of date at once; the first observation therefore clears that history. The
    cells audited on it are shown out of date once; a re-audit (a HIT when the fold's window
    did not change) brings them back in sync.
    """
    if context.instance.get_latest_materialization_event(key) is None:
        return
    context.log.warning(
        f"{key.to_user_string()} holds materializations from before it was observed: wiping "
        "its event history, so captures record their bars by observation. Cells audited "
        "earlier show as out of date until audited again."
    )
    context.instance.wipe_assets([key])


def _refused(refusals: list[tuple[str, DiagInputError]], wanted: int) -> dg.Failure:
    lines = [f"{symbol}: {error}" for symbol, error in refusals]
    others = (
        f" The {wanted - len(refusals)} other symbol(s) were not observed by this run either; "
        "the schedule observes each symbol in a run of its own."
        if wanted > len(refusals)
        else ""
    )
    return dg.Failure(
        description=f"The bars of {len(refusals)} symbol(s) do not validate: "
        + "; ".join(lines)
        + others,
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
            a run without one observes every registered symbol, or none if one does not
            validate. Bars that do not validate fail the run, naming the file.
            """
            source = market_data_of(context, audit).source()
            wanted = (
                [context.partition_key]
                if context.has_partition_key
                else context.instance.get_dynamic_partitions(symbols.name or "")
            )
            observations: list[dg.AssetObservation] = []
            refusals: list[tuple[str, DiagInputError]] = []
            for symbol in wanted:
                try:
                    observations.append(bars_observation(source, key, symbol))
                except DiagInputError as refused:
                    context.log.error(f"{symbol}: {refused}")
                    refusals.append((symbol, refused))
            if refusals:
                raise _refused(refusals, len(wanted))
            forget_materializations(context, key)
            for observation in observations:
                context.log_event(observation)
            # Each observation is logged above, with its metadata and its data version.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", dg.BetaWarning)
                return dg.DataVersionsByPartition({})

    market_data_job = dg.define_asset_job(
        audit.name(MARKET_DATA_JOB),
        selection=[key],
        description="Observe the market data: validate the bars and record their canonical "
        "hash, for one symbol (a partition) or, without a partition, every registered symbol.",
    )

    @dg.schedule(
        name=audit.name(MARKET_DATA_SCHEDULE),
        job=market_data_job,
        cron_schedule=OBSERVATION_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        required_resource_keys={audit.market_data_key},
        description="Every 15 minutes: reads every registered symbol's bars and launches an "
        "observation (the market_data job, one run per symbol) for each symbol whose bars "
        "changed since their last observation or were never observed, so changed candles mark "
        "its cells out of date in the UI. Bars that do not validate get one failed run naming "
        "the file. Launches no capture.",
    )
    def market_data_observation(context: dg.ScheduleEvaluationContext):
        source = getattr(context.resources, audit.market_data_key).source()
        requests = []
        registered = context.instance.get_dynamic_partitions(symbols.name or "")
        for symbol in registered:
            last, storage_id = observed_version(context.instance, key, symbol)
            try:
                _, digest = bars_version(source, symbol)
            except DiagInputError as refused:
                # One failed run per problem, announced again once the symbol was observed.
                problem = bytes_digest(str(refused).encode())[:12]
                requests.append(
                    dg.RunRequest(
                        partition_key=symbol,
                        run_key=f"{symbol}:refused:{problem}:{storage_id}",
                    )
                )
                continue
            if digest != last:
                # Keyed by the bars and the observation they differ from: launched once.
                requests.append(
                    dg.RunRequest(partition_key=symbol, run_key=f"{symbol}:{digest}:{storage_id}")
                )
        if not requests:
            return dg.SkipReason(
                f"The bars of all {len(registered)} registered symbol(s) match their last "
                "observation."
            )
        return requests

    # As an assets definition, as Dagster holds every source asset once it is composed, so the
    # code location treats it as any other of the audit's assets.
    with warnings.catch_warnings():
        # The conversion reads a deprecated property of the observation's op upstream.
        warnings.simplefilter("ignore", DeprecationWarning)
        observed = create_external_asset_from_source_asset(market_bars)
    return dg.Definitions(
        assets=[observed], jobs=[market_data_job], schedules=[market_data_observation]
    )
