"""The failed steps of an audit's cells, read from Dagster's run history.

A step that stops on an error leaves no verdict and no report behind, so without it the cell
would vanish from the summary. Dagster already keeps what the summary needs: each failed
run, its partition (the cell) and the failed step's error with its chain. The summary reads
them here instead of keeping a record of its own, so a refused or failed run writes nothing
to the artifact store.

A failure is REFUSED when a cold capture was not approved
(:class:`~diag_assets.core.capture.outcomes.ColdCaptureRequiresOperator` in the error's
chain), FAILED otherwise, with the first line of the error.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster_shared.error import DagsterError, SerializableErrorInfo

from diag_assets.component.audit import Audit
from diag_assets.core.audit.summary import AuditFailure, audit_failure
from diag_assets.core.errors import DiagInputError
from diag_assets.partitions import cell_from_partition_key

# How many of the latest failed runs the summary reads: older failures of a cell have been
# superseded by its later runs in all but the most neglected instance.
FAILED_RUNS_READ = 2_000


def _chain(error: SerializableErrorInfo | None) -> Iterator[SerializableErrorInfo]:
    seen = 0
    while error is not None and seen < 20:
        yield error
        error = error.cause or error.context
        seen += 1


def _message(error: SerializableErrorInfo) -> str:
    """The error's own message, without the ``module.Class: `` Dagster puts before it.

    Dagster wraps an error raised in a step ("Error occurred while executing op ..."); the
    first link of the chain that is not such a wrapper is the step's own error.
    """
    links = list(_chain(error))
    own = [link for link in links if not (link.cls_name or "").startswith("Dagster")]
    for link in own or links:
        text = link.message.strip()
        qualified, sep, rest = text.partition(": ")
        if sep and qualified.rsplit(".", 1)[-1] == link.cls_name:
            text = rest
        if text:
            return text
    return error.cls_name or "unknown error"


def _owned(audit: Audit, step_key: str) -> bool:
    """Whether the step is one of the audit's ops (its ops are named with its prefix)."""
    return not audit.prefix or step_key.startswith(f"{audit.prefix}__")


def failed_steps(instance: dg.DagsterInstance, audit: Audit, universe: str) -> list[AuditFailure]:
    """The failed steps of the audit's cells in the latest failed runs, oldest first.

    Runs that name no cell of ``universe`` (a symbol's bars, the gates) and steps of other
    audits are left out.
    """
    records = instance.get_run_records(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=FAILED_RUNS_READ
    )
    failures: list[AuditFailure] = []
    for record in reversed(records):
        run = record.dagster_run
        partition = run.tags.get(PARTITION_NAME_TAG)
        if partition is None:
            continue
        try:
            cell = cell_from_partition_key(partition, universe)
        except (DiagInputError, DagsterError, KeyError, ValueError):
            continue  # not a cell of this audit's universe
        for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            dagster_event = event.dagster_event
            step = dagster_event.step_key if dagster_event else None
            if dagster_event is None or step is None or not _owned(audit, step):
                continue
            error = dagster_event.step_failure_data.error
            if error is None:
                continue
            failures.append(
                audit_failure(
                    str(cell),
                    step,
                    _message(error),
                    [link.cls_name or "" for link in _chain(error)],
                    run_id=run.run_id,
                    at=datetime.fromtimestamp(event.timestamp, UTC),
                )
            )
    return failures
