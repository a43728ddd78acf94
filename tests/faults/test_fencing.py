"""A capture writer whose lease is taken away while it works, on both backends.

PostgreSQL: its lease session is terminated (``pg_terminate_backend``, as a server restart or
a network partition ends it). File: its lock file is deleted, so the next writer locks a new
one. In each case a second writer then captures the cell, and the first one goes on from
where it was stopped. Whatever the stop, the first writer raises ``LeaseLost`` or
``CaptureFenced`` naming what happened, publishes nothing over the second writer's capture
(or, inside the last instant between its proof and its write, only a whole capture of its
own), and the cell ends with exactly one COMPLETE capture that verifies.
"""

from datetime import UTC, datetime, timedelta

from diag_assets.core.capture import events as ev
from diag_assets.core.capture.manifest import MANIFEST_FILE, TRACE_FILE
from diag_assets.core.capture.outcomes import CaptureOutcome
from diag_assets.core.storage.catalog.model import CaptureStatus
from tests.fixtures.writers import (
    DATA_FILES,
    Backend,
    assert_one_verified_capture,
    make_service,
    request,
    start_writer,
    take_lease_away,
)


def overtake(tmp_path, backend: Backend, boundary: str):
    """Writer ``first`` stops at ``boundary``, loses its lease, ``second`` captures the cell,
    then ``first`` goes on. Returns (what first ended with, second's result and events)."""
    first = start_writer(tmp_path, backend, run_id="first", boundary=boundary)
    try:
        first.wait_paused()
        take_lease_away(tmp_path, backend, "first")
        with make_service(tmp_path, backend, holder="second") as service:
            second, events = request(service, run_id="second")
        return first.resume(), second, events
    finally:
        first.stop()


def assert_lost_before(outcome: dict, step: str, backend: Backend) -> None:
    assert outcome.get("error") == "LeaseLost", outcome
    message = outcome["message"]
    assert f"({backend.name} backend) was lost while its holder was working" in message
    assert "work under the lease is abandoned" in message and "retry the run" in message
    found = "lease session to PostgreSQL" if backend.name == "postgres" else "lock file"
    assert found in message
    assert outcome["event_fields"][ev.CAPTURE_LEASE_LOST]["before"] == step
    # It never marks the other writer's capture failed.
    assert outcome["event_fields"][ev.CAPTURE_FAILED]["marked_failed"] is False
    assert ev.CAPTURE_COMPLETED not in outcome["events"]


def collect(service):
    return service.collect_garbage(
        now=datetime.now(UTC), ttl=timedelta(days=365), keep_newest=1, in_use=set()
    )


def test_a_writer_that_lost_its_lease_stops_before_its_manifest(tmp_path, backend):
    first, second, events = overtake(tmp_path, backend, f"after:{TRACE_FILE}")
    assert_lost_before(first, "manifest", backend)
    assert second.outcome is CaptureOutcome.MISS and ev.CAPTURE_STARTED in events
    with make_service(tmp_path, backend, holder="check") as service:
        manifest = assert_one_verified_capture(service)
        assert manifest == second.manifest  # the second writer's, not overwritten
        entry = service.catalog.get(manifest.capture_key)
        assert entry is not None and entry.producing_run_id == "second"
        assert entry.attempt_id == second.entry.attempt_id == manifest.attempt
        # The first writer's files sit in its own folder, garbage for the GC.
        assert collect(service).orphaned_files == len(DATA_FILES)
        assert request(service, run_id="reader")[0].outcome is CaptureOutcome.HIT


def test_a_writer_that_lost_its_lease_after_its_manifest_stops_before_its_commit(tmp_path, backend):
    first, second, events = overtake(tmp_path, backend, f"after:{MANIFEST_FILE}")
    assert_lost_before(first, "catalog commit", backend)
    # The second writer adopted the first one's whole capture instead of replaying.
    assert second.outcome is CaptureOutcome.MISS and ev.CAPTURE_STARTED not in events
    assert second.manifest.attempt == first["event_fields"][ev.CAPTURE_STARTED]["attempt"]
    with make_service(tmp_path, backend, holder="check") as service:
        manifest = assert_one_verified_capture(service)
        entry = service.catalog.get(manifest.capture_key)
        assert entry is not None and entry.producing_run_id == "second"
        assert collect(service).orphaned_files == 0


def test_a_commit_sent_after_the_lease_was_lost_is_fenced_by_the_catalog(tmp_path, backend):
    # The first writer proved its lease, then lost it before its commit reached the catalog.
    first, second, _ = overtake(tmp_path, backend, "before:commit")
    assert first.get("error") == "CaptureFenced", first
    assert "may not complete it" in first["message"]
    assert "status complete, run second" in first["message"]
    assert "Fix: nothing to repair" in first["message"]
    fenced = first["event_fields"][ev.CAPTURE_FENCED]
    assert (fenced["status"], fenced["holder_attempt"]) == ("complete", second.entry.attempt_id)
    with make_service(tmp_path, backend, holder="check") as service:
        manifest = assert_one_verified_capture(service)
        entry = service.catalog.get(manifest.capture_key)
        assert entry == second.entry and entry.status is CaptureStatus.COMPLETE


def test_a_manifest_written_just_after_the_lease_was_lost_cannot_tear_the_capture(
    tmp_path, backend
):
    # The first writer proved its lease and lost it before its manifest landed: it replaces
    # the second writer's manifest, but with one that names its own whole set of files.
    first, second, _ = overtake(tmp_path, backend, f"before:{MANIFEST_FILE}")
    assert_lost_before(first, "catalog commit", backend)
    with make_service(tmp_path, backend, holder="check") as service:
        manifest = assert_one_verified_capture(service)
        assert manifest.attempt != second.manifest.attempt  # the first writer's files
        entry = service.catalog.get(manifest.capture_key)
        assert entry == second.entry  # committed once, by the second writer
        served, events = request(service, run_id="reader")
        assert served.outcome is CaptureOutcome.HIT and events == [ev.CAPTURE_HIT]
        assert collect(service).orphaned_files == len(DATA_FILES)  # the second's, now unnamed
        assert request(service, run_id="reader")[0].outcome is CaptureOutcome.HIT
