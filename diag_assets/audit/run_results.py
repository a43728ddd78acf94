"""Reading what an in-process run materialized (the demo, benchmarks and tests use it)."""

from typing import Any

import dagster as dg


def materialized_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """The metadata values of the one materialization of ``asset`` in ``result``.

    ``asset`` is the asset's user string: ``s40_verdict``, or ``btc_eth/s40_verdict`` for an
    audit with a prefix.
    """
    key = dg.AssetKey.from_user_string(asset)
    events = [
        event for event in result.get_asset_materialization_events() if event.asset_key == key
    ]
    if len(events) != 1:
        raise LookupError(
            f"Run {result.run_id} materialized {asset} {len(events)} times, not once."
        )
    return {key: value.value for key, value in events[0].materialization.metadata.items()}


def observed_metadata(
    result: dg.ExecuteInProcessResult, asset: str, partition: str | None = None
) -> dict[str, Any]:
    """The metadata values of the one observation of ``asset`` (of ``partition``) in ``result``.

    ``market_bars`` is observed, not materialized: a run of the ``market_data`` job records one
    observation per symbol it read.
    """
    key = dg.AssetKey.from_user_string(asset)
    events = [
        event
        for event in result.get_asset_observation_events()
        if event.asset_key == key and (partition is None or event.partition == partition)
    ]
    if len(events) != 1:
        where = f" ({partition})" if partition else ""
        raise LookupError(f"Run {result.run_id} observed {asset}{where} {len(events)} times.")
    observation = events[0].asset_observation_data.asset_observation
    return {key: value.value for key, value in observation.metadata.items()}
