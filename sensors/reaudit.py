"""``reaudit_requests``: launch re-audits from request files; never a cold capture.

A request whose cell has a complete capture in the cache becomes an ``audit`` run, its
``run_key`` derived from the request so a request launches at most once. A request for a
cold cell stays pending and the tick says which cells need an operator's approval. Once an
operator has audited the cell with the approval (a run tagged
``diag/allow_cold_capture=true`` that wrote the cell's ``audit_report`` after the request was
filed), the request is served by that run and nothing is launched again; an approved run of
the cell still in progress holds the request until it ends.

Every handled request leaves the folder for ``<requests>/archive/`` with its outcome beside it
(:mod:`diag_assets.core.audit.request_archive`): LAUNCHED with the run's id once the run
exists (the tick after its launch), SERVED with the approved run's id, or REJECTED with why
and the fix. A file that cannot be moved stays in the folder, is reported by every tick until
it can be, and is not handled again.

A tick that rejects requests says so in its status: a Dagster tick either requests runs or
skips with a message, so a tick with rejections skips, names them and archives them, and the
requests it would have launched launch on the next tick. That next tick launches even if new
rejections arrived meanwhile (they are reported by the tick after), so launches are delayed by
one tick at most.

The cursor holds only requests still in the folder (launched but not yet archived, or not
movable), so it stays as small as the folder.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import PARTITION_NAME_TAG
from pydantic import BaseModel

from diag_assets.audit.approval import approves_cold_capture
from diag_assets.capture.assets import CaptureRunConfig
from diag_assets.component.audit import Audit
from diag_assets.core.audit.request_archive import (
    RequestNotArchived,
    RequestOutcome,
    archive_folder,
    archive_request,
)
from diag_assets.core.audit.requests import (
    PendingRequest,
    RequestFolderUnreadable,
    read_requests,
)
from diag_assets.core.errors import DiagInputError
from diag_assets.core.names import (
    ALLOW_COLD_CAPTURE_TAG,
    APPROVED_COLD_AUDIT_JOB,
    AUDIT_JOB,
    AUDIT_REPORT,
    REAUDIT_SENSOR,
    REQUEST_ID_TAG,
    REQUESTED_BY_TAG,
    SOURCE_TAG,
)
from diag_assets.partitions import cell_partition_key
from resources.capture_cache import CaptureCacheResource
from resources.requests import AuditRequestsResource

# How many runs of a cell since a request was filed are read to find an approved audit of it.
RUNS_OF_A_CELL_READ = 100

DESCRIPTION = (
    "Turns re-audit request files (the audit_requests folder, one JSON file per request) into "
    "audit runs, every minute, for cells whose capture is already cached; it never approves a "
    "cold capture. A request for a cold cell waits, and the tick names the cells that need an "
    "operator's approval (the approved_cold_audit job); an approved audit of the cell "
    "serves the request without a second run. Handled requests move to the folder's archive/ "
    "with their outcome beside them (launched run, served by an approved run, or rejected with "
    "the fix). A tick that rejects requests is a skipped tick that names them; its launches "
    "follow on the next tick."
)


class _Outcome(BaseModel):
    """A handled request's outcome, kept while its file cannot be archived."""

    outcome: RequestOutcome
    reason: str
    run_id: str | None = None


class _Cursor(BaseModel):
    """What a tick hands the next: only requests whose files are still in the folder."""

    # Request id -> run key: launched, archived once the run exists.
    launched: dict[str, str] = {}
    # Request id -> outcome: handled, but the file could not be moved yet.
    unarchived: dict[str, _Outcome] = {}
    # The last tick held back its launches to report rejections.
    deferred: bool = False

    @classmethod
    def parse(cls, text: str | None) -> "_Cursor":
        # A cursor of an earlier release (every handled id, ``{"handled": [...]}``) reads as
        # empty, as does one that cannot be read: the files still in the folder are handled
        # again, a launched one is not launched twice (Dagster drops a run request whose run
        # key it has seen) and a rejected one is archived with its rejection.
        if not text:
            return cls()
        try:
            return cls.model_validate_json(text)
        except ValueError:
            return cls()

    def keep_only(self, present: set[str]) -> None:
        """Forget requests whose files are gone: the bound on the cursor's size."""
        self.launched = {k: v for k, v in self.launched.items() if k in present}
        self.unarchived = {k: v for k, v in self.unarchived.items() if k in present}


@dataclass
class _Tick:
    """What one tick found, request by request."""

    runs: list[dg.RunRequest] = field(default_factory=list)
    # Requests the tick would launch now (not re-requests of runs already launched).
    new_runs: list[tuple[PendingRequest, dg.RunRequest]] = field(default_factory=list)
    rejected: list[tuple[PendingRequest, str]] = field(default_factory=list)
    served: list[tuple[PendingRequest, str]] = field(default_factory=list)
    cold: set[str] = field(default_factory=set)
    held: dict[str, str] = field(default_factory=dict)  # cell -> approved run in progress
    not_archived: list[str] = field(default_factory=list)


def request_run_key(request_id: str) -> str:
    """The run key of a request's re-audit: a request launches at most once."""
    return f"reaudit:{request_id}"


def build_reaudit_requests(audit: Audit) -> dg.SensorDefinition:
    """The audit's re-audit sensor: request files for its cells become its audit runs."""

    @dg.sensor(
        name=audit.name(REAUDIT_SENSOR),
        job_name=audit.name(AUDIT_JOB),
        minimum_interval_seconds=60,
        required_resource_keys={audit.market_data_key, "capture_cache", "audit_requests"},
        description=DESCRIPTION,
    )
    def reaudit_requests(
        context: dg.SensorEvaluationContext, **_called_with: object
    ) -> dg.SensorResult | dg.SkipReason:
        """Turn pending re-audit requests for warm cells into audit runs."""
        # A direct call (dg.build_sensor_context) also passes the required resources by
        # key; they are read from the context, as in a tick.
        audit_requests: AuditRequestsResource = context.resources.audit_requests
        directory = Path(audit_requests.directory)
        state = _Cursor.parse(context.cursor)
        try:
            found = read_requests(directory)
        except RequestFolderUnreadable as unreadable:
            context.log.warning(str(unreadable))
            return dg.SkipReason(str(unreadable))
        # A request for another audit of the code location is that audit's sensor's to handle.
        mine = [p for p in found if p.request is None or p.request.audit == audit.prefix]
        state.keep_only({p.request_id for p in mine})
        tick = _Tick()
        _sort(context, audit, state, mine, tick)

        # A tick either requests runs or skips with a message: rejections are reported by a
        # skipped tick, so a tick that finds both holds its launches back for one tick.
        held_back = bool(tick.rejected and tick.runs and not state.deferred)
        if held_back:
            tick.runs, tick.new_runs = [], []
        launch = bool(tick.runs)
        if launch and tick.rejected:
            context.log.info(
                f"{len(tick.rejected)} rejected request(s) are reported by the next tick."
            )
            tick.rejected = []
        for item, why in tick.rejected:
            context.log.warning(f"Rejected re-audit request: {why}")
            rejection = _Outcome(outcome=RequestOutcome.REJECTED, reason=why)
            _archive(context, state, tick, item, rejection)
        for item, run in tick.new_runs:
            state.launched[item.request_id] = run.run_key or request_run_key(item.request_id)
        state.deferred = held_back
        _log_waiting(context, audit, tick)
        cursor = state.model_dump_json()
        if launch:
            return dg.SensorResult(run_requests=tick.runs, cursor=cursor)
        context.update_cursor(cursor)
        return dg.SkipReason(_skip_message(audit, directory, tick, deferred=state.deferred))

    return reaudit_requests


def _sort(
    context: dg.SensorEvaluationContext,
    audit: Audit,
    state: _Cursor,
    mine: Sequence[PendingRequest],
    tick: _Tick,
) -> None:
    """Decide what becomes of each request of the folder this tick."""
    capture_cache: CaptureCacheResource = context.resources.capture_cache
    market_data = getattr(context.resources, audit.market_data_key)
    source = market_data.source()
    fold_spec = market_data.fold_spec()
    default_config = CaptureRunConfig().to_core(defaults=audit.trials)
    with capture_cache.open() as cache:
        for item in mine:
            if item.request_id in state.unarchived:
                _archive(context, state, tick, item, state.unarchived[item.request_id])
                continue
            if item.request_id in state.launched:
                run_id = _launched_run(context.instance, item.request_id)
                if run_id is None:  # not created yet: requested again, its run key dedups it
                    tick.runs.append(_run_request(item, state.launched[item.request_id]))
                    continue
                outcome = _Outcome(
                    outcome=RequestOutcome.LAUNCHED,
                    reason=f"re-audit run {run_id} launched by {REAUDIT_SENSOR}",
                    run_id=run_id,
                )
                _archive(context, state, tick, item, outcome)
                continue
            if item.request is None:
                tick.rejected.append((item, item.error or f"{item.name} rejected"))
                continue
            cell = item.request.cell()
            try:
                warm = cache.is_warm(cell, source, fold_spec, audit.recipe, default_config)
            except DiagInputError as refused:
                tick.rejected.append((item, f"{item.name}: {refused}"))
                continue
            served, in_progress = _approved_audit(context.instance, audit, item)
            if served is not None:
                tick.served.append((item, served))
                outcome = _Outcome(
                    outcome=RequestOutcome.SERVED,
                    reason=f"the cell was audited by the approved run {served} after the "
                    "request was filed; no second run was launched",
                    run_id=served,
                )
                _archive(context, state, tick, item, outcome)
            elif in_progress is not None:
                tick.held[str(cell)] = in_progress
            elif warm:
                run = _run_request(item, request_run_key(item.request_id))
                tick.runs.append(run)
                tick.new_runs.append((item, run))
            else:
                tick.cold.add(str(cell))


def _run_request(item: PendingRequest, run_key: str) -> dg.RunRequest:
    assert item.request is not None
    return dg.RunRequest(
        run_key=run_key,
        partition_key=cell_partition_key(item.request.cell()),
        tags={
            REQUEST_ID_TAG: item.request_id,
            REQUESTED_BY_TAG: item.request.requested_by,
            SOURCE_TAG: REAUDIT_SENSOR,
        },
    )


def _launched_run(instance: dg.DagsterInstance, request_id: str) -> str | None:
    """The id of the run launched for the request, once the daemon has created it."""
    records = instance.get_run_records(dg.RunsFilter(tags={REQUEST_ID_TAG: request_id}), limit=1)
    return records[0].dagster_run.run_id if records else None


def _approved_audit(
    instance: dg.DagsterInstance, audit: Audit, item: PendingRequest
) -> tuple[str | None, str | None]:
    """(approved run that audited the cell since the request, approved run still running).

    An approved run audited the cell when it wrote the cell's ``audit_report``; one still in
    progress that plans to write it holds the request until it ends. Runs are found by the
    approval tag, whatever job launched them.
    """
    assert item.request is not None
    partition = str(cell_partition_key(item.request.cell()))
    records = instance.get_run_records(
        dg.RunsFilter(
            tags={PARTITION_NAME_TAG: partition},
            created_after=datetime.fromtimestamp(item.filed_at, UTC),
        ),
        limit=RUNS_OF_A_CELL_READ,
        order_by="create_timestamp",
        ascending=True,
    )
    report = audit.key(AUDIT_REPORT)
    in_progress = None
    for record in records:
        run = record.dagster_run
        if not approves_cold_capture(run.tags):
            continue
        if run.is_finished:
            written = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ).records
            if any(_event_asset(r) == report for r in written):
                return run.run_id, None
        elif in_progress is None:
            planned = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
            ).records
            if any(_event_asset(r) == report for r in planned):
                in_progress = run.run_id
    return None, in_progress


def _event_asset(record: dg.EventLogRecord) -> dg.AssetKey | None:
    event = record.event_log_entry.dagster_event
    return event.asset_key if event is not None else None


def _archive(
    context: dg.SensorEvaluationContext,
    state: _Cursor,
    tick: _Tick,
    item: PendingRequest,
    outcome: _Outcome,
) -> None:
    """Archive a handled request; one that cannot be moved is kept in the cursor and reported."""
    state.launched.pop(item.request_id, None)
    try:
        where = archive_request(item, outcome.outcome, outcome.reason, run_id=outcome.run_id)
    except RequestNotArchived as stuck:
        state.unarchived[item.request_id] = outcome
        tick.not_archived.append(str(stuck))
        context.log.warning(f"Request not archived: {stuck}")
        return
    state.unarchived.pop(item.request_id, None)
    run = f" (run {outcome.run_id})" if outcome.run_id else ""
    if where is None:
        context.log.info(f"{item.name}: {outcome.outcome}{run}; gone from the folder already.")
        return
    context.log.info(f"{item.name}: {outcome.outcome}{run}; archived as {where}.")


def _approval(audit: Audit) -> str:
    """How an operator approves the cold capture of a cell."""
    return (
        f"launch the {audit.name(APPROVED_COLD_AUDIT_JOB)} job for it (it carries the run tag "
        f"{ALLOW_COLD_CAPTURE_TAG}=true)"
    )


def _log_waiting(context: dg.SensorEvaluationContext, audit: Audit, tick: _Tick) -> None:
    if tick.cold:
        context.log.info(
            f"Cold cells need operator approval: {', '.join(sorted(tick.cold))}. For each, "
            f"{_approval(audit)}; their requests are served by that audit."
        )


def _skip_message(audit: Audit, directory: Path, tick: _Tick, *, deferred: bool) -> str:
    reasons = []
    if tick.rejected:
        names = ", ".join(sorted({item.name for item, _ in tick.rejected}))
        reasons.append(
            f"{len(tick.rejected)} request(s) rejected ({names}); why and the fix are in the "
            f"tick's logs and beside each file in {archive_folder(directory)}."
        )
    if deferred:
        reasons.append("The warm cells' requests launch on the next tick.")
    if tick.served:
        served = ", ".join(f"{item.name} by run {run_id}" for item, run_id in tick.served)
        reasons.append(f"{len(tick.served)} request(s) served by an approved audit: {served}.")
    if tick.held:
        held = ", ".join(f"{cell} (run {run_id})" for cell, run_id in sorted(tick.held.items()))
        reasons.append(
            f"{len(tick.held)} cell(s) are being audited by an approved run; their requests "
            f"wait for it: {held}."
        )
    if tick.cold:
        reasons.append(
            f"{len(tick.cold)} cold cell(s) need operator approval before a re-audit: "
            f"{', '.join(sorted(tick.cold))}; for each, {_approval(audit)}."
        )
    if tick.not_archived:
        reasons.append(
            f"{len(tick.not_archived)} handled request(s) could not be archived: "
            + " ".join(tick.not_archived)
        )
    return " ".join(reasons) or f"No new requests in {directory}."
