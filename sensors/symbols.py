"""``register_symbols``: keeps an audit's symbols partitions in step with its market data."""

import dagster as dg

from diag_assets.component.audit import Audit
from diag_assets.core.names import REGISTER_SYMBOLS_SENSOR


def build_register_symbols(audit: Audit) -> dg.SensorDefinition:
    """The sensor that registers every symbol of the audit's market data as a partition."""
    partitions = audit.symbols_partitions

    @dg.sensor(
        name=audit.name(REGISTER_SYMBOLS_SENSOR),
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={audit.market_data_key},
        description="Adds every symbol the audit's market data serves as a partition of its "
        "symbols (and so of its cells), every five minutes; it never removes one. A skipped "
        "tick says how many symbols are registered.",
    )
    def register_symbols(
        context: dg.SensorEvaluationContext, **_called_with: object
    ) -> dg.SensorResult | dg.SkipReason:
        """Add every symbol the market data source serves as a partition; never removes one."""
        # A direct call (dg.build_sensor_context) also passes the required resources by
        # key; they are read from the context, as in a tick.
        market_data = getattr(context.resources, audit.market_data_key)
        known = set(context.instance.get_dynamic_partitions(partitions.name or ""))
        new = [s for s in market_data.source().symbols() if s not in known]
        if not new:
            return dg.SkipReason(f"All {len(known)} symbols are registered.")
        return dg.SensorResult(dynamic_partitions_requests=[partitions.build_add_request(new)])

    return register_symbols
