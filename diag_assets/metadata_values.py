"""The core's metadata contracts as typed Dagster metadata (what the UI shows)."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from matplotlib.figure import Figure
from pydantic import BaseModel

from diag_assets.core.figures import markdown_image, png
from diag_assets.core.gates.report import numeric_fields
from diag_assets.core.metadata import MaterializationMetadata
from diag_assets.core.names import gate_figure_key


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


def image_metadata(pictures: Mapping[str, Figure]) -> dict[str, dg.MetadataValue]:
    """Each figure as a Markdown image entry under its name, which the UI shows inline.

    A figure that stays over the PNG budget even at the lowest resolution is shown as the
    sentence saying so, in its place: the result's other metadata is still recorded.
    """
    images: dict[str, dg.MetadataValue] = {}
    for name, figure in pictures.items():
        try:
            images[name] = dg.MetadataValue.md(markdown_image(png(figure), name))
        except ValueError as error:
            images[name] = dg.MetadataValue.md(f"_{name}: {error}_")
    return images


def numeric_figure_metadata(figures: BaseModel) -> dict[str, dg.MetadataValue]:
    """Every numeric figure of a report as an int or float entry (``figures.<field>``).

    One entry per numeric field of the figures model (:func:`numeric_fields`), also when its
    value is ``None`` (a null entry), so the set of keys is the same on every run.
    """
    entries: dict[str, dg.MetadataValue] = {}
    for field, kind in numeric_fields(type(figures)).items():
        value = getattr(figures, field)
        key = gate_figure_key(field)
        if value is None:
            entries[key] = dg.MetadataValue.null()
        elif kind is int:
            entries[key] = dg.MetadataValue.int(int(value))
        else:
            entries[key] = dg.MetadataValue.float(float(value))
    return entries


def run_link(run_id: str | None) -> dg.MetadataValue:
    """A run id as a link to the run in the UI (null when there is none).

    Readers of the metadata get the id back as the value (``.value``), as they did when it was
    text.
    """
    return dg.MetadataValue.dagster_run(run_id) if run_id else dg.MetadataValue.null()
