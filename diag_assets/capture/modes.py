"""Lever #3 in the Dagster layer: who reads this capture, and which mode serves them.

The rules live in :mod:`diag_assets.core.capture.mode_policy`; this module gathers their inputs: the
run config and ``DIAG_CAPTURE_MODE``, the diagnostics this run materializes from the capture,
and the latest G-C4b and release parity gate records in the artifact store.
"""

import os

import dagster as dg
from dagster._core.errors import DagsterInvalidPropertyError

from diag_assets.core.capture.mode_policy import (
    MODE_ENV,
    CaptureModePolicy,
    ModeDecision,
    load_policy,
    resolve_capture_mode,
)
from diag_assets.core.diagnostics.consumers import CaptureRequirement, requirement_of
from diag_assets.core.gates.records import read_release_gate, read_seam
from resources.storage import ArtifactStoreResource

CAPTURED_FOLD_KEY = dg.AssetKey("captured_fold")
# The assets that read a captured fold, by the diagnostic each one runs. An asset that reads
# captured_fold and is not here is an ``unknown`` consumer: it gets a full replay.
CAPTURE_READERS: dict[str, str] = {
    "s22a1_anchor": "s22a1",
    "s40_verdict": "s40",
    "s27_calibration": "s27",
    "s22a2_spread": "s22a2",
    "s23_drift": "s23",
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
    except DagsterInvalidPropertyError:
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
