"""The core's metadata contracts as typed Dagster metadata (what the UI shows)."""

from typing import Any

import dagster as dg

from diag_assets.core.metadata import MaterializationMetadata


def metadata_value(value: Any) -> dg.MetadataValue:
    """One plain value as the metadata type that shows it: int, float, bool, text or JSON."""
    if value is None:
        return dg.MetadataValue.null()
    # bool before int: a bool is an int to isinstance.
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    if isinstance(value, str):
        return dg.MetadataValue.text(value)
    return dg.MetadataValue.json(value)


def contract_metadata(record: MaterializationMetadata) -> dict[str, dg.MetadataValue]:
    """A contract's fields as the materialization's metadata entries, one per field."""
    return {key: metadata_value(value) for key, value in record.values().items()}


def run_link(run_id: str | None) -> dg.MetadataValue:
    """A run id as a link to the run in the UI (null when there is none).

    Readers of the metadata get the id back as the value (``.value``), as they did when it was
    text.
    """
    return dg.MetadataValue.dagster_run(run_id) if run_id else dg.MetadataValue.null()
