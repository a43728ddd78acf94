"""Reading what an in-process run materialized (the demo, benchmarks and tests use it)."""

from typing import Any

import dagster as dg


def materialized_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """The metadata values of the one materialization of ``asset`` in ``result``."""
    events = [
        event
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(asset)
    ]
    if len(events) != 1:
        raise LookupError(
            f"Run {result.run_id} materialized {asset} {len(events)} times, not once."
        )
    return {key: value.value for key, value in events[0].materialization.metadata.items()}
