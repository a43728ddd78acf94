"""The capture modes in the Dagster layer: who reads this capture, and which mode serves them.

The rules live in :mod:`diag_assets.core.capture.mode_policy`; this module gathers their inputs: the
run config and ``DIAG_CAPTURE_MODE``, the diagnostics this run materializes from the capture,
and the latest prep/train seam and release parity gate records in the artifact store.
"""

import os

import dagster as dg

from diag_assets.capture.readers import job_readers, location_readers, repository_readers
from diag_assets.core.capture.mode_policy import (
    MODE_ENV,
    CaptureModePolicy,
    ModeDecision,
    load_policy,
    resolve_capture_mode,
)
from diag_assets.core.diagnostics.consumers import CaptureRequirement, consumers_of
from diag_assets.core.gates.records import read_release_gate, read_seam
from diag_assets.core.storage.blob import BlobStore

# Whoever reads a capture later, when nothing says who: served as an unknown consumer.
LATER_READERS = "later readers"


def run_consumers(
    context: dg.AssetExecutionContext, capture: dg.AssetKey
) -> dict[str, CaptureRequirement]:
    """The diagnostics that read the capture: those this run materializes after it.

    Each reader's diagnostic is the one it declares in its definition metadata
    (:mod:`diag_assets.capture.readers`). A run that materializes the capture without any of
    its readers serves whoever reads it later, so every reader of the code location counts
    (the code location hands them to the capture when it is composed; a capture outside a
    composed code location counts the readers its job knows). A direct call of the asset
    (``dg.build_asset_context``) outside a code location has no reader to count: its later
    readers are unknown.
    """
    # The readers the audit was composed with, and any other asset of the code location that
    # depends on the capture (a team's asset beside the audit component).
    declared = sorted(
        set(location_readers(context, capture) or []) | set(repository_readers(context, capture))
    )
    try:
        in_job, selected = job_readers(context, capture)
    except dg.DagsterError:
        # A direct call has no job: Dagster refuses job_def with a DagsterInvalidPropertyError,
        # which it exports only as this base class.
        in_job, selected = [], set()
    # A subsettable multi-asset has every spec in the graph; only the selected ones run here.
    in_run = [reader for reader in in_job if reader.asset in selected]
    readers = in_run or declared or in_job
    return consumers_of(readers) or {LATER_READERS: CaptureRequirement.UNKNOWN}


def decide_mode(
    *,
    config_mode: str | None,
    consumers: dict[str, CaptureRequirement],
    store: BlobStore,
    recipe_version: str,
    policy: CaptureModePolicy | None = None,
) -> ModeDecision:
    """Resolve the capture mode for one request (see ``diag_assets.core.capture.mode_policy``)."""
    return resolve_capture_mode(
        config_mode=config_mode,
        env_mode=os.environ.get(MODE_ENV),
        policy=policy or load_policy(),
        release_gate=read_release_gate(store),
        seam=read_seam(store),
        consumers=consumers,
        recipe_version=recipe_version,
    )
