"""A cell's failed audit step, recorded so the summary can count the cell (REFUSED, FAILED).

A step that stops on an error leaves no verdict and no report behind, so without a record the
cell would simply vanish from the summary. :func:`recording_failure` wraps the body of each
audit step: on an error it writes an :class:`~diag_assets.core.audit.summary.AuditFailure`
for the cell (REFUSED when a cold capture was not approved, else FAILED with the error's
first line) and re-raises, so the run fails exactly as before.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import dagster as dg
from pydantic import ValidationError

from diag_assets.component.audit import Audit
from diag_assets.core.audit.summary import AuditFailure, CellStatus, audit_failure
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.names import AUDIT_FAILURE
from diag_assets.market.assets import market_data_of
from diag_assets.partitions import cell_from_partition_key
from resources.storage import ArtifactStoreResource


@contextmanager
def recording_failure(
    context: dg.AssetExecutionContext, audit: Audit, artifacts: ArtifactStoreResource, step: str
) -> Iterator[None]:
    """Record the cell's failure if the wrapped step raises, then let the error through.

    A partition that names no valid cell has no row to record under; nor is a failure to
    write the record allowed to hide the step's own error (it is logged instead).
    """
    try:
        yield
    except Exception as error:
        try:
            universe = market_data_of(context, audit).source().universe
            cell = cell_from_partition_key(context.partition_key, universe)
        except Exception:  # no cell, no row: the run's own error stands
            raise error from None
        failure = audit_failure(str(cell), step, error, context.run.run_id)
        try:
            audit.results(artifacts).write(AUDIT_FAILURE, cell, failure)
        except Exception as unrecorded:  # the step's own error matters more
            context.log.warning(f"{cell}: could not record the failed step ({unrecorded}).")
        else:
            context.log.info(f"{cell}: {failure.status.value} at {step}: {failure.error}")
        raise


def read_failures(audit: Audit, artifacts: ArtifactStoreResource) -> list[AuditFailure]:
    """Every recorded failure of the audit's cells.

    A record that cannot be read is not dropped: its cell is shown FAILED with what is wrong
    with the record, since the summary cannot tell how its audit ended.
    """
    results = audit.results(artifacts)
    prefix = f"{results.prefix}/{AUDIT_FAILURE}/"
    failures = []
    for key in results.store.list_keys(prefix.rstrip("/")):
        slug = key.removeprefix(prefix).removesuffix(".json")
        try:
            cell = CellRef.from_slug(slug)
        except DiagInputError:
            continue  # not a record of ours: no cell to show it under
        try:
            failures.append(AuditFailure.model_validate_json(results.store.read_bytes(key)))
        except (ValidationError, ValueError) as unreadable:
            failures.append(
                AuditFailure(
                    cell_ref=str(cell),
                    status=CellStatus.FAILED,
                    step="(failure record)",
                    error=f"the failure record {results.store.uri(key)} cannot be read "
                    f"({type(unreadable).__name__}).",
                    run_id="-",
                    failed_at=datetime.now(UTC).isoformat(),
                )
            )
    return failures
