"""Who reads a captured fold: the assets downstream of ``captured_fold``, as the graph says.

A diagnostic asset declares the diagnostic it runs once, where it is defined, with
``metadata=declares_diagnostic(name)``. This module reads that back from the code location's
asset graph: it is the one place that maps asset names to diagnostics, for the capture-mode
resolver (which diagnostics a run serves) and for the consumer map (which readers exist). An
asset that depends on ``captured_fold`` and declares nothing is an ``unknown`` reader and is
served a full replay.
"""

import dagster as dg
from dagster_shared.check import CheckError

from diag_assets.core.diagnostics.consumers import CaptureReader
from diag_assets.core.names import CAPTURED_FOLD

CAPTURED_FOLD_KEY = dg.AssetKey(CAPTURED_FOLD)
DIAGNOSTIC_KEY = "diagnostic"


def declares_diagnostic(name: str) -> dict[str, str]:
    """The asset metadata that says the asset runs the registered diagnostic ``name``."""
    return {DIAGNOSTIC_KEY: name}


def code_location_graph(context: dg.AssetExecutionContext):
    """The asset graph of the code location the running asset belongs to.

    A run of a loaded code location (the webserver, the daemon, ``dagster job execute``) has
    its repository's graph. An in-process run (``dg.materialize``, ``execute_in_process``) has
    no repository: it sees only its own job's graph, the assets it materializes (a
    multi-asset with all its specs).

    Raises:
        dg.DagsterError: the asset was called directly (``dg.build_asset_context``): there is
            no run, so no graph.
    """
    try:
        return context.repository_def.asset_graph
    except CheckError:
        # Dagster states "No repository definition was set on the step context" this way.
        return context.job_def.asset_layer.asset_graph


def capture_readers(context: dg.AssetExecutionContext) -> list[CaptureReader]:
    """Every asset of the code location that reads ``captured_fold``, with its diagnostic.

    The readers are the direct children of ``captured_fold`` in the code location's asset
    graph, sorted by asset name; none when the code location has no ``captured_fold``.

    Raises:
        dg.DagsterError: the asset was called directly (see :func:`code_location_graph`).
    """
    graph = code_location_graph(context)
    if not graph.has(CAPTURED_FOLD_KEY):
        return []
    readers = []
    for key in graph.get(CAPTURED_FOLD_KEY).child_entity_keys:
        if not isinstance(key, dg.AssetKey):
            continue
        declared = graph.get(key).metadata.get(DIAGNOSTIC_KEY)
        # Definition metadata keeps a plain string; a MetadataValue carries it in ``value``.
        declared = getattr(declared, "value", declared)
        readers.append(CaptureReader(key.to_user_string(), str(declared) if declared else None))
    return sorted(readers)
