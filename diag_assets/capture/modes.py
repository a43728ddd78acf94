"""The capture modes in the Dagster layer: who reads this capture, and which mode serves them.

The rules live in :mod:`diag_assets.core.capture.mode_policy`; this module gathers their inputs: the
run config and ``DIAG_CAPTURE_MODE``, the diagnostics this run materializes from the capture,
and the latest prep/train seam and release parity gate records in the artifact store.
"""

import os

import dagster as dg

from diag_assets.core.capture.mode_policy import (
    MODE_ENV,
    CaptureModePolicy,
    ModeDecision,
    load_policy,
    resolve_capture_mode,
)
from diag_assets.core.diagnostics.consumers import CaptureRequirement, requirement_of
from diag_assets.core.gates.records import read_release_gate, read_seam
from diag_assets.core.names import (
    CAPTURED_FOLD,
    S22A1_ANCHOR,
    S22A2_SPREAD,
    S23_DRIFT,
    S27_CALIBRATION,
    S40_VERDICT,
)
from resources.storage import ArtifactStoreResource

CAPTURED_FOLD_KEY = dg.AssetKey(CAPTURED_FOLD)
# The assets that read a captured fold, by the diagnostic each one runs. An asset that reads
# captured_fold and is not here is an ``unknown`` consumer: it gets a full replay.
CAPTURE_READERS: dict[str, str] = {
    S22A1_ANCHOR: "s22a1",
    S40_VERDICT: "s40",
    S27_CALIBRATION: "s27",
    S22A2_SPREAD: "s22a2",
    S23_DRIFT: "s23",
}


def consumers_of(asset_names: list[str]) -> dict[str, CaptureRequirement]:
    """The registered requirement of each reading asset (``unknown`` when not registered)."""
    diagnostics = [CAPTURE_READERS.get(name, name) for name in asset_names]
    return {name: requirement_of(name) for name in diagnostics}


def run_consumers(context: dg.AssetExecutionContext) -> dict[str, CaptureRequirement]:
    """The diagnostics that read the capture: those this run materializes after it.

    A run that materializes the capture alone (or a direct call of the asset) serves whoever
    reads it later, so every known reader counts.
    """
    try:
        layer = context.job_def.asset_layer
    except dg.DagsterError:
        # A direct call (dg.build_asset_context) has no job: Dagster refuses job_def with a
        # DagsterInvalidPropertyError, which it exports only as this base class.
        in_run = []
    else:
        # The job's graph holds every spec of a subsettable multi-asset; only the selected
        # ones run in this run.
        children = layer.asset_graph.get(CAPTURED_FOLD_KEY).child_entity_keys
        in_run = sorted(
            key.to_user_string()
            for key in children
            if isinstance(key, dg.AssetKey) and key in layer.selected_asset_keys
        )
    return consumers_of(in_run or sorted(CAPTURE_READERS))


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
