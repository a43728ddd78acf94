"""Reading what an in-process run materialized (the demo, benchmarks and tests use it)."""

from typing import Any

import dagster as dg

from diag_assets.core.names import COLD_CAPTURE_APPROVAL_CHECK


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


def refused_capture(result: dg.ExecuteInProcessResult, capture: str) -> str | None:
    """Why the run refused the cold capture ``capture`` (a user string), or ``None``.

    A refused capture does not fail its run: its ``cold_capture_approved`` check fails and
    the steps after it are skipped, so a caller that only reads ``result.success`` would miss
    it.
    """
    key = dg.AssetKey.from_user_string(capture)
    for evaluation in result.get_asset_check_evaluations():
        if (
            evaluation.asset_key == key
            and evaluation.check_name == COLD_CAPTURE_APPROVAL_CHECK
            and not evaluation.passed
        ):
            return evaluation.description or "cold capture refused"
    return None


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
