"""Who reads a captured fold: the assets that depend on ``captured_fold``, and their diagnostic.

A diagnostic asset declares the diagnostic it runs once, where it is defined, with
``metadata=declares_diagnostic(name)``. This module reads that back: it is the one place that
maps asset names to diagnostics, for the consumer map (which readers the code location has)
and for the capture-mode resolver (which diagnostics a run serves). An asset that depends on
``captured_fold`` and declares nothing is an ``unknown`` reader and is served a full replay.

The readers of the code location are collected when its Definitions are composed
(:func:`capture_readers`, from the asset specs) and handed to the assets that need them: the
consumer map, and the capture itself, which lists them in its definition metadata
(:func:`with_location_readers`) for runs that materialize it without any of them.
"""

from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg
from dagster_shared.check import CheckError

from diag_assets.core.diagnostics.consumers import CaptureReader

DIAGNOSTIC_KEY = "diagnostic"
# The capture's definition metadata: every reader of the code location, asset -> diagnostic.
READERS_KEY = "readers"


def declares_diagnostic(name: str) -> dict[str, str]:
    """The asset metadata that says the asset runs the registered diagnostic ``name``."""
    return {DIAGNOSTIC_KEY: name}


def _plain(value: Any) -> Any:
    # Definition metadata may keep a plain value or wrap it in a MetadataValue (``value``).
    return getattr(value, "value", value)


def _declared(metadata: dict[str, Any]) -> str | None:
    declared = _plain(metadata.get(DIAGNOSTIC_KEY))
    return str(declared) if declared else None


def _specs(assets: Iterable[object]) -> list[dg.AssetSpec]:
    specs = []
    for asset in assets:
        if isinstance(asset, dg.AssetsDefinition):
            specs.extend(asset.specs)
        elif isinstance(asset, dg.AssetSpec):
            specs.append(asset)
    return specs


def capture_readers(assets: Iterable[object], capture: dg.AssetKey) -> list[CaptureReader]:
    """Every asset among ``assets`` that reads the capture ``capture``, with its diagnostic.

    ``assets`` are the assets of a code location as it is composed (its Definitions' assets);
    a multi-asset counts once per spec that depends on the capture, and what is neither an
    assets definition nor an asset spec (a source asset) reads nothing. Sorted by asset name.
    """
    readers = {
        CaptureReader(spec.key.to_user_string(), _declared(dict(spec.metadata)))
        for spec in _specs(assets)
        if any(dep.asset_key == capture for dep in spec.deps)
    }
    return sorted(readers)


def with_location_readers(
    assets: Sequence[dg.AssetsDefinition],
    readers: Iterable[CaptureReader],
    capture: dg.AssetKey,
) -> list[dg.AssetsDefinition]:
    """``assets`` with the capture's definition metadata listing ``readers``.

    Only the spec of ``capture`` changes; the other assets are returned as they are.
    """
    listed = {reader.asset: reader.diagnostic for reader in readers}

    def _list_readers(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key != capture:
            return spec
        return spec.merge_attributes(metadata={READERS_KEY: dg.MetadataValue.json(listed)})

    return [
        dg.map_asset_specs(_list_readers, [asset])[0] if capture in asset.keys else asset
        for asset in assets
    ]


def location_readers(
    context: dg.AssetExecutionContext, capture: dg.AssetKey
) -> list[CaptureReader] | None:
    """The readers the code location handed to the running capture, or ``None`` if none were.

    ``None`` when the capture was not composed into a code location (the module-level asset,
    as tests materialize it) or was called directly.
    """
    try:
        metadata = context.assets_def.specs_by_key[capture].metadata
    except (dg.DagsterError, KeyError):
        return None
    listed = _plain(metadata.get(READERS_KEY))
    if not isinstance(listed, dict):
        return None
    return sorted(CaptureReader(asset, diagnostic) for asset, diagnostic in listed.items())


def job_readers(
    context: dg.AssetExecutionContext, capture: dg.AssetKey
) -> tuple[list[CaptureReader], set[str]]:
    """The readers of ``capture`` in the running job's asset graph, and the selected assets.

    The job's graph holds the assets the job may run (a multi-asset with all its specs); the
    second item names the assets this run materializes.

    Raises:
        dg.DagsterError: the asset was called directly (``dg.build_asset_context``): there is
            no job, so no graph.
    """
    layer = context.job_def.asset_layer
    graph = layer.asset_graph
    selected = {key.to_user_string() for key in layer.selected_asset_keys}
    if not graph.has(capture):
        return [], selected
    readers = [
        CaptureReader(key.to_user_string(), _declared(dict(graph.get(key).metadata)))
        for key in graph.get(capture).child_entity_keys
        if isinstance(key, dg.AssetKey)
    ]
    return sorted(readers), selected


def repository_readers(
    context: dg.AssetExecutionContext, capture: dg.AssetKey
) -> list[CaptureReader]:
    """Every asset of the running code location that depends on ``capture``, with its diagnostic.

    Read from the code location's whole asset graph, so it sees the assets defined beside the
    audit (in another component or module of the same project). Empty when the run has no
    code location (a job executed in process from a Definitions object, or a direct call).
    """
    try:
        graph = context.repository_def.asset_graph
    except (dg.DagsterError, CheckError):
        # Dagster's invariant check when no repository was set on the step.
        return []
    if not graph.has(capture):
        return []
    return sorted(
        CaptureReader(key.to_user_string(), _declared(dict(graph.get(key).metadata)))
        for key in graph.get(capture).child_entity_keys
        if isinstance(key, dg.AssetKey)
    )
