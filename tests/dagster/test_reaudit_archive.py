"""Re-audit requests after they are handled: archived, served by approved audits, bounded.

Against a real embedded instance and cache: the runs an operator launches are real runs in
the instance's history, and the request files are real files in a temporary folder.
"""

import json
import os
import time
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster._core.utils import make_new_run_id

from diag_assets.core.cells import CellRef
from diag_assets.core.names import REQUEST_ID_TAG
from diag_assets.definitions import defs
from diag_assets.partitions import cell_partition_key
from tests.dagster.conftest import APPROVED, TINY_RUN_CONFIG
from tests.fixtures.audit import (
    anchor_and_consumers,
    audit_report,
    captured_fold,
    reaudit_requests,
    s22a2_spread,
    s23_drift,
)

COLD = CellRef.parse("defi_top5/OPUSDC/fold-1")
AUDIT = [captured_fold, anchor_and_consumers, s22a2_spread, s23_drift, audit_report]
DEFAULT_CAPTURE = {"captured_fold": {"config": {}}}


def _folder(resources) -> Path:
    folder = Path(resources["audit_requests"].directory)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write(resources, name: str, **body) -> Path:
    path = _folder(resources) / f"{name}.json"
    path.write_text(json.dumps(body))
    return path


def _tick(resources, instance, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        result = reaudit_requests(context)
        return result, getattr(result, "cursor", None) or context.cursor


def _outcomes(resources) -> dict[str, dict]:
    archive = _folder(resources) / "archive"
    found = [json.loads(p.read_text()) for p in archive.glob("*.outcome.json")]
    return {outcome["request_file"]: outcome for outcome in found}


def _approved_audit(resources, instance, cell, *, capture=TINY_RUN_CONFIG["ops"]["captured_fold"]):
    """What an operator runs for a cold cell: the whole audit, with the approval tag."""
    return dg.materialize(
        AUDIT,
        resources=resources,
        instance=instance,
        partition_key=cell_partition_key(cell),
        run_config={"ops": {**TINY_RUN_CONFIG["ops"], "captured_fold": capture}},
        tags=APPROVED,
    )


def test_an_approved_audit_serves_a_pending_request_and_nothing_launches_again(resources, instance):
    _write(resources, "cold", cell_ref=str(COLD), requested_by="bob")
    waiting, cursor = _tick(resources, instance)
    assert isinstance(waiting, dg.SkipReason) and str(COLD) in waiting.skip_message

    # The operator audits the cell with the approval; the cell is now warm for the sensor too.
    approved = _approved_audit(resources, instance, COLD, capture=DEFAULT_CAPTURE["captured_fold"])
    assert approved.success

    served, cursor = _tick(resources, instance, cursor=cursor)
    assert isinstance(served, dg.SkipReason), "the request must not launch a second audit"
    assert approved.run_id in served.skip_message
    outcome = _outcomes(resources)["cold.json"]
    assert outcome["outcome"] == "SERVED" and outcome["run_id"] == approved.run_id
    assert not (_folder(resources) / "cold.json").exists()
    again, _ = _tick(resources, instance, cursor=cursor)
    assert isinstance(again, dg.SkipReason) and "No new requests" in again.skip_message

    # A request filed after that audit is a new request: the warm cell is re-audited.
    time.sleep(0.05)
    _write(resources, "later", cell_ref=str(COLD), requested_by="carol")
    later, _ = _tick(resources, instance)
    assert isinstance(later, dg.SensorResult)
    (run,) = later.run_requests
    assert run.tags["diag/requested_by"] == "carol"


def test_an_approved_run_that_only_captured_does_not_serve_the_request(resources, instance):
    _write(resources, "cold", cell_ref=str(COLD))
    dg.materialize(
        [captured_fold],
        resources=resources,
        instance=instance,
        partition_key=cell_partition_key(COLD),
        run_config={"ops": DEFAULT_CAPTURE},
        tags=APPROVED,
    )
    result, _ = _tick(resources, instance)
    assert isinstance(result, dg.SensorResult)  # captured, not audited: the re-audit runs
    assert "cold.json" not in _outcomes(resources)


def test_the_cursor_stays_bounded_however_many_requests_were_handled(resources, instance):
    many = 120
    for n in range(many):  # rejected: a cell of another universe
        _write(resources, f"elsewhere-{n:03d}", cell_ref="binance/BTCUSDT/fold-1")
    result, cursor = _tick(resources, instance)
    assert (
        isinstance(result, dg.SkipReason) and f"{many} request(s) rejected" in result.skip_message
    )
    assert len(_outcomes(resources)) == many
    assert [p.name for p in _folder(resources).iterdir()] == ["archive"]
    bounded = len(cursor or "")

    # Launched requests are kept only until their runs exist, then archived and forgotten.
    _approved_audit(resources, instance, COLD, capture=DEFAULT_CAPTURE["captured_fold"])
    for n in range(many):
        _write(resources, f"warm-{n:03d}", cell_ref=str(COLD), requested_by=f"user-{n}")
    launched, cursor = _tick(resources, instance, cursor=cursor)
    assert isinstance(launched, dg.SensorResult) and len(launched.run_requests) == many
    for run in launched.run_requests:  # the daemon creates each requested run
        instance.add_run(dg.DagsterRun(job_name="audit", run_id=make_new_run_id(), tags=run.tags))
    archived, cursor = _tick(resources, instance, cursor=cursor)
    assert isinstance(archived, dg.SkipReason)
    assert len(_outcomes(resources)) == 2 * many
    assert len(cursor or "") <= bounded
    launched_ids = {o["run_id"] for o in _outcomes(resources).values() if o["run_id"]}
    assert len(launched_ids) == many


def test_a_request_that_cannot_be_archived_stays_reported_and_is_not_handled_again(
    resources, instance
):
    folder = _folder(resources)
    (folder / "archive").write_text("not a folder")  # the archive cannot be made
    _write(resources, "elsewhere", cell_ref="binance/BTCUSDT/fold-1")
    first, cursor = _tick(resources, instance)
    assert isinstance(first, dg.SkipReason)
    assert (
        "could not be archived" in first.skip_message and "'elsewhere.json'" in first.skip_message
    )
    assert (folder / "elsewhere.json").exists()  # never lost

    second, cursor = _tick(resources, instance, cursor=cursor)
    assert "could not be archived" in second.skip_message
    assert "rejected" not in second.skip_message  # handled once

    os.remove(folder / "archive")
    third, cursor = _tick(resources, instance, cursor=cursor)
    assert isinstance(third, dg.SkipReason) and "No new requests" in third.skip_message
    outcome = _outcomes(resources)["elsewhere.json"]
    assert outcome["outcome"] == "REJECTED"
    assert cursor is not None and json.loads(cursor)["unarchived"] == {}


def test_a_launched_request_is_archived_with_its_run_once_the_run_exists(resources, instance):
    _approved_audit(resources, instance, COLD, capture=DEFAULT_CAPTURE["captured_fold"])
    _write(resources, "warm", cell_ref=str(COLD))
    first, cursor = _tick(resources, instance)
    (run,) = first.run_requests
    # The daemon has not created the run yet: the same run key is requested again.
    second, cursor = _tick(resources, instance, cursor=cursor)
    assert [r.run_key for r in second.run_requests] == [run.run_key]
    run_id = make_new_run_id()
    instance.add_run(dg.DagsterRun(job_name="audit", run_id=run_id, tags=run.tags))
    assert instance.get_run_records(dg.RunsFilter(tags={REQUEST_ID_TAG: run.tags[REQUEST_ID_TAG]}))
    third, _ = _tick(resources, instance, cursor=cursor)
    assert isinstance(third, dg.SkipReason)
    assert _outcomes(resources)["warm.json"]["run_id"] == run_id


def test_a_request_waits_for_an_approved_audit_of_its_cell_still_in_progress(resources, instance):
    _write(resources, "cold", cell_ref=str(COLD))
    running = instance.create_run_for_job(
        defs.resolve_job_def("audit"),
        tags={PARTITION_NAME_TAG: str(cell_partition_key(COLD)), **APPROVED},
    )
    held, cursor = _tick(resources, instance)
    assert isinstance(held, dg.SkipReason)
    assert "being audited by an approved run" in held.skip_message
    assert running.run_id in held.skip_message
    assert (_folder(resources) / "cold.json").exists()

    # It failed before writing the report: the request did not get its audit and waits on.
    instance.report_run_failed(running)
    waiting, _ = _tick(resources, instance, cursor=cursor)
    assert "need operator approval" in waiting.skip_message
    assert "cold.json" not in _outcomes(resources)


def test_rejections_and_launches_take_turns_so_neither_waits_more_than_a_tick(resources, instance):
    _approved_audit(resources, instance, COLD, capture=DEFAULT_CAPTURE["captured_fold"])
    _write(resources, "warm", cell_ref=str(COLD))
    _write(resources, "bad-1", cell_ref="binance/BTCUSDT/fold-1")
    first, cursor = _tick(resources, instance)
    assert isinstance(first, dg.SkipReason) and "'bad-1.json'" in first.skip_message

    # A new bad file arrives: this tick launches anyway, the next one reports it.
    _write(resources, "bad-2", cell_ref="binance/BTCUSDT/fold-1")
    second, cursor = _tick(resources, instance, cursor=cursor)
    assert isinstance(second, dg.SensorResult) and len(second.run_requests) == 1
    assert (_folder(resources) / "bad-2.json").exists()
    third, cursor = _tick(resources, instance, cursor=cursor)
    assert isinstance(third, dg.SkipReason) and "'bad-2.json'" in third.skip_message
    assert _outcomes(resources)["bad-2.json"]["outcome"] == "REJECTED"
