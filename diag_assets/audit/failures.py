"""The failed steps of an audit's cells, read from Dagster's run history.

A step that stops on an error leaves no verdict and no report behind, so without it the cell
would vanish from the summary. Dagster already keeps what the summary needs: each failed
run, its partition (the cell) and the failed step's error with its chain. The summary reads
them here instead of keeping a record of its own, so a refused or failed run writes nothing
to the artifact store.

A failed step is FAILED, with the first line of its error (REFUSED if a refused cold capture
is in its chain, as a run of an earlier release recorded it). A refused cold capture does not
fail its run: ``captured_fold`` records the refusal as a failed ``cold_capture_approved``
check on the cell's partition and yields no capture, so the cell's diagnostics are skipped
rather than failed; :func:`refused_captures` reads those check results, and
:func:`failed_steps` returns both, oldest first.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster_shared.error import DagsterError, SerializableErrorInfo

from diag_assets.component.audit import Audit
from diag_assets.core.audit.summary import AuditFailure, CellStatus, audit_failure, first_line
from diag_assets.core.errors import DiagInputError
from diag_assets.core.names import CAPTURED_FOLD, COLD_CAPTURE_APPROVAL_CHECK
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
    """The failed steps and refused captures of the audit's cells, oldest first.

    Runs that name no cell of ``universe`` (a symbol's bars, the gates) and steps of other
    audits are left out.
    """
    found = [
        *_step_failures(instance, audit, universe),
        *refused_captures(instance, audit, universe),
    ]
    return sorted(found, key=lambda failure: failure.failed_at)


def refused_captures(
    instance: dg.DagsterInstance, audit: Audit, universe: str
) -> list[AuditFailure]:
    """The audit's cells whose cold capture was refused, from the failed approval checks."""
    key = dg.AssetCheckKey(audit.key(CAPTURED_FOLD), COLD_CAPTURE_APPROVAL_CHECK)
    records = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=FAILED_RUNS_READ, status={AssetCheckExecutionRecordStatus.FAILED}
    )
    refusals = []
    for record in records:
        if record.partition is None:
            continue
        try:
            cell = cell_from_partition_key(record.partition, universe)
        except (DiagInputError, DagsterError, KeyError, ValueError):
            continue
        evaluation = _evaluation(record.event)
        refusals.append(
            AuditFailure(
                cell_ref=str(cell),
                status=CellStatus.REFUSED,
                step=audit.name(CAPTURED_FOLD),
                error=first_line(evaluation or "cold capture refused"),
                run_id=record.run_id,
                failed_at=datetime.fromtimestamp(record.create_timestamp, UTC).isoformat(),
            )
        )
    return refusals


def _evaluation(entry: EventLogEntry | None) -> str | None:
    """The description of the check evaluation ``entry`` holds (the refusal's message)."""
    event = entry.dagster_event if entry is not None else None
    data = event.event_specific_data if event is not None else None
    return data.description if isinstance(data, AssetCheckEvaluation) else None


def _step_failures(instance: dg.DagsterInstance, audit: Audit, universe: str) -> list[AuditFailure]:
    """The failed steps of the audit's cells in the latest failed runs, oldest first."""
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
