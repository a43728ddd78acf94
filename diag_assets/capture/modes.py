"""The capture modes in the Dagster layer: who reads this capture, and which mode serves them.

The rules live in :mod:`diag_assets.core.capture.mode_policy`; this module gathers their inputs: the
run config and ``DIAG_CAPTURE_MODE``, the diagnostics this run materializes from the capture,
and the latest prep/train seam and release parity gate records in the artifact store.
"""

import os

import dagster as dg

from diag_assets.capture.readers import capture_readers
from diag_assets.core.capture.mode_policy import (
    MODE_ENV,
    CaptureModePolicy,
    ModeDecision,
    load_policy,
    resolve_capture_mode,
)
from diag_assets.core.diagnostics.consumers import CaptureRequirement, consumers_of
from diag_assets.core.gates.records import read_release_gate, read_seam
from resources.storage import ArtifactStoreResource

# Whoever reads a capture later, when no asset graph says who: served as an unknown consumer.
LATER_READERS = "later readers"


def run_consumers(context: dg.AssetExecutionContext) -> dict[str, CaptureRequirement]:
    """The diagnostics that read the capture: those this run materializes after it.

    The readers and their diagnostics come from the code location's asset graph
    (:mod:`diag_assets.capture.readers`). A run that materializes the capture alone serves
    whoever reads it later, so every reader counts; a direct call of the asset
    (``dg.build_asset_context``) has no asset graph, so its later readers are unknown.
    """
    try:
        readers = capture_readers(context)
        selected = context.job_def.asset_layer.selected_asset_keys
    except dg.DagsterError:
        # A direct call has no job nor repository: Dagster refuses them with a
        # DagsterInvalidPropertyError, which it exports only as this base class.
        return {LATER_READERS: CaptureRequirement.UNKNOWN}
    # A subsettable multi-asset has every spec in the graph; only the selected ones run here.
    selected_names = {key.to_user_string() for key in selected}
    in_run = [reader for reader in readers if reader.asset in selected_names]
    return consumers_of(in_run or readers) or {LATER_READERS: CaptureRequirement.UNKNOWN}


def decide_mode(
    *,
    config_mode: str | None,
    consumers: dict[str, CaptureRequirement],
    artifacts: ArtifactStoreResource,
    recipe_version: str,
    policy: CaptureModePolicy | None = None,
) -> ModeDecision:
    """Resolve the capture mode for one request (see ``diag_assets.core.capture.mode_policy``)."""
    return resolve_capture_mode(
        config_mode=config_mode,
        env_mode=os.environ.get(MODE_ENV),
        policy=policy or load_policy(),
        release_gate=read_release_gate(artifacts.blob_store()),
        seam=read_seam(artifacts.blob_store()),
        consumers=consumers,
        recipe_version=recipe_version,
    )
