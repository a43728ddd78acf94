"""Where the Phase-0 gates read history: the Dagster instance's event log, or a JSONL export."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from diag_assets.core.errors import DiagInputError
from diag_assets.core.gates.history import HistoryEvent, events_from_materialization, read_jsonl
from diag_assets.core.names import CAPTURED_FOLD, S22A1_ANCHOR, S40_VERDICT

HISTORY_ASSETS = (S22A1_ANCHOR, S40_VERDICT, CAPTURED_FOLD)
PAGE = 500


class HistoryConfig(dg.Config):
    """Which history a gate reads."""

    source: str = Field(
        default="instance",
        description="'instance' (this Dagster instance's event log) or 'jsonl' (an export).",
    )
    jsonl_path: str | None = Field(
        default=None, description="The JSONL export to read when source is 'jsonl'."
    )
    lookback_days: float = Field(
        default=60.0, gt=0, description="How far back to read (each gate applies its window)."
    )


def history_from_instance(
    instance: dg.DagsterInstance, since: datetime, prefix: str = ""
) -> list[HistoryEvent]:
    """Every gate-relevant materialization since ``since``, as history events, oldest first.

    ``prefix`` is the audit's: its assets' keys are ``prefix/<asset>``.
    """
    events: list[HistoryEvent] = []
    for asset in HISTORY_ASSETS:
        key = dg.AssetKey([prefix, asset]) if prefix else dg.AssetKey(asset)
        cursor = None
        while True:
            page = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, after_timestamp=since.timestamp()),
                limit=PAGE,
                cursor=cursor,
                ascending=True,
            )
            for record in page.records:
                materialization = record.asset_materialization
                if materialization is None:
                    continue
                metadata = {key: value.value for key, value in materialization.metadata.items()}
                timestamp = datetime.fromtimestamp(record.timestamp, tz=UTC)
                events.extend(events_from_materialization(asset, timestamp, metadata))
            if not page.has_more:
                break
            cursor = page.cursor
    return sorted(events, key=lambda e: e.timestamp)


def load_history(
    config: HistoryConfig, instance: dg.DagsterInstance, now: datetime, prefix: str = ""
) -> list[HistoryEvent]:
    """The history ``config`` names, of the audit with ``prefix``."""
    if config.source == "instance":
        since = now - timedelta(days=config.lookback_days)
        return history_from_instance(instance, since, prefix)
    if config.source == "jsonl":
        if not config.jsonl_path:
            raise DiagInputError(
                "History source 'jsonl' needs a file.", "set jsonl_path to the JSONL export."
            )
        return read_jsonl(config.jsonl_path)
    raise DiagInputError(
        f"History source {config.source!r} is unknown.", "use 'instance' or 'jsonl'."
    )
