"""A cell's captured fold as its readers get it: the results pointer, proven, then loaded.

Every reader of a cell's results pointer (the diagnostics, the audit report, the demo) goes
through :func:`read_pointer`, which proves the pointer against the capture catalog
(:func:`~diag_assets.core.capture.pointer.prove_pointer`), and loads the fold with
:func:`load_proven` (bytes and hashes verified). Neither raises for a pointer or a capture
that cannot be used: they say why, and the caller turns that into an INCONCLUSIVE_TOOLING
verdict or a :class:`dagster.Failure` that names the fix.
"""

from dataclasses import dataclass

import dagster as dg

from diag_assets.component.audit import Audit
from diag_assets.core.capture.artifacts import CaptureVerificationError
from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.capture.pointer import PointerNotProven, prove_pointer
from diag_assets.core.capture.replay import CapturedFold
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.certification import AnchorUse, certify
from diag_assets.core.names import (
    ALLOW_COLD_CAPTURE_TAG,
    APPROVED_COLD_AUDIT_JOB,
    CAPTURED_FOLD,
    CERTIFICATION_KEY,
)
from resources.capture_cache import CaptureCacheResource
from resources.storage import ArtifactStoreResource


@dataclass(frozen=True)
class PointerRead:
    """What a reader found at a cell's results pointer.

    ``manifest`` is set only when the pointer was proven; ``problem`` says why it was not.
    Neither is set when the cell has no pointer (it was never captured).
    """

    manifest: CaptureManifest | None
    problem: str | None = None

    @property
    def missing(self) -> bool:
        """Whether the cell has no results pointer at all."""
        return self.manifest is None and self.problem is None


def no_capture_message(audit: Audit, cell: CellRef) -> str:
    """What a diagnostic says when its cell was never captured."""
    return (
        f"{cell} has no captured fold yet. Materialize {audit.asset_name(CAPTURED_FOLD)} for "
        "this cell first."
    )


def read_pointer(
    audit: Audit,
    cell: CellRef,
    artifacts: ArtifactStoreResource,
    capture_cache: CaptureCacheResource,
) -> PointerRead:
    """The cell's results pointer, proven against the capture catalog, or why it is not."""
    raw = audit.results(artifacts).read_raw(CAPTURED_FOLD, cell)
    if raw is None:
        return PointerRead(None)
    try:
        with capture_cache.open() as cache:
            manifest = prove_pointer(
                cell, raw, cache.catalog.get, capture_asset=audit.asset_name(CAPTURED_FOLD)
            )
    except PointerNotProven as unproven:
        return PointerRead(None, str(unproven))
    return PointerRead(manifest)


def load_proven(
    audit: Audit,
    manifest: CaptureManifest,
    artifacts: ArtifactStoreResource,
    capture_cache: CaptureCacheResource,
) -> tuple[CapturedFold | None, str | None]:
    """The verified fold of a proven pointer, or ``(None, why)`` if its files fail the check.

    A capture that fails here is marked stale in the catalog, so the next captured_fold run
    re-captures it instead of serving it again (and every verdict on it staying inconclusive).
    """
    try:
        return artifacts.captures().load(manifest), None
    except CaptureVerificationError as error:
        with capture_cache.open() as cache:
            cache.catalog.mark_stale(manifest.capture_key, f"verification failed: {error}")
        return None, (
            f"captured fold failed verification: {error} Re-materialize "
            f"{audit.asset_name(CAPTURED_FOLD)} for {manifest.cell_ref}: a capture whose files "
            f"fail verification is captured again (a cold capture needs the approval: the "
            f"{audit.name(APPROVED_COLD_AUDIT_JOB)} job carries the run tag "
            f"{ALLOW_COLD_CAPTURE_TAG}=true)."
        )


def load_captured_fold(
    audit: Audit,
    cell: CellRef,
    artifacts: ArtifactStoreResource,
    capture_cache: CaptureCacheResource,
    who: str = "",
) -> CapturedFold:
    """The cell's captured fold, its pointer proven and its bytes and hashes verified.

    Raises:
        dg.Failure: the cell was never captured, its pointer is not proven or its files fail
            verification; the description says why and the fix (``who`` names the reader).
    """
    read = read_pointer(audit, cell, artifacts, capture_cache)
    if read.missing:
        raise dg.Failure(no_capture_message(audit, cell))
    captured, problem = (None, read.problem)
    if read.manifest is not None:
        captured, problem = load_proven(audit, read.manifest, artifacts, capture_cache)
    if captured is None:
        claim = certify(
            capture_mode=read.manifest.mode if read.manifest else None,
            anchor=AnchorUse.NOT_NEEDED,
            problem=problem or "the captured fold could not be read.",
        )
        raise dg.Failure(
            description=f"{who or 'The diagnostic'} for {cell}: {claim.certification}: "
            f"{claim.reason}",
            metadata={
                CERTIFICATION_KEY: claim.certification.value,
                "certification_reason": claim.reason,
            },
        )
    return captured
