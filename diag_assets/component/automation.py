"""What refreshes an audit by itself: its automation-condition sensor, and the capture guard.

Each audit has a sensor that evaluates the automation conditions of its assets (an engineer
may set one on ``audit_summary``, say) and launches the runs they request, running from the
moment the code location loads. Automation never replays a fine-tune: an asset whose step can
capture cold says so in its definition metadata (``replays_fine_tune``), and the code location
refuses to load with an automation condition on such an asset, or on a job that selects one.
Cold captures stay an operator's decision (the approval tag); warm re-audits go through the
``reaudit_requests`` sensor.
"""

from collections.abc import Iterable

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from diag_assets.component.audit import Audit
from diag_assets.core.errors import DiagInputError
from diag_assets.core.names import AUTOMATION_SENSOR, REPLAYS_FINE_TUNE_KEY

# How often the sensor evaluates the conditions.
EVALUATION_INTERVAL_S = 60


def automation_sensor(audit: Audit, keys: Iterable[dg.AssetKey]) -> dg.SensorDefinition:
    """The sensor that evaluates the automation conditions of ``keys``, the audit's assets.

    Defining it for every asset of the audit means Dagster adds no default automation sensor
    (``default_automation_condition_sensor``, stopped by default) for them.
    """
    return dg.AutomationConditionSensorDefinition(
        audit.name(AUTOMATION_SENSOR),
        target=dg.AssetSelection.assets(*keys),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=EVALUATION_INTERVAL_S,
        description="Every minute: evaluates the automation conditions of the audit's assets "
        "(for example one set on audit_summary) and launches the runs they request. It never "
        "launches a capture: the code location refuses an automation condition on an asset "
        "that replays a fine-tune, and its runs carry no cold-capture approval. Assets without "
        "an automation condition are never requested.",
    )


def _replays(asset: dg.AssetsDefinition) -> bool:
    return any(bool(spec.metadata.get(REPLAYS_FINE_TUNE_KEY)) for spec in asset.specs)


def _refusal(what: str, replaying: Iterable[dg.AssetKey]) -> DiagInputError:
    named = ", ".join(sorted(key.to_user_string() for key in replaying))
    return DiagInputError(
        f"{what} would let automation request {named}, whose step can replay a fine-tune "
        "(a cold capture); automation never launches a capture.",
        "remove the automation condition. A capture is launched by an operator (the audit "
        "job, or approved_cold_audit for a cold one: it carries the tag "
        "diag/allow_cold_capture=true); a re-audit of a warm cell by a request file (the "
        "reaudit_requests sensor).",
    )


def refuse_automated_capture(defs: dg.Definitions) -> dg.Definitions:
    """``defs`` once no automation condition can request an asset that replays a fine-tune.

    A step runs all of its assets unless it can subset them, so a condition on any asset of a
    step that holds a replaying asset is refused as well.

    Raises:
        DiagInputError: an asset or a job carries such a condition; names them and the fix.
    """
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    replaying = {spec.key for a in assets if _replays(a) for spec in a.specs}
    for asset in assets:
        conditioned = [spec.key for spec in asset.specs if spec.automation_condition is not None]
        if conditioned and _replays(asset):
            names = ", ".join(key.to_user_string() for key in conditioned)
            raise _refusal(
                f"The automation condition on {names}",
                [spec.key for spec in asset.specs if spec.key in replaying],
            )
    conditioned_jobs = [
        job for job in defs.jobs or [] if getattr(job, "automation_condition", None) is not None
    ]
    if conditioned_jobs:
        graph = defs.resolve_asset_graph()
        for job in conditioned_jobs:
            if isinstance(job, UnresolvedAssetJobDefinition):
                selected = set(job.selection.resolve(graph))
            elif isinstance(job, dg.JobDefinition):
                selected = set(job.asset_layer.selected_asset_keys)
            else:
                continue
            if selected & replaying:
                raise _refusal(
                    f"The automation condition on the job {job.name}", selected & replaying
                )
    return defs
