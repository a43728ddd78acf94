"""``market_bars``: one symbol's validated bars, versioned by their canonical hash."""

import time

import dagster as dg

from diag_assets.component.audit import Audit
from diag_assets.core.errors import DiagInputError
from diag_assets.core.hashing.table import canonical_hash
from diag_assets.core.names import MARKET_BARS, MARKET_DATA_JOB
from resources.market_data import MarketDataResource, refuse_run_override


def market_data_of(context: dg.AssetExecutionContext, audit: Audit) -> MarketDataResource:
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


def build_market(audit: Audit) -> dg.Definitions:
    """The audit's ``market_bars`` and its ``market_data`` job."""

    @dg.asset(
        key=audit.key(MARKET_BARS),
        partitions_def=audit.symbols_partitions,
        group_name=audit.group("market_data"),
        kinds={"pandas"},
        required_resource_keys={audit.market_data_key},
    )
    def market_bars(context: dg.AssetExecutionContext):
        """A symbol's bars as the market data source serves them, validated.

        Its data version is the canonical hash of the bars, so any change to the source marks
        the symbol's captured folds as out of date. Gaps are reported here, never filled. Bars
        are not copied: captures read the source and hash the window they use.
        """
        started = time.perf_counter()
        bars = market_data_of(context, audit).source().load(context.partition_key)
        digest = canonical_hash(bars.frame).digest
        frame = bars.frame
        return dg.MaterializeResult(
            data_version=dg.DataVersion(digest),
            metadata={
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
                "elapsed_s": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
            },
        )

    market_data_job = dg.define_asset_job(
        audit.name(MARKET_DATA_JOB),
        selection=[market_bars],
        description="Validate one symbol's bars and record their canonical hash.",
    )
    return dg.Definitions(assets=[market_bars], jobs=[market_data_job])
