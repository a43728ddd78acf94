"""What the UI's Launchpad offers: dropdowns, typed thresholds, fixed market data, the approval.

Every check reads the run config schema the UI gets from the code location
(``job.run_config_schema``), or launches runs the way the Launchpad does.
"""

from typing import Any

import dagster as dg
import pytest

from diag_assets.audit.approval import refuse_automated_approval
from diag_assets.audit.run_results import materialized_metadata
from diag_assets.component import location
from diag_assets.component.location import AuditDefinitions
from diag_assets.core.audit.anchor_skip import load_policy as load_skip_policy
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.source_drift import DriftMode, DriftPolicy
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.gates.anchor_cost import AnchorCostReport, AnchorCostSettings
from diag_assets.core.gates.capture_size import CaptureSizeSettings
from diag_assets.core.gates.drift_rate import DriftRateSettings
from diag_assets.core.gates.records import read_report
from diag_assets.core.gates.reuse import ReuseSettings
from diag_assets.core.names import (
    ALLOW_COLD_CAPTURE_TAG,
    ANCHOR_COST_GATE,
    APPROVED_COLD_AUDIT_JOB,
    AUDIT_JOB,
    CAPTURE_SIZE_GATE,
    COLD_CAPTURE_APPROVAL_CHECK,
    DRIFT_RATE_GATE,
    PHASE0_GATES_JOB,
    REUSE_GATE,
)
from diag_assets.definitions import REFERENCE_AUDIT, build_definitions, defs
from diag_assets.launchpad import DriftModeChoice
from diag_assets.partitions import cell_partition_key
from resources.capture_cache import (
    CaptureCacheResource,
    FileLeaseResource,
    SqliteCatalogResource,
)
from resources.environment import embedded_capture_cache
from resources.storage import LocalArtifactStore
from tests.dagster.conftest import TINY_RUN_CONFIG, local_resources
from tests.fixtures.audit import captured_fold, g_b7_cost, market_bars


def _fields(config_type: Any) -> dict[str, Any]:
    """The fields of a config type, through a Noneable wrapper."""
    inner = getattr(config_type, "inner_type", config_type)
    return dict(getattr(inner, "fields", {}))


def _op_config(job_name: str, op: str) -> dict[str, Any]:
    schema = defs.resolve_job_def(job_name).run_config_schema.config_type
    ops = _fields(_fields(schema)["ops"].config_type)
    return _fields(_fields(ops[op].config_type)["config"].config_type)


def _resource_config(job_name: str, resource: str) -> dict[str, Any]:
    schema = defs.resolve_job_def(job_name).run_config_schema.config_type
    resources = _fields(_fields(schema)["resources"].config_type)
    return _fields(_fields(resources[resource].config_type)["config"].config_type)


def _failure(result: dg.ExecuteInProcessResult, node: str) -> tuple[str, dict[str, Any]]:
    """The description and metadata values of the ``dg.Failure`` that failed ``node``."""
    data = result.failure_data_for_node(node)
    assert data is not None and data.user_failure_data is not None, data
    failure = data.user_failure_data
    return failure.description or "", {k: v.value for k, v in failure.metadata.items()}


def _enum_values(field: Any) -> list[str]:
    enum = getattr(field.config_type, "inner_type", field.config_type)
    return [value.config_value for value in enum.enum_values]


# --- dropdowns ------------------------------------------------------------------------------


def test_the_capture_mode_audit_kind_and_drift_policy_are_dropdowns_of_the_domain_sets():
    capture = _op_config(AUDIT_JOB, "captured_fold")["capture_mode"]
    assert _enum_values(capture) == [mode.value for mode in CaptureMode]
    anchor = _op_config(AUDIT_JOB, "anchor_and_consumers")["audit_kind"]
    assert _enum_values(anchor) == list(load_skip_policy().audit_kinds)
    cache = _resource_config(AUDIT_JOB, "capture_cache")
    assert _enum_values(cache["check_drift"]) == [mode.value for mode in DriftMode]
    assert "drift_sample_rate" in cache
    for field in (capture, anchor, cache["check_drift"], cache["drift_sample_rate"]):
        assert field.description


def _walk(config_type: Any, path: str) -> list[str]:
    """The paths of config fields without a description, below ``config_type``."""
    missing = []
    for name, field in _fields(config_type).items():
        here = f"{path}.{name}"
        if name != "config" and not field.description:
            missing.append(here)
        missing += _walk(field.config_type, here)
    return missing


@pytest.mark.parametrize("job_name", [AUDIT_JOB, PHASE0_GATES_JOB])
def test_every_op_config_field_the_launchpad_shows_has_a_description(job_name):
    schema = defs.resolve_job_def(job_name).run_config_schema.config_type
    ops = _fields(_fields(schema)["ops"].config_type)
    missing = [path for op, field in ops.items() for path in _walk(field.config_type, op)]
    assert missing == []


def test_the_choice_a_run_config_spells_is_the_domain_spelling(resources, instance):
    result = dg.materialize(
        [market_bars, captured_fold],
        selection=["captured_fold"],
        resources=resources,
        instance=instance,
        partition_key=cell_partition_key(CellRef.parse("defi_top5/UNIUSDC/fold-0")),
        run_config={
            "ops": {
                "captured_fold": {
                    "config": {**TINY_RUN_CONFIG["ops"]["captured_fold"]["config"]}
                    | {"capture_mode": "full_replay"}
                }
            }
        },
        tags={ALLOW_COLD_CAPTURE_TAG: "true"},
    )
    metadata = materialized_metadata(result, "captured_fold")
    assert metadata["mode"] == "full_replay" and metadata["mode_decided_by"] == "run_config"


# --- the drift policy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode", "rate"),
    [("off", "off", None), ("on_read", "on_read", None), ("sampled:0.25", "sampled", 0.25)],
)
def test_the_profiles_text_drift_policy_becomes_the_typed_fields(tmp_path, text, mode, rate):
    cache = embedded_capture_cache(
        LocalArtifactStore(root=str(tmp_path)), tmp_path, check_drift=text
    )
    assert (cache.check_drift.value, cache.drift_sample_rate) == (mode, rate)
    assert str(cache.drift_policy()) == text


@pytest.mark.parametrize(
    ("mode", "rate", "fix"),
    [
        (DriftMode.SAMPLED, None, "set drift_sample_rate"),
        (DriftMode.SAMPLED, 1.5, "set drift_sample_rate"),
        (DriftMode.ON_READ, 0.5, "leave drift_sample_rate unset"),
    ],
)
def test_a_drift_mode_and_a_rate_that_do_not_go_together_are_refused(mode, rate, fix):
    with pytest.raises(DiagInputError) as refused:
        DriftPolicy.of(mode, rate)
    assert fix in refused.value.fix


def test_a_sampled_cache_without_its_rate_is_refused_before_it_opens(tmp_path):
    sampled = CaptureCacheResource(
        artifacts=LocalArtifactStore(root=str(tmp_path)),
        catalog=SqliteCatalogResource(path=str(tmp_path / "catalog.sqlite")),
        lease=FileLeaseResource(root=str(tmp_path / "leases")),
        check_drift=DriftModeChoice(DriftMode.SAMPLED),
    )
    with pytest.raises(DiagInputError, match="needs a sample rate"), sampled.open():
        pass
    assert not (tmp_path / "catalog.sqlite").exists()


# --- typed gate thresholds ------------------------------------------------------------------

GATE_SETTINGS = {
    ANCHOR_COST_GATE: AnchorCostSettings,
    REUSE_GATE: ReuseSettings,
    DRIFT_RATE_GATE: DriftRateSettings,
    CAPTURE_SIZE_GATE: CaptureSizeSettings,
}


@pytest.mark.parametrize("gate", list(GATE_SETTINGS))
def test_each_gate_shows_its_settings_models_thresholds_with_description_and_bounds(gate):
    model = GATE_SETTINGS[gate]
    thresholds = _fields(_op_config(PHASE0_GATES_JOB, gate)["thresholds"].config_type)
    assert list(thresholds) == list(model.model_fields)
    for name, info in model.model_fields.items():
        field = thresholds[name]
        assert not field.is_required
        assert str(info.description) in field.description
        assert f"Unset: {info.default}." in field.description
    if gate == ANCHOR_COST_GATE:
        assert "Bounds: >= 60, <= 120." in thresholds["tail_p95_s"].description


def test_a_threshold_outside_its_bounds_is_refused_before_the_gate_runs(resources, instance):
    result = dg.materialize(
        [g_b7_cost],
        resources=resources,
        instance=instance,
        run_config={"ops": {ANCHOR_COST_GATE: {"config": {"thresholds": {"tail_p95_s": 30}}}}},
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node(ANCHOR_COST_GATE)
    assert failure is not None and "tail_p95_s" in str(failure.error)
    assert result.get_asset_materialization_events() == []


def test_an_unknown_threshold_is_refused_at_launch(resources, instance):
    with pytest.raises(dg.DagsterInvalidConfigError, match="material_p99_s"):
        dg.materialize(
            [g_b7_cost],
            resources=resources,
            instance=instance,
            run_config={
                "ops": {ANCHOR_COST_GATE: {"config": {"thresholds": {"material_p99_s": 1}}}}
            },
        )
    assert instance.get_runs() == []


def test_thresholds_a_run_sets_reach_the_gate_and_the_rest_keep_their_defaults(resources, instance):
    result = dg.materialize(
        [g_b7_cost],
        resources=resources,
        instance=instance,
        run_config={"ops": {ANCHOR_COST_GATE: {"config": {"thresholds": {"min_events": 7}}}}},
    )
    assert result.success
    report = read_report(
        REFERENCE_AUDIT.store(resources["artifacts"]), ANCHOR_COST_GATE, AnchorCostReport
    )
    assert report is not None
    assert report.settings == AnchorCostSettings(min_events=7)


# --- market data fixed by the code location -------------------------------------------------


def test_the_launchpad_offers_no_market_data_setting():
    assert _resource_config(AUDIT_JOB, "market_data") == {}


def test_a_run_that_overrides_market_data_is_refused_at_launch(tmp_path, instance):
    location_defs = build_definitions(resources=local_resources(tmp_path))
    job = location_defs.resolve_job_def(AUDIT_JOB)
    with pytest.raises(dg.DagsterInvalidConfigError, match="seed"):
        job.execute_in_process(
            instance=instance,
            partition_key=cell_partition_key(CellRef.parse("defi_top5/UNIUSDC/fold-1")),
            run_config={**TINY_RUN_CONFIG, "resources": {"market_data": {"config": {"seed": 3}}}},
        )
    assert instance.get_runs() == []


def test_an_unbound_market_data_resource_refuses_a_run_override_with_the_fix(resources, instance):
    result = dg.materialize(
        [market_bars, captured_fold],
        selection=["captured_fold"],
        resources=resources,
        instance=instance,
        partition_key=cell_partition_key(CellRef.parse("defi_top5/UNIUSDC/fold-0")),
        run_config={
            "ops": {"captured_fold": TINY_RUN_CONFIG["ops"]["captured_fold"]},
            "resources": {"market_data": {"config": {"seed": 3}}},
        },
        tags={ALLOW_COLD_CAPTURE_TAG: "true"},
        raise_on_error=False,
    )
    assert not result.success
    description, metadata = _failure(result, "captured_fold")
    assert "overrides the market data resource market_data (seed)" in description
    assert "DIAG_MARKET_DATA_DIR" in metadata["fix"]
    assert result.get_asset_materialization_events() == []


# --- the approval of a cold capture ---------------------------------------------------------


def test_approved_cold_audit_is_the_audit_with_the_approval_in_its_tags():
    audit_job = defs.resolve_job_def(AUDIT_JOB)
    approved = defs.resolve_job_def(APPROVED_COLD_AUDIT_JOB)
    assert approved.tags[ALLOW_COLD_CAPTURE_TAG] == "true"
    assert ALLOW_COLD_CAPTURE_TAG not in audit_job.tags
    assert set(approved.asset_layer.executable_asset_keys) == set(
        audit_job.asset_layer.executable_asset_keys
    )
    assert "approval of a cold capture" in (approved.description or "")


# The tags OPERATIONS.md's command gives `dagster job launch` for the cell UNIUSDC/fold-1.
CLI_PARTITION_TAGS = {
    "dagster/partition": "fold-1|UNIUSDC",
    "dagster/partition/fold": "fold-1",
    "dagster/partition/symbol": "UNIUSDC",
}


def test_a_cold_capture_is_refused_by_audit_and_approved_by_approved_cold_audit(tmp_path, instance):
    location_defs = build_definitions(resources=local_resources(tmp_path))
    key = cell_partition_key(CellRef.parse("defi_top5/UNIUSDC/fold-1"))

    def launch(job_name: str) -> dg.ExecuteInProcessResult:
        return location_defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, partition_key=key, run_config=TINY_RUN_CONFIG, raise_on_error=False
        )

    # A refusal marks the capture's check (ERROR), not the run: the steps after it are skipped.
    refused = launch(AUDIT_JOB)
    (check,) = [
        c
        for c in refused.get_asset_check_evaluations()
        if c.check_name == COLD_CAPTURE_APPROVAL_CHECK
    ]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["code"].value == "COLD_CAPTURE_REQUIRES_OPERATOR"
    assert APPROVED_COLD_AUDIT_JOB in (check.description or "")
    assert APPROVED_COLD_AUDIT_JOB in str(check.metadata["how_to_approve"].value)
    assert refused.get_asset_materialization_events() == []

    # Launched as OPERATIONS.md's `dagster job launch` does: the partition in the run tags.
    approved = location_defs.resolve_job_def(APPROVED_COLD_AUDIT_JOB).execute_in_process(
        instance=instance, run_config=TINY_RUN_CONFIG, tags=CLI_PARTITION_TAGS
    )
    assert approved.success
    assert materialized_metadata(approved, "captured_fold")["cache"] == "MISS"
    assert instance.get_run_by_id(approved.run_id).tags[ALLOW_COLD_CAPTURE_TAG] == "true"

    warm = launch(AUDIT_JOB)  # the approved capture now serves the plain audit
    assert warm.success and materialized_metadata(warm, "captured_fold")["cache"] == "HIT"


def _with_automation(*automations: Any):
    built = location.build_audit

    def build_audit(audit):
        part = built(audit)
        extra = dg.Definitions(
            sensors=[a for a in automations if isinstance(a, dg.SensorDefinition)],
            schedules=[a for a in automations if isinstance(a, dg.ScheduleDefinition)],
        )
        return AuditDefinitions(part.audit, dg.Definitions.merge(part.defs, extra))

    return build_audit


def _sensor(**target: Any) -> dg.SensorDefinition:
    return dg.SensorDefinition(name="approve_everything", evaluation_fn=lambda _: None, **target)


APPROVING = [
    ("sensor-by-name", lambda: _sensor(job_name=APPROVED_COLD_AUDIT_JOB), "sensor"),
    (
        "schedule-by-name",
        lambda: dg.ScheduleDefinition(
            name="nightly_approval", cron_schedule="0 1 * * *", job_name=APPROVED_COLD_AUDIT_JOB
        ),
        "schedule",
    ),
    (
        "schedule-with-the-tag",
        lambda: dg.ScheduleDefinition(
            name="nightly_approval",
            cron_schedule="0 1 * * *",
            job_name=AUDIT_JOB,
            tags={ALLOW_COLD_CAPTURE_TAG: "true"},
        ),
        "schedule",
    ),
]


@pytest.mark.parametrize(
    ("automation", "kind"),
    [(make, kind) for _, make, kind in APPROVING],
    ids=[i for i, *_ in APPROVING],
)
def test_the_code_location_refuses_to_load_with_an_automated_approval(
    monkeypatch, automation, kind
):
    monkeypatch.setattr(location, "build_audit", _with_automation(automation()))
    with pytest.raises(DiagInputError) as refused:
        build_definitions()
    assert f"the {kind} " in str(refused.value)
    assert APPROVED_COLD_AUDIT_JOB in refused.value.fix


@pytest.mark.parametrize("launched_by", ["dagster/sensor_name", "dagster/schedule_name"])
def test_an_approval_in_a_run_a_sensor_or_schedule_launched_is_refused(
    resources, instance, launched_by
):
    result = dg.materialize(
        [market_bars, captured_fold],
        selection=["captured_fold"],
        resources=resources,
        instance=instance,
        partition_key=cell_partition_key(CellRef.parse("defi_top5/UNIUSDC/fold-0")),
        run_config={"ops": {"captured_fold": TINY_RUN_CONFIG["ops"]["captured_fold"]}},
        tags={ALLOW_COLD_CAPTURE_TAG: "true", launched_by: "team_nightly"},
        raise_on_error=False,
    )
    assert not result.success
    description, metadata = _failure(result, "captured_fold")
    assert "team_nightly" in description and "approved by an operator" in description
    assert APPROVED_COLD_AUDIT_JOB in metadata["fix"]
    with resources["capture_cache"].open() as cache:
        assert cache.entries() == []


def test_a_sensor_on_the_audit_job_loads():
    refuse_automated_approval(
        dg.Definitions.merge(defs, dg.Definitions(sensors=[_sensor(job_name=AUDIT_JOB)]))
    )
    refuse_automated_approval(defs)  # the packaged location: its sensors target audit only


def test_the_packaged_sensors_and_schedules_never_target_the_approval():
    approved = defs.resolve_job_def(APPROVED_COLD_AUDIT_JOB).name
    targets = [t.job_name for s in defs.sensors or [] for t in s.targets] + [
        s.target.job_name for s in defs.schedules or [] if isinstance(s, dg.ScheduleDefinition)
    ]
    assert targets and approved not in targets
