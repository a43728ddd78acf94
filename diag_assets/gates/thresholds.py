"""Gate thresholds in the Launchpad: one typed, optional field per setting of the gate.

Each gate's settings model (``AnchorCostSettings``, ``ReuseSettings``, ``DriftRateSettings``,
``CaptureSizeSettings`` in ``diag_assets/core/gates/``) is the one owner of its thresholds:
their types, defaults, bounds and descriptions. The run config classes here are built from
it, so the Launchpad lists every threshold with its description, its default and its bounds,
and a value outside them (or a name the gate does not have) is refused before the gate reads
any history. A field left unset takes the settings model's default.
"""

import dataclasses
from typing import Any, Optional

import dagster as dg
from pydantic import BaseModel, Field

from diag_assets.core.gates.anchor_cost import AnchorCostSettings
from diag_assets.core.gates.capture_size import CaptureSizeSettings
from diag_assets.core.gates.drift_rate import DriftRateSettings
from diag_assets.core.gates.reuse import ReuseSettings

# How a description reads each bound of a settings field.
_BOUND_WORDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    """The numeric bounds (``ge``, ``gt``, ``le``, ``lt``) among a field's constraints."""
    bounds: dict[str, Any] = {}
    for constraint in metadata:
        if dataclasses.is_dataclass(constraint) and not isinstance(constraint, type):
            given = dataclasses.asdict(constraint)
            bounds |= {k: v for k, v in given.items() if k in _BOUND_WORDS and v is not None}
    return bounds


def threshold_fields(settings: type[BaseModel]) -> dict[str, Any]:
    """The fields of a run config class that mirrors ``settings``, as a class namespace.

    Each field of ``settings`` becomes an optional field of the same type and bounds, whose
    description is the setting's, followed by its default and bounds; unset (``None``) means
    the setting's default. Used in a class body: ``vars().update(threshold_fields(...))``.
    """
    annotations: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for name, info in settings.model_fields.items():
        bounds = _bounds(info.metadata)
        limits = ", ".join(f"{_BOUND_WORDS[k]} {v}" for k, v in bounds.items())
        description = f"{info.description} Unset: {info.default}." + (
            f" Bounds: {limits}." if limits else ""
        )
        annotations[name] = Optional[info.annotation]  # noqa: UP045 (built at run time)
        fields[name] = Field(default=None, description=description, **bounds)
    return {"__annotations__": annotations, **fields}


def given(thresholds: dg.Config) -> dict[str, Any]:
    """The thresholds a run sets (the unset ones take the settings' defaults)."""
    return thresholds.model_dump(exclude_none=True)


class AnchorCostThresholds(dg.Config):
    """Thresholds of the anchor's cost gate (g_b7_cost): ``AnchorCostSettings``."""

    vars().update(threshold_fields(AnchorCostSettings))


class ReuseThresholds(dg.Config):
    """Thresholds of the re-audit reuse gate (g_a1_reuse): ``ReuseSettings``."""

    vars().update(threshold_fields(ReuseSettings))


class DriftRateThresholds(dg.Config):
    """Thresholds of the capture cache's drift-rate gate (lever1_gate2_drift)."""

    vars().update(threshold_fields(DriftRateSettings))


class CaptureSizeThresholds(dg.Config):
    """The budget of the capture cache's size gate (lever1_gate3_size)."""

    vars().update(threshold_fields(CaptureSizeSettings))
