"""``market_bars``: one symbol's validated bars, versioned by their canonical hash."""

import time

import dagster as dg

from diag_assets.core.hashing.table import canonical_hash
from diag_assets.core.names import MARKET_DATA_JOB
from diag_assets.partitions import symbols_partitions
from resources.market_data import MarketDataResource


@dg.asset(
    partitions_def=symbols_partitions,
    group_name="market_data",
    kinds={"pandas"},
)
def market_bars(context: dg.AssetExecutionContext, market_data: MarketDataResource):
    """A symbol's bars as the market data source serves them, validated.

    Its data version is the canonical hash of the bars, so any change to the source marks
    the symbol's captured folds as out of date. Gaps are reported here, never filled. Bars
    are not copied: captures read the source and hash the window they use.
    """
    started = time.perf_counter()
    bars = market_data.source().load(context.partition_key)
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
    MARKET_DATA_JOB,
    selection=[market_bars],
    description="Validate one symbol's bars and record their canonical hash.",
)

defs = dg.Definitions(assets=[market_bars], jobs=[market_data_job])
