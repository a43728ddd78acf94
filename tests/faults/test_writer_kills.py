"""A capture writer SIGKILLed at each write boundary, on both backends.

After every kill the next approved request gets a verified capture (replayed, adopted or
hit, as the boundary allows), never a torn or wrong one; the catalog holds exactly one
COMPLETE entry for the cell; and the GC collects what the dead writer left, down to its
temp files, without touching the capture that is served.
"""

import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from diag_assets.core.capture import events as ev
from diag_assets.core.capture.manifest import MANIFEST_FILE, X_FILE, Y_FILE
from diag_assets.core.capture.outcomes import CaptureOutcome
from diag_assets.core.storage.catalog.model import CaptureStatus
from tests.fixtures.writers import (
    DATA_FILES,
    KILL_BOUNDARIES,
    Backend,
    assert_one_verified_capture,
    make_service,
    request,
    start_writer,
    stored_files,
)


def kill_at(tmp_path, backend: Backend, boundary: str) -> None:
    writer = start_writer(tmp_path, backend, run_id="killed", boundary=boundary)
    try:
        writer.wait_paused()
        writer.kill()
    finally:
        writer.stop()


def collect(service):
    return service.collect_garbage(
        now=datetime.now(UTC), ttl=timedelta(days=365), keep_newest=1, in_use=set()
    )


def files_written_before(boundary: str) -> int:
    """How many data files a writer stopped at ``boundary`` has stored."""
    if boundary.startswith("after:") and boundary.removeprefix("after:") in DATA_FILES:
        return DATA_FILES.index(boundary.removeprefix("after:")) + 1
    return len(DATA_FILES)


@pytest.mark.parametrize("boundary", KILL_BOUNDARIES)
def test_a_writer_killed_at_a_boundary_never_leaves_a_torn_or_second_capture(
    tmp_path, backend, boundary
):
    kill_at(tmp_path, backend, boundary)
    with make_service(tmp_path, backend, holder="next") as service:
        (dead,) = service.catalog.entries()
        published = service.artifacts.read_manifest(dead.key)
        # Nothing is visible before the manifest is stored.
        assert (published is not None) == (boundary in (f"after:{MANIFEST_FILE}", "after:commit"))
        if boundary == "after:commit":
            assert dead.status is CaptureStatus.COMPLETE
        else:
            assert dead.status is CaptureStatus.CAPTURING and dead.producing_run_id == "killed"

        result, events = request(service, run_id="next")
        manifest = assert_one_verified_capture(service)
        assert result.manifest == manifest
        if boundary == "after:commit":
            assert result.outcome is CaptureOutcome.HIT and events == [ev.CAPTURE_HIT]
        elif published is not None:  # the dead writer's whole capture, adopted, not replayed
            assert result.outcome is CaptureOutcome.MISS
            assert ev.CAPTURE_LEASE_TAKEN_OVER in events and ev.CAPTURE_STARTED not in events
            assert manifest.attempt == published.attempt != result.entry.attempt_id
        else:  # replayed by a new attempt, into a folder of its own
            assert result.outcome is CaptureOutcome.MISS
            assert ev.CAPTURE_LEASE_TAKEN_OVER in events and ev.CAPTURE_STARTED in events
            assert manifest.attempt == result.entry.attempt_id != dead.attempt_id
        assert result.entry.producing_run_id == ("killed" if boundary == "after:commit" else "next")

        report = collect(service)
        dead_files = 0 if published is not None else files_written_before(boundary)
        assert (report.orphaned_files, report.temp_files) == (dead_files, 0)
        assert stored_files(service, dead.key) == sorted(
            [service.artifacts.key_of(dead.key, MANIFEST_FILE)]
            + [service.artifacts.file_key(manifest, name) for name in manifest.files]
        )
        assert_one_verified_capture(service)
        assert request(service, run_id="after-gc")[0].outcome is CaptureOutcome.HIT


@pytest.mark.parametrize("name", [X_FILE, Y_FILE])
def test_a_writer_killed_between_a_temp_file_and_its_rename_leaves_only_garbage(tmp_path, name):
    backend = Backend("file")
    kill_at(tmp_path, backend, f"rename:{name}")
    with make_service(tmp_path, backend, holder="next") as service:
        (dead,) = service.catalog.entries()
        left = service.artifacts.stale_temp_files(dead.key, older_than_s=0.0)
        assert len(left) == 1 and left[0].rsplit("/", 1)[-1].startswith(f".{name}.")
        assert service.artifacts.read_manifest(dead.key) is None
        result, _ = request(service, run_id="next")
        assert result.outcome is CaptureOutcome.MISS
        manifest = assert_one_verified_capture(service)
        # A temp file is collected only once it is older than the grace period (an hour).
        young = collect(service)
        assert (young.orphaned_files, young.temp_files) == (DATA_FILES.index(name), 0)
        assert left[0] in stored_files(service, dead.key)
        two_hours_ago = time.time() - 7200
        os.utime(tmp_path / "store" / left[0], (two_hours_ago, two_hours_ago))
        report = collect(service)
        assert (report.orphaned_files, report.temp_files) == (0, 1)
        assert stored_files(service, dead.key) == sorted(
            [service.artifacts.key_of(dead.key, MANIFEST_FILE)]
            + [service.artifacts.file_key(manifest, name) for name in manifest.files]
        )
        assert_one_verified_capture(service)
