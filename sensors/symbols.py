"""``register_symbols``: keeps the symbols partitions in step with the market data source."""

import dagster as dg

from diag_assets.core.names import SYMBOLS_PARTITIONS
from diag_assets.partitions import symbols_partitions
from resources.market_data import MarketDataResource


@dg.sensor(minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING)
def register_symbols(
    context: dg.SensorEvaluationContext, market_data: MarketDataResource
) -> dg.SensorResult | dg.SkipReason:
    """Add every symbol the market data source serves as a partition; never removes one."""
    known = set(context.instance.get_dynamic_partitions(SYMBOLS_PARTITIONS))
    new = [s for s in market_data.source().symbols() if s not in known]
    if not new:
        return dg.SkipReason(f"All {len(known)} symbols are registered.")
    return dg.SensorResult(dynamic_partitions_requests=[symbols_partitions.build_add_request(new)])
