"""Every sensor, schedule and asset check of a code location tells the operator what it does.

The UI lists sensors, schedules and checks by name; without a description an operator cannot
tell what a tick or a check result means. The packaged code location and the example team's
project are both checked, so a sensor, schedule or check added to either without a
description fails here.
"""

import dagster as dg
import pytest

from diag_assets.definitions import defs as packaged_defs

# A description shorter than this names the thing rather than saying what it does.
MIN_DESCRIPTION_CHARS = 40


def _example_defs() -> dg.Definitions:
    from forward_returns.definitions import defs

    return defs()


def undescribed(defs: dg.Definitions) -> list[str]:
    """What in ``defs`` has no description worth the name, as ``kind name``."""
    repository = defs.get_repository_def()
    missing = [
        f"sensor {sensor.name}"
        for sensor in repository.sensor_defs
        if len((sensor.description or "").strip()) < MIN_DESCRIPTION_CHARS
    ]
    missing += [
        f"schedule {schedule.name}"
        for schedule in repository.schedule_defs
        if len((schedule.description or "").strip()) < MIN_DESCRIPTION_CHARS
    ]
    graph = repository.asset_graph
    missing += [
        f"check {key.to_user_string()}"
        for key in sorted(graph.asset_check_keys, key=lambda k: k.to_user_string())
        if len((graph.get_check_spec(key).description or "").strip()) < MIN_DESCRIPTION_CHARS
    ]
    return missing


@pytest.mark.parametrize(
    "load", [lambda: packaged_defs, _example_defs], ids=["packaged", "example"]
)
def test_every_sensor_schedule_and_check_has_a_description(load):
    defs = load()
    repository = defs.get_repository_def()
    # The location does have each kind, so an empty loop cannot pass this test.
    assert repository.sensor_defs and repository.schedule_defs
    assert repository.asset_graph.asset_check_keys
    assert undescribed(defs) == []


def test_an_undescribed_sensor_is_named():
    @dg.sensor(job_name="nothing")
    def quiet(_context):
        return dg.SkipReason("nothing")

    @dg.op
    def noop():
        return None

    @dg.job(name="nothing")
    def nothing():
        noop()

    assert undescribed(dg.Definitions(sensors=[quiet], jobs=[nothing])) == ["sensor quiet"]
