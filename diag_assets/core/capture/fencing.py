"""Fencing a capture writer: a writer that lost its lease never completes or tears a capture.

A capture's lease can end while its writer still works (a PostgreSQL lease session killed or
cut off, a lock file deleted), and another writer may then capture the same key. Three
things keep the two apart, each owned elsewhere and put together by the capture cache:

- every begin is a new *attempt* (:func:`~diag_assets.core.capture.artifacts.new_attempt`),
  whose data files go to a folder of their own, so no writer overwrites another's files and
  the manifest always names one attempt's whole set;
- the writer proves its lease (:func:`prove_lease`) right before the manifest and right
  before the catalog commit;
- the catalog commit lands only while the row is capturing for the writer's attempt
  (:class:`~diag_assets.core.storage.catalog.model.CaptureFenced` otherwise), and a failure
  is recorded only on the writer's own attempt (:func:`fail_attempt`).

The helpers here report each refusal as an event before it propagates.
"""

from diag_assets.core.capture import events as ev
from diag_assets.core.storage.catalog.catalog import CaptureCatalog
from diag_assets.core.storage.catalog.model import CaptureFenced
from diag_assets.core.storage.lease.base import LeaseGrant, LeaseLost


def prove_lease(grant: LeaseGrant, key: str, attempt: str, before: str, emit) -> None:
    """``grant.ensure_held()``, reporting a lost lease as ``capture_lease_lost``.

    Args:
        grant: The grant of the lease the writer holds.
        key: The capture key.
        attempt: The writer's attempt id.
        before: The step the proof guards (``"manifest"``, ``"catalog commit"``).
        emit: The cache's event emitter.

    Raises:
        LeaseLost: the lease is no longer held; the step must not be taken.
    """
    try:
        grant.ensure_held()
    except LeaseLost as lost:
        emit(
            ev.CAPTURE_LEASE_LOST,
            key,
            attempt=attempt,
            before=before,
            found=lost.found,
            backend=lost.backend,
        )
        raise


def report_fenced(fenced: CaptureFenced, emit) -> CaptureFenced:
    """Emit ``capture_fenced`` for a refused attempt; returns the error to raise."""
    emit(
        ev.CAPTURE_FENCED,
        fenced.key,
        attempt=fenced.attempt_id,
        status=fenced.status,
        producing_run_id=fenced.producing_run_id,
        holder_attempt=fenced.holder_attempt_id,
    )
    return fenced


def fail_attempt(
    catalog: CaptureCatalog, key: str, attempt: str, error: BaseException, emit
) -> None:
    """Mark ``attempt`` failed (never another writer's attempt) and emit ``capture_failed``.

    The catalog may be down together with the lease (a server restart): its error goes into
    the event and the caller re-raises the capture's own error, so the operator reads the
    cause.
    """
    reason = f"{type(error).__name__}: {error}"
    fields: dict[str, object] = {"error": reason, "attempt": attempt}
    try:
        fields["marked_failed"] = catalog.fail_capture(key, reason, attempt_id=attempt)
    except Exception as catalog_error:  # noqa: BLE001 - reported; the cause propagates
        fields["marked_failed"] = False
        fields["catalog_error"] = f"{type(catalog_error).__name__}: {catalog_error}"
    emit(ev.CAPTURE_FAILED, key, **fields)
