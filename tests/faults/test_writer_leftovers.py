"""The capture GC against what writers leave: a dead writer's files go, a live one's stay.

A writer SIGKILLed between a temp file and its rename leaves a data file in its attempt
folder and the temp file; a writer that is alive holds its key's lease while its files are
just as unpublished. The GC must collect the first and never touch the second, even once
the live writer's temp file is older than the grace period: the lease is what protects it.
"""

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from diag_assets.core.capture.manifest import X_FILE, Y_FILE
from diag_assets.core.capture.outcomes import CaptureOutcome
from tests.fixtures.writers import (
    CELL,
    OTHER_CELL,
    assert_one_verified_capture,
    make_service,
    request,
    start_writer,
    stored_files,
)


def age(path: Path, seconds: float = 7200) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_gc_collects_a_dead_writers_files_and_old_temp_files_never_a_live_writers(
    tmp_path, backend
):
    store = tmp_path / "store"
    dead = start_writer(tmp_path, backend, run_id="dead", boundary=f"rename:{Y_FILE}")
    try:
        dead.wait_paused()
        dead.kill()
    finally:
        dead.stop()
    live = start_writer(
        tmp_path, backend, run_id="live", boundary=f"rename:{Y_FILE}", cell=OTHER_CELL
    )
    try:
        live.wait_paused()
        with make_service(tmp_path, backend, holder="next") as service:
            (dead_entry,) = service.catalog.entries(cell_ref=str(CELL))
            dead_left = stored_files(service, dead_entry.key)
            assert sorted(Path(key).name[:11] for key in dead_left) == [".y.parquet.", X_FILE]
            for key in dead_left:
                age(store / key)
            result, _ = request(service, run_id="next")
            assert result.outcome is CaptureOutcome.MISS
            published = assert_one_verified_capture(service)
            fresh_temp = store / service.artifacts.file_key(published, ".X.parquet.fresh1.tmp")
            fresh_temp.write_bytes(b"a write under way")  # younger than the grace period

            (live_entry,) = service.catalog.entries(cell_ref=str(OTHER_CELL))
            live_key = live_entry.key
            live_left = stored_files(service, live_key)
            assert len(live_left) == 2  # its X.parquet and the temp file of its y.parquet
            for key in live_left:
                age(store / key)  # old enough to go, were the writer not alive

            report = service.collect_garbage(
                now=datetime.now(UTC), ttl=timedelta(days=365), keep_newest=1, in_use=set()
            )
            assert (report.orphaned_files, report.temp_files) == (1, 1)
            assert not any((store / key).exists() for key in dead_left)
            assert fresh_temp.exists()
            assert stored_files(service, live_key) == live_left  # the live writer's: untouched
            assert_one_verified_capture(service)

        finished = live.resume()
        assert finished.get("outcome") == "MISS", finished
        with make_service(tmp_path, backend, holder="check") as service:
            assert_one_verified_capture(service, OTHER_CELL)
            assert_one_verified_capture(service)
    finally:
        live.stop()
