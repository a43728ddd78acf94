"""The operator's approval of a cold capture is a person's act: nothing automated may give it.

A cold capture replays a cell's whole fine-tune, so it runs only in a run that carries the
tag ``diag/allow_cold_capture=true``. The ``approved_cold_audit`` job carries that tag, and an
operator launches it by hand for the cell. A sensor or a schedule that launched it (or any
job carrying the tag, or put the tag on its runs itself) would approve cold captures with
nobody deciding, so the code location refuses to load with one; and a run a sensor or
schedule launched with the approval anyway (one defined outside the audits' code location
composition) is refused when its capture starts.
"""

from collections.abc import Iterable, Mapping

import dagster as dg
from dagster._core.storage.tags import SCHEDULE_NAME_TAG, SENSOR_NAME_TAG

from diag_assets.core.audit.anchor_skip import parse_flag
from diag_assets.core.errors import DiagInputError
from diag_assets.core.names import ALLOW_COLD_CAPTURE_TAG, APPROVED_COLD_AUDIT_JOB


def approves_cold_capture(tags: Mapping[str, str] | None) -> bool:
    """Whether run tags ``tags`` carry the approval of a cold capture, as the capture reads it.

    The capture refuses a run whose tag is not a boolean (``parse_flag``), so such a tag
    approves nothing here either.
    """
    value = (tags or {}).get(ALLOW_COLD_CAPTURE_TAG)
    if not isinstance(value, str):
        return False
    try:
        return parse_flag(value, what=ALLOW_COLD_CAPTURE_TAG)
    except DiagInputError:
        return False


def _run_tags(job: object) -> Mapping[str, str]:
    tags = getattr(job, "run_tags", None) or getattr(job, "tags", None)
    return tags if isinstance(tags, Mapping) else {}


def _targets(
    automation: dg.SensorDefinition | dg.ScheduleDefinition,
) -> Iterable[tuple[str, Mapping[str, str]]]:
    """The jobs ``automation`` launches: each name, with the run tags of its definition if known."""
    if isinstance(automation, dg.SensorDefinition):
        targets = automation.targets
    else:
        targets = [automation.target]
    for target in targets:
        yield target.job_name, _run_tags(target.job_def) if target.has_job_def else {}


def refuse_automated_approval(defs: dg.Definitions) -> None:
    """Refuse a code location in which a sensor or schedule would approve a cold capture.

    Refused: a sensor or schedule whose target job carries the approval tag (looked up by
    name among the location's jobs, or on the job it was given), and a schedule whose own run
    tags carry it.

    Raises:
        DiagInputError: names each sensor or schedule and the job, and the fix.
    """
    approving = {job.name for job in defs.jobs or [] if approves_cold_capture(_run_tags(job))}
    offending: list[str] = []
    automations: list[dg.SensorDefinition | dg.ScheduleDefinition] = [
        *(s for s in defs.sensors or [] if isinstance(s, dg.SensorDefinition)),
        *(s for s in defs.schedules or [] if isinstance(s, dg.ScheduleDefinition)),
    ]
    for automation in automations:
        kind = "sensor" if isinstance(automation, dg.SensorDefinition) else "schedule"
        if isinstance(automation, dg.ScheduleDefinition) and approves_cold_capture(automation.tags):
            offending.append(f"the {kind} {automation.name} tags its runs {ALLOW_COLD_CAPTURE_TAG}")
        for job_name, tags in _targets(automation):
            if job_name in approving or approves_cold_capture(tags):
                offending.append(f"the {kind} {automation.name} launches the job {job_name}")
    if offending:
        raise DiagInputError(
            f"A cold capture must be approved by an operator, but {'; '.join(offending)}, "
            f"which carries the approval ({ALLOW_COLD_CAPTURE_TAG}=true).",
            "point the sensor or schedule at the audit job (a cold cell then waits for an "
            f"operator to launch {APPROVED_COLD_AUDIT_JOB} for it by hand), or remove it.",
        )


def refuse_automated_run_approval(tags: Mapping[str, str]) -> None:
    """Refuse the approval of a cold capture in a run a sensor or schedule launched.

    Raises:
        DiagInputError: names the sensor or schedule and the fix.
    """
    launched_by = [
        f"the {kind} {tags[tag]}"
        for kind, tag in (("sensor", SENSOR_NAME_TAG), ("schedule", SCHEDULE_NAME_TAG))
        if tags.get(tag)
    ]
    if launched_by:
        raise DiagInputError(
            f"This run carries {ALLOW_COLD_CAPTURE_TAG}=true but was launched by "
            f"{' and '.join(launched_by)}; a cold capture must be approved by an operator.",
            f"launch {APPROVED_COLD_AUDIT_JOB} for the cell by hand, and point the sensor or "
            "schedule at a job without the approval tag.",
        )
