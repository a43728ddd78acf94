"""The re-audit sensor and the capture GC, against a real embedded cache."""

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from diag_assets.core.capture.gc import plan_gc
from diag_assets.core.cells import CellRef
from diag_assets.core.storage.catalog.model import CaptureStatus, CatalogEntry
from diag_assets.definitions import defs
from diag_assets.partitions import cell_partition_key
from tests.dagster.conftest import APPROVED, TINY_RUN_CONFIG
from tests.fixtures.audit import captured_fold, reaudit_requests

WARM = CellRef.parse("defi_top5/UNIUSDC/fold-1")
COLD = CellRef.parse("defi_top5/OPUSDC/fold-1")


def _capture(resources, instance, cell, run_config=TINY_RUN_CONFIG):
    return dg.materialize(
        [captured_fold],
        resources=resources,
        instance=instance,
        partition_key=cell_partition_key(cell),
        run_config={"ops": {"captured_fold": run_config["ops"]["captured_fold"]}},
        tags=APPROVED,
    )


def _write_request(resources, name, **body):
    directory = resources["audit_requests"].directory
    __import__("pathlib").Path(directory).mkdir(parents=True, exist_ok=True)
    with open(f"{directory}/{name}.json", "w") as handle:
        json.dump(body, handle)


def _tick(resources, instance, cursor=None):
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources, definitions=defs
    ) as context:
        return reaudit_requests(context), context


def _run_as_the_daemon(resources, instance, run_request):
    """Launch a tick's run request in the instance, as the daemon would (a warm capture)."""
    return dg.materialize(
        [captured_fold],
        resources=resources,
        instance=instance,
        partition_key=run_request.partition_key,
        run_config={"ops": {"captured_fold": {"config": {}}}},
        tags=run_request.tags,
    )


def _archived(resources) -> dict[str, dict]:
    """The archive's outcome files, by the request file they are about."""
    archive = Path(resources["audit_requests"].directory) / "archive"
    outcomes = [json.loads(p.read_text()) for p in archive.glob("*.outcome.json")]
    return {outcome["request_file"]: outcome for outcome in outcomes}


def test_reaudit_sensor_launches_warm_cells_once_and_holds_cold_ones(resources, instance):
    # the sensor re-audits with the default run config, so the warm cell is captured with it
    _capture(resources, instance, WARM, run_config={"ops": {"captured_fold": {"config": {}}}})
    _write_request(resources, "warm", cell_ref=str(WARM), requested_by="alice")
    _write_request(resources, "cold", cell_ref=str(COLD), requested_by="bob")
    _write_request(resources, "bad", cell_ref="../etc/passwd")

    # The rejection is the tick's status; the warm request launches on the next tick.
    first, context = _tick(resources, instance)
    assert isinstance(first, dg.SkipReason)
    assert "1 request(s) rejected ('bad.json')" in first.skip_message
    assert "launch on the next tick" in first.skip_message
    assert _archived(resources)["bad.json"]["outcome"] == "REJECTED"

    result, context = _tick(resources, instance, cursor=context.cursor)
    assert isinstance(result, dg.SensorResult)
    (run,) = result.run_requests
    assert run.partition_key == cell_partition_key(WARM)
    assert run.tags["diag/requested_by"] == "alice"
    assert "diag/allow_cold_capture" not in run.tags  # a sensor never approves a cold capture
    launched = _run_as_the_daemon(resources, instance, run)
    cursor = result.cursor

    # next tick: the warm request is archived with its run, the cold one waits for approval
    again, context = _tick(resources, instance, cursor=cursor)
    assert isinstance(again, dg.SkipReason)
    assert str(COLD) in again.skip_message and "diag/allow_cold_capture=true" in again.skip_message
    assert _archived(resources)["warm.json"]["run_id"] == launched.run_id
    assert not (Path(resources["audit_requests"].directory) / "warm.json").exists()
    cursor = context.cursor

    # once an operator captured the cold cell (no audit), its pending request launches
    _capture(resources, instance, COLD, run_config={"ops": {"captured_fold": {"config": {}}}})
    later, _ = _tick(resources, instance, cursor=cursor)
    (run,) = later.run_requests
    assert run.partition_key == cell_partition_key(COLD)


def test_reaudit_sensor_rejects_a_cell_of_another_universe_for_good(resources, instance):
    _write_request(resources, "elsewhere", cell_ref="binance/BTCUSDT/fold-1", requested_by="eve")
    result, context = _tick(resources, instance)
    assert isinstance(result, dg.SkipReason) and "1 request(s) rejected" in result.skip_message
    rejected = _archived(resources)["elsewhere.json"]
    assert rejected["outcome"] == "REJECTED" and "Fix:" in rejected["reason"]
    again, _ = _tick(resources, instance, cursor=context.cursor)  # not retried
    assert isinstance(again, dg.SkipReason) and "No new requests" in again.skip_message


def test_reaudit_sensor_run_keys_are_stable_per_request(resources, instance):
    _capture(resources, instance, WARM, run_config={"ops": {"captured_fold": {"config": {}}}})
    _write_request(resources, "warm", cell_ref=str(WARM))
    first, _ = _tick(resources, instance)
    second, _ = _tick(resources, instance)  # no cursor: Dagster's run_key dedup is the backstop
    assert first.run_requests[0].run_key == second.run_requests[0].run_key


def _entry(key, cell, *, status=CaptureStatus.COMPLETE, age_days=0.0, used_days=None, now):
    created = now - timedelta(days=age_days)
    return CatalogEntry(
        key=key,
        request_key="rk",
        cell_ref=cell,
        status=status,
        mode="full_replay",
        source_version="s",
        artifact_uri=None,
        x_hash=None,
        y_hash=None,
        trial_log_hash=None,
        content_hash=None,
        bytes=10,
        created_at=created,
        updated_at=created,
        last_used_at=None if used_days is None else now - timedelta(days=used_days),
        use_count=0,
        producing_run_id=None,
        status_reason=None,
    )


def test_gc_plan_rules():
    now = datetime(2026, 11, 1, tzinfo=UTC)
    entries = [
        _entry("new", "c1", age_days=40, now=now),  # newest of c1: kept
        _entry("old", "c1", age_days=50, now=now),  # expired: retired
        _entry("used", "c1", age_days=60, used_days=1, now=now),  # used recently: kept
        _entry("leased", "c1", age_days=70, now=now),  # leased: kept
        _entry("pointer", "c1", age_days=80, now=now),  # read by the cell's diagnostics: kept
        _entry("busy", "c1", age_days=90, status=CaptureStatus.CAPTURING, now=now),
        _entry("stale", "c2", age_days=45, status=CaptureStatus.STALE, now=now),  # retired
    ]
    decisions = {
        d.entry.key: d
        for d in plan_gc(
            entries,
            now=now,
            ttl=timedelta(days=30),
            keep_newest=1,
            is_leased=lambda key: key == "leased",
            in_use={"pointer"},
        )
    }
    assert {k for k, d in decisions.items() if d.delete} == {"old", "stale"}
    assert "newest" in decisions["new"].reason and "leased" in decisions["leased"].reason
    assert "in use" in decisions["pointer"].reason and "being captured" in decisions["busy"].reason


def _entries(resources) -> list:
    with resources["capture_cache"].open() as cache:
        return cache.entries()


def test_gc_job_retires_an_unused_capture_and_keeps_the_one_in_use(resources, instance, tmp_path):
    config_a = {"ops": {"captured_fold": {"config": {"n_trials": 1, "max_rounds": 10}}}}
    config_b = {"ops": {"captured_fold": {"config": {"n_trials": 1, "max_rounds": 10, "seed": 3}}}}
    _capture(resources, instance, WARM, run_config=config_a)
    _capture(resources, instance, WARM, run_config=config_b)  # now the cell's diagnostics read b
    keys = [e.key for e in _entries(resources)]
    assert len(keys) == 2

    job = defs.resolve_job_def("capture_gc_job")
    gc_config = {
        "ops": {"collect_capture_garbage": {"config": {"ttl_days": 1e-9, "keep_newest": 1}}}
    }
    dry = job.execute_in_process(
        instance=instance,
        resources=resources,
        run_config={
            "ops": {
                "collect_capture_garbage": {
                    "config": {"ttl_days": 1e-9, "keep_newest": 1, "dry_run": True}
                }
            }
        },
    )
    assert dry.success and len(_entries(resources)) == 2
    result = job.execute_in_process(instance=instance, resources=resources, run_config=gc_config)
    assert result.success
    (output,) = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["retired"].value == 1 and metadata["drift_checks"].value == 0
    (kept,) = _entries(resources)
    assert kept.key == keys[1]
    assert not (tmp_path / "artifacts" / "captures" / keys[0]).exists()
    assert (tmp_path / "artifacts" / "captures" / keys[1] / "manifest.json").exists()


def test_gc_job_collects_dead_writers_leftovers_and_reports_them(resources, instance, tmp_path):
    _capture(resources, instance, WARM)
    (entry,) = _entries(resources)
    folder = tmp_path / "artifacts" / "captures" / entry.key
    (published,) = folder.glob("*/")
    temp = published / ".y.parquet.k1ll3d.tmp"  # a write killed before its rename
    temp.write_bytes(b"half a file")
    two_hours_ago = time.time() - 7200
    os.utime(temp, (two_hours_ago, two_hours_ago))
    dead = folder / ("0" * 32)  # a writer killed before its manifest
    dead.mkdir()
    (dead / "X.parquet").write_bytes(b"half a capture")

    job = defs.resolve_job_def("capture_gc_job")
    result = job.execute_in_process(instance=instance, resources=resources)
    assert result.success
    (output,) = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert (metadata["orphaned_files"].value, metadata["temp_files"].value) == (1, 1)
    assert not dead.exists() and not temp.exists()
    with resources["capture_cache"].open() as cache:
        manifest = cache.artifacts.read_manifest(entry.key)
        assert manifest is not None
        cache.artifacts.verify(manifest)  # the published capture is untouched
