"""What refreshes by itself: the schedules and the automation sensor, and the capture guard."""

import dagster as dg
import pytest
from dagster._core.definitions.automation_condition_sensor_definition import (
    DEFAULT_AUTOMATION_CONDITION_SENSOR_NAME,
)

import diag_assets.component.location as location
from diag_assets.component.automation import refuse_automated_capture
from diag_assets.core.errors import DiagInputError
from diag_assets.core.names import (
    AUDIT_SUMMARY,
    AUTOMATION_SENSOR,
    CAPTURED_FOLD,
    INVARIANCE_GATE,
    MARKET_DATA_SCHEDULE,
    PHASE0_GATES_SCHEDULE,
    RELEASE_PARITY_GATE,
    SEAM_GATE,
    WARM_READ_GATE,
)
from diag_assets.definitions import build_definitions, defs

EAGER = dg.AutomationCondition.eager()


def _with_condition(definitions: dg.Definitions, *assets: str) -> dg.Definitions:
    keys = {dg.AssetKey(asset) for asset in assets}

    def automate(spec: dg.AssetSpec) -> dg.AssetSpec:
        return spec.replace_attributes(automation_condition=EAGER) if spec.key in keys else spec

    return definitions.map_asset_specs(func=automate)


def test_what_refreshes_by_itself_runs_by_default_and_says_what_it_does():
    repository = defs.get_repository_def()
    for name in (MARKET_DATA_SCHEDULE, PHASE0_GATES_SCHEDULE):
        schedule = repository.get_schedule_def(name)
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING, name
    sensor = repository.get_sensor_def(AUTOMATION_SENSOR)
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    for instigator in (
        repository.get_schedule_def(MARKET_DATA_SCHEDULE),
        repository.get_schedule_def(PHASE0_GATES_SCHEDULE),
        sensor,
    ):
        assert instigator.description, instigator.name


def test_the_audits_sensor_evaluates_a_condition_set_on_the_summary():
    automated = _with_condition(defs, AUDIT_SUMMARY)
    repository = automated.get_repository_def()
    sensor = repository.get_sensor_def(AUTOMATION_SENSOR)
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    targeted = sensor.asset_selection.resolve(repository.asset_graph)
    assert dg.AssetKey(AUDIT_SUMMARY) in targeted
    # The audit's sensor owns the condition, so Dagster adds no default sensor (stopped).
    assert not repository.has_sensor_def(DEFAULT_AUTOMATION_CONDITION_SENSOR_NAME)


def test_a_condition_outside_the_audit_is_left_to_dagsters_default_sensor():
    @dg.asset(automation_condition=EAGER)
    def team_dashboard() -> None: ...

    repository = build_definitions(extra_assets=[team_dashboard]).get_repository_def()
    assert repository.has_sensor_def(DEFAULT_AUTOMATION_CONDITION_SENSOR_NAME)
    own = repository.get_sensor_def(AUTOMATION_SENSOR).asset_selection
    assert own is not None and team_dashboard.key not in own.resolve(repository.asset_graph)


def test_a_condition_on_the_capture_stops_the_code_location_from_loading(monkeypatch):
    # A future edit that gives captured_fold an automation condition where it is defined.
    built = location.build_capture

    def automated_capture(audit):
        return _with_condition(built(audit), CAPTURED_FOLD)

    monkeypatch.setattr(location, "build_capture", automated_capture)
    with pytest.raises(DiagInputError, match="would let automation request captured_fold") as e:
        build_definitions()
    assert "diag/allow_cold_capture=true" in e.value.fix


@pytest.mark.parametrize("gate", [INVARIANCE_GATE, SEAM_GATE, RELEASE_PARITY_GATE, WARM_READ_GATE])
def test_a_condition_on_a_gate_that_captures_its_fixture_set_is_refused(gate):
    with pytest.raises(DiagInputError, match=f"The automation condition on {gate} "):
        refuse_automated_capture(_with_condition(defs, gate))


def test_a_job_with_a_condition_that_selects_the_capture_is_refused():
    hourly = dg.define_asset_job(
        "hourly_audit",
        selection=[dg.AssetKey(CAPTURED_FOLD)],
        automation_condition=dg.AutomationCondition.any_job_root_assets_match(
            dg.AutomationCondition.cron_tick_passed("0 * * * *")
        ),
    )
    with pytest.raises(DiagInputError, match="on the job hourly_audit would let automation"):
        refuse_automated_capture(dg.Definitions.merge(defs, dg.Definitions(jobs=[hourly])))


def test_conditions_on_the_verdicts_reports_and_gates_that_replay_nothing_are_allowed():
    allowed = _with_condition(defs, "s40_verdict", "audit_report", AUDIT_SUMMARY, "g_b7_cost")
    assert refuse_automated_capture(allowed) is allowed
