"""``reaudit_requests``: launch re-audits from request files; never a cold capture.

A request whose cell has a complete capture in the cache becomes an ``audit`` run, its
``run_key`` derived from the request so a request launches at most once. A request for a
cold cell stays pending and the tick says which cells need an operator's approval; once an
operator has run the cold capture, the next tick launches the re-audit.

A request that cannot be used (a bad file, an entry that is not a regular file, a cell the
audit cannot serve) is rejected: the tick's log names its file once, with the fix, and the
tick goes on with the other requests; it is not retried until the file changes.
"""

import json
from pathlib import Path

import dagster as dg

from diag_assets.capture.assets import CaptureRunConfig
from diag_assets.component.audit import Audit
from diag_assets.core.audit.requests import RequestFolderUnreadable, read_requests
from diag_assets.core.errors import DiagInputError
from diag_assets.core.names import (
    ALLOW_COLD_CAPTURE_TAG,
    APPROVED_COLD_AUDIT_JOB,
    AUDIT_JOB,
    REAUDIT_SENSOR,
    REQUEST_ID_TAG,
    REQUESTED_BY_TAG,
    SOURCE_TAG,
)
from diag_assets.partitions import cell_partition_key
from resources.capture_cache import CaptureCacheResource
from resources.requests import AuditRequestsResource


def build_reaudit_requests(audit: Audit) -> dg.SensorDefinition:
    """The audit's re-audit sensor: request files for its cells become its audit runs."""

    @dg.sensor(
        name=audit.name(REAUDIT_SENSOR),
        job_name=audit.name(AUDIT_JOB),
        minimum_interval_seconds=60,
        required_resource_keys={audit.market_data_key, "capture_cache", "audit_requests"},
    )
    def reaudit_requests(
        context: dg.SensorEvaluationContext, **_called_with: object
    ) -> dg.SensorResult | dg.SkipReason:
        """Turn pending re-audit requests for warm cells into audit runs."""
        # A direct call (dg.build_sensor_context) also passes the required resources by
        # key; they are read from the context, as in a tick.
        capture_cache: CaptureCacheResource = context.resources.capture_cache
        audit_requests: AuditRequestsResource = context.resources.audit_requests
        market_data = getattr(context.resources, audit.market_data_key)
        handled = set(json.loads(context.cursor)["handled"]) if context.cursor else set()
        try:
            found = read_requests(Path(audit_requests.directory))
        except RequestFolderUnreadable as unreadable:
            context.log.warning(str(unreadable))
            return dg.SkipReason(str(unreadable))
        # A request for another audit of the code location is that audit's sensor's to handle.
        pending = [
            p
            for p in found
            if p.request_id not in handled
            and (p.request is None or p.request.audit == audit.prefix)
        ]
        if not pending:
            return dg.SkipReason(f"No new requests in {audit_requests.directory}.")

        source = market_data.source()
        fold_spec = market_data.fold_spec()
        default_config = CaptureRunConfig().to_core(defaults=audit.trials)
        run_requests, cold = [], []
        # Request id -> (file name, why): each rejection is reported once.
        rejected: dict[str, tuple[str, str]] = {}
        with capture_cache.open() as cache:
            for item in pending:
                if item.request is None:
                    rejected[item.request_id] = (item.name, item.error or f"{item.name} rejected")
                    handled.add(item.request_id)
                    continue
                cell = item.request.cell()
                try:
                    warm = cache.is_warm(cell, source, fold_spec, audit.recipe, default_config)
                except DiagInputError as refused:
                    rejected[item.request_id] = (item.name, f"{item.name}: {refused}")
                    handled.add(item.request_id)
                    continue
                if not warm:
                    cold.append(str(cell))
                    continue
                run_requests.append(
                    dg.RunRequest(
                        run_key=f"reaudit:{item.request_id}",
                        partition_key=cell_partition_key(cell),
                        tags={
                            REQUEST_ID_TAG: item.request_id,
                            REQUESTED_BY_TAG: item.request.requested_by,
                            SOURCE_TAG: REAUDIT_SENSOR,
                        },
                    )
                )
                handled.add(item.request_id)

        for _name, problem in rejected.values():
            context.log.warning(f"Rejected re-audit request: {problem}")
        if cold:
            context.log.info(
                f"Cold cells need operator approval: {', '.join(sorted(set(cold)))}. Launch "
                f"the {audit.name(APPROVED_COLD_AUDIT_JOB)} job for them (it carries the run "
                f"tag {ALLOW_COLD_CAPTURE_TAG}=true); their requests stay pending and launch "
                "once the capture exists."
            )
        cursor = json.dumps({"handled": sorted(handled)})
        if run_requests:
            return dg.SensorResult(run_requests=run_requests, cursor=cursor)
        reasons = []
        if cold:
            reasons.append(
                f"{len(set(cold))} cold cell(s) need operator approval before a re-audit: "
                f"{', '.join(sorted(set(cold)))} (launch {audit.name(APPROVED_COLD_AUDIT_JOB)} "
                f"for them: it carries the run tag {ALLOW_COLD_CAPTURE_TAG}=true)."
            )
        if rejected:
            names = ", ".join(sorted(name for name, _ in rejected.values()))
            reasons.append(f"{len(rejected)} request(s) rejected ({names}); see the tick's logs.")
        context.update_cursor(cursor)
        return dg.SkipReason(" ".join(reasons))

    return reaudit_requests
