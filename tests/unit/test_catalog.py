"""The capture catalog on SQLite.

:class:`CatalogContract` is the behaviour every backend must have; it is written once and run
here on SQLite and in ``tests/integration/test_catalog_postgres.py`` on PostgreSQL. A
subclass provides two fixtures: ``location`` (``(kind, where)`` of a fresh, empty database)
and ``query`` (runs SQL on that database through a connection of its own, so the tests check
what is stored, not what the catalog says). The schema history has its own contract, in
``tests/unit/test_catalog_migrations.py``.
"""

import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from diag_assets.core.storage.catalog.catalog import CaptureCatalog, PostgresCatalog, SqliteCatalog
from diag_assets.core.storage.catalog.model import (
    CaptureFenced,
    CaptureStatus,
    CatalogEntry,
    CatalogUnavailable,
)

CELL = "defi_top5/UNIUSDC/fold-3"
OTHER_CELL = "defi_top5/OPUSDC/fold-3"
REQUEST = "rq-" + "a" * 32
OTHER_REQUEST = "rq-" + "b" * 32
T0 = datetime(2026, 1, 5, 12, 0, 0, 123456, tzinfo=UTC)
ATTEMPT = "at-1"


def ck(n: int) -> str:
    return f"ck-{n:032x}"


def open_catalog(kind: str, where: str, **kwargs: Any) -> CaptureCatalog:
    if kind == "sqlite":
        return SqliteCatalog(where, **kwargs)
    return PostgresCatalog(where, **kwargs)


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def begin(catalog: CaptureCatalog, key: str, **overrides: Any) -> CatalogEntry:
    fields = {
        "request_key": REQUEST,
        "cell_ref": CELL,
        "mode": "full_replay",
        "source_version": "sv-1",
        "run_id": "run-1",
        "attempt_id": ATTEMPT,
    }
    return catalog.begin_capture(key, **{**fields, **overrides})


def complete(catalog: CaptureCatalog, key: str, **overrides: Any) -> CatalogEntry:
    fields = {
        "artifact_uri": f"file:///captures/{key}",
        "x_hash": "x" * 32,
        "y_hash": "y" * 32,
        "trial_log_hash": "t" * 32,
        "content_hash": "c" * 32,
        "bytes": 12_345,
        "run_id": "run-1",
        "attempt_id": ATTEMPT,
    }
    return catalog.complete_capture(key, **{**fields, **overrides})


def fail(catalog: CaptureCatalog, key: str, reason: str, attempt_id: str = ATTEMPT) -> bool:
    return catalog.fail_capture(key, reason, attempt_id=attempt_id)


def run_concurrently(workers: int, task: Callable[[int], None]) -> None:
    """Runs ``task(i)`` on ``workers`` threads released together; re-raises any failure."""
    barrier = threading.Barrier(workers)

    def released(i: int) -> None:
        barrier.wait(timeout=30)
        task(i)

    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(released, i) for i in range(workers)]:
            future.result()


class CatalogContract:
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def catalog(self, location: tuple[str, str], clock: FakeClock) -> Iterator[CaptureCatalog]:
        with open_catalog(*location, clock=clock) as catalog:
            yield catalog

    @pytest.fixture
    def reopen(self, location: tuple[str, str]) -> Iterator[Callable[..., CaptureCatalog]]:
        opened: list[CaptureCatalog] = []

        def open_another(**kwargs: Any) -> CaptureCatalog:
            opened.append(open_catalog(*location, **kwargs))
            return opened[-1]

        yield open_another
        for catalog in opened:
            catalog.close()

    # -- round trips -----------------------------------------------------------------------

    def test_second_catalog_sees_the_first_ones_rows(self, catalog, reopen):
        begin(catalog, ck(1))
        other = reopen()
        assert other.get(ck(1)) == catalog.get(ck(1))
        other.record_use(ck(1))
        entry = catalog.get(ck(1))
        assert entry is not None and entry.use_count == 1

    def test_begin_complete_get_round_trips_every_field(self, catalog, clock):
        assert catalog.get(ck(1)) is None
        started = begin(catalog, ck(1))
        assert started == CatalogEntry(
            key=ck(1),
            request_key=REQUEST,
            cell_ref=CELL,
            status=CaptureStatus.CAPTURING,
            mode="full_replay",
            source_version="sv-1",
            artifact_uri=None,
            x_hash=None,
            y_hash=None,
            trial_log_hash=None,
            content_hash=None,
            bytes=None,
            created_at=T0,
            updated_at=T0,
            last_used_at=None,
            use_count=0,
            producing_run_id="run-1",
            status_reason=None,
            attempt_id=ATTEMPT,
        )
        done_at = clock.tick(90)
        completed = complete(catalog, ck(1), bytes=2**40, run_id="run-2")
        assert completed == started.model_copy(
            update={
                "status": CaptureStatus.COMPLETE,
                "artifact_uri": f"file:///captures/{ck(1)}",
                "x_hash": "x" * 32,
                "y_hash": "y" * 32,
                "trial_log_hash": "t" * 32,
                "content_hash": "c" * 32,
                "bytes": 2**40,
                "updated_at": done_at,
                "producing_run_id": "run-2",
            }
        )
        fetched = catalog.get(ck(1))
        assert fetched == completed
        assert fetched is not None and fetched.created_at.utcoffset() == timedelta(0)

    def test_complete_without_run_id_keeps_the_beginning_run(self, catalog):
        begin(catalog, ck(1), run_id="run-7")
        assert complete(catalog, ck(1), run_id=None).producing_run_id == "run-7"

    def test_begin_on_a_complete_entry_leaves_it_unchanged(self, catalog, clock):
        begin(catalog, ck(1))
        completed = complete(catalog, ck(1))
        clock.tick()
        assert begin(catalog, ck(1), run_id="run-2", source_version="sv-2") == completed
        assert catalog.get(ck(1)) == completed

    @pytest.mark.parametrize("previous", ["failed", "stale", "capturing"])
    def test_begin_resets_an_unfinished_entry_for_the_new_run(self, catalog, clock, previous):
        begin(catalog, ck(1))
        complete(catalog, ck(1))
        catalog.record_use(ck(1))
        if previous == "failed":
            catalog.mark_stale(ck(1), "bytes changed")
            begin(catalog, ck(1))
            fail(catalog, ck(1), "out of memory")
        elif previous == "stale":
            catalog.mark_stale(ck(1), "bytes changed")
        else:
            catalog.mark_stale(ck(1), "bytes changed")
            begin(catalog, ck(1))
        before = catalog.get(ck(1))
        assert before is not None and before.status == previous
        now = clock.tick()
        again = begin(catalog, ck(1), run_id="run-2", attempt_id="at-2")
        assert again == before.model_copy(
            update={
                "status": CaptureStatus.CAPTURING,
                "producing_run_id": "run-2",
                "attempt_id": "at-2",
                "updated_at": now,
                "status_reason": None,
                "artifact_uri": None,
                "x_hash": None,
                "y_hash": None,
                "trial_log_hash": None,
                "content_hash": None,
                "bytes": None,
            }
        )
        assert again.created_at == T0 and again.use_count == 1
        assert catalog.get(ck(1)) == again

    # -- lookups ---------------------------------------------------------------------------

    def test_latest_complete_picks_the_newest_complete_entry(self, catalog, clock):
        for n in (1, 2, 3, 4, 5):
            begin(catalog, ck(n), source_version=f"sv-{n}")
            clock.tick()
        for n in (1, 2, 3):
            complete(catalog, ck(n))
        catalog.mark_stale(ck(3), "source changed")
        fail(catalog, ck(4), "crashed")
        begin(catalog, ck(6), request_key=OTHER_REQUEST)
        complete(catalog, ck(6))

        latest = catalog.latest_complete(REQUEST)
        assert latest is not None and latest.key == ck(2) and latest.source_version == "sv-2"
        other = catalog.latest_complete(OTHER_REQUEST)
        assert other is not None and other.key == ck(6)
        assert catalog.latest_complete("rq-unknown") is None

        catalog.mark_stale(ck(2), "verification failed")
        latest = catalog.latest_complete(REQUEST)
        assert latest is not None and latest.key == ck(1)

    def test_latest_complete_breaks_a_created_at_tie_by_key(self, catalog):
        for n in (7, 9, 8):
            begin(catalog, ck(n))
            complete(catalog, ck(n))
        latest = catalog.latest_complete(REQUEST)
        assert latest is not None and latest.key == ck(9)

    def test_entries_filter_by_cell_and_status_in_created_order(self, catalog, clock):
        for n, cell in ((5, CELL), (3, OTHER_CELL), (4, CELL), (1, CELL)):
            begin(catalog, ck(n), cell_ref=cell)
            clock.tick()
        complete(catalog, ck(4))
        complete(catalog, ck(3))
        fail(catalog, ck(1), "boom")

        def keys(**filters: Any) -> list[str]:
            return [entry.key for entry in catalog.entries(**filters)]

        assert keys() == [ck(5), ck(3), ck(4), ck(1)]
        assert keys(cell_ref=CELL) == [ck(5), ck(4), ck(1)]
        assert keys(status=CaptureStatus.COMPLETE) == [ck(3), ck(4)]
        assert keys(cell_ref=CELL, status=CaptureStatus.COMPLETE) == [ck(4)]
        assert keys(status=CaptureStatus.FAILED) == [ck(1)]
        assert keys(status=CaptureStatus.STALE) == []
        assert keys(cell_ref="defi_top5/NONE/fold-0") == []

    def test_latest_is_the_entry_of_a_request_changed_last_in_any_status(self, catalog, clock):
        assert catalog.latest(REQUEST) is None
        begin(catalog, ck(1))
        complete(catalog, ck(1))
        clock.tick()
        begin(catalog, ck(2))
        clock.tick()
        fail(catalog, ck(2), "disk full")
        begin(catalog, ck(3), request_key=OTHER_REQUEST)
        latest = catalog.latest(REQUEST)
        assert latest is not None
        assert (latest.key, latest.status, latest.status_reason) == (
            ck(2),
            CaptureStatus.FAILED,
            "disk full",
        )
        clock.tick()
        catalog.mark_stale(ck(1), "verification failed")
        assert catalog.latest(REQUEST).key == ck(1)

    # -- status changes --------------------------------------------------------------------

    def test_mark_stale_and_fail_capture_set_status_and_reason(self, catalog, clock):
        begin(catalog, ck(1))
        begin(catalog, ck(2))
        complete(catalog, ck(2))
        now = clock.tick()
        assert fail(catalog, ck(1), "trial loop crashed")
        catalog.mark_stale(ck(2), "x hash mismatch")
        failed, stale = catalog.get(ck(1)), catalog.get(ck(2))
        assert failed is not None and stale is not None
        assert (failed.status, failed.status_reason, failed.updated_at) == (
            CaptureStatus.FAILED,
            "trial loop crashed",
            now,
        )
        assert (stale.status, stale.status_reason, stale.updated_at) == (
            CaptureStatus.STALE,
            "x hash mismatch",
            now,
        )
        assert stale.content_hash == "c" * 32
        with pytest.raises(KeyError):
            fail(catalog, ck(99), "no such capture")
        # The GC retired it meanwhile: nothing left to mark, and the caller is told.
        assert catalog.mark_stale(ck(99), "no such capture") is False
        assert catalog.mark_stale(ck(1), "still there") is True
        assert catalog.get(ck(99)) is None

    def test_fail_capture_never_downgrades_a_complete_entry(self, catalog, clock):
        begin(catalog, ck(1))
        completed = complete(catalog, ck(1))
        clock.tick()
        assert not fail(catalog, ck(1), "the other run failed")
        assert catalog.get(ck(1)) == completed

    # -- fencing: only the attempt that began a row completes or fails it --------------------

    def test_a_complete_by_an_overtaken_attempt_is_fenced_and_changes_nothing(
        self, catalog, clock, query
    ):
        begin(catalog, ck(1), run_id="run-old", attempt_id="at-old")
        clock.tick()
        taken_over = begin(catalog, ck(1), run_id="run-new", attempt_id="at-new")
        stored = query("SELECT * FROM diagnostic_capture")
        clock.tick()
        with pytest.raises(CaptureFenced) as fenced:
            complete(catalog, ck(1), run_id="run-old", attempt_id="at-old", content_hash="old")
        message = str(fenced.value)
        assert f"Capture {ck(1)}: attempt at-old may not complete it" in message
        assert "status capturing, run run-new, attempt at-new" in message
        assert "lost its lease" in message and "Fix: nothing to repair" in message
        assert (fenced.value.status, fenced.value.holder_attempt_id) == ("capturing", "at-new")
        assert catalog.get(ck(1)) == taken_over
        assert query("SELECT * FROM diagnostic_capture") == stored
        done = complete(catalog, ck(1), run_id="run-new", attempt_id="at-new", content_hash="new")
        assert (done.status, done.content_hash, done.attempt_id) == ("complete", "new", "at-new")

    def test_a_complete_row_is_never_completed_again(self, catalog):
        begin(catalog, ck(1))
        completed = complete(catalog, ck(1), content_hash="first")
        with pytest.raises(CaptureFenced, match="status complete, run run-1, attempt at-1"):
            complete(catalog, ck(1), content_hash="second")
        assert catalog.get(ck(1)) == completed
        # A writer that lost its lease after a takeover finds a begin that changes nothing.
        assert begin(catalog, ck(1), attempt_id="at-2") == completed
        with pytest.raises(CaptureFenced):
            complete(catalog, ck(1), attempt_id="at-2")

    @pytest.mark.parametrize("previous", ["failed", "stale"])
    def test_a_finished_attempt_cannot_complete_after_its_row_moved_on(self, catalog, previous):
        begin(catalog, ck(1))
        if previous == "failed":
            fail(catalog, ck(1), "crashed")
        else:
            complete(catalog, ck(1))
            catalog.mark_stale(ck(1), "bytes changed")
        before = catalog.get(ck(1))
        with pytest.raises(CaptureFenced, match=f"status {previous}"):
            complete(catalog, ck(1))
        assert catalog.get(ck(1)) == before

    def test_fail_capture_only_fails_its_own_attempt(self, catalog, clock):
        begin(catalog, ck(1), attempt_id="at-old")
        taken_over = begin(catalog, ck(1), run_id="run-new", attempt_id="at-new")
        clock.tick()
        assert not fail(catalog, ck(1), "the old writer lost its lease", attempt_id="at-old")
        assert catalog.get(ck(1)) == taken_over
        assert fail(catalog, ck(1), "the new writer crashed", attempt_id="at-new")
        failed = catalog.get(ck(1))
        assert failed is not None and failed.status is CaptureStatus.FAILED

    def test_of_racing_attempts_exactly_one_completes(self, catalog, reopen):
        writers = 6
        catalogs = [reopen() for _ in range(writers)]
        won: list[int] = []
        fenced: list[int] = []

        def capture(i: int) -> None:
            attempt = f"at-{i}"
            begin(catalogs[i], ck(1), run_id=f"run-{i}", attempt_id=attempt)
            try:
                complete(catalogs[i], ck(1), attempt_id=attempt, content_hash=f"c-{i}")
            except CaptureFenced:
                fenced.append(i)
            else:
                won.append(i)

        run_concurrently(writers, capture)
        assert len(won) == 1 and len(won) + len(fenced) == writers
        entry = catalog.get(ck(1))
        assert entry is not None and entry.status is CaptureStatus.COMPLETE
        assert (entry.content_hash, entry.attempt_id) == (f"c-{won[0]}", f"at-{won[0]}")

    def test_record_use_counts_and_stamps(self, catalog, clock):
        begin(catalog, ck(1))
        complete(catalog, ck(1))
        catalog.record_use(ck(1))
        used_at = clock.tick(5)
        catalog.record_use(ck(1))
        entry = catalog.get(ck(1))
        assert entry is not None
        assert (entry.use_count, entry.last_used_at, entry.updated_at) == (2, used_at, T0)
        assert catalog.record_use(ck(99)) is False  # retired since it was looked up
        assert catalog.get(ck(99)) is None

    def test_record_use_is_atomic_across_connections(self, catalog, reopen):
        begin(catalog, ck(1))
        catalogs = [reopen() for _ in range(4)]

        def use(i: int) -> None:
            for _ in range(25):
                catalogs[i].record_use(ck(1))

        run_concurrently(4, use)
        entry = catalog.get(ck(1))
        assert entry is not None and entry.use_count == 100

    def test_record_use_is_atomic_on_one_shared_catalog(self, catalog):
        begin(catalog, ck(1))

        def use(_: int) -> None:
            for _ in range(25):
                catalog.record_use(ck(1))

        run_concurrently(4, use)
        entry = catalog.get(ck(1))
        assert entry is not None and entry.use_count == 100

    def test_delete_removes_only_that_entry(self, catalog):
        begin(catalog, ck(1))
        begin(catalog, ck(2))
        catalog.delete(ck(1))
        assert catalog.get(ck(1)) is None
        assert [entry.key for entry in catalog.entries()] == [ck(2)]
        catalog.delete(ck(1))
        assert [entry.key for entry in catalog.entries()] == [ck(2)]

    def test_drift_counts(self, catalog, clock):
        assert catalog.drift_counts() == (0, 0)
        start = clock.now
        catalog.record_drift_check(ck(1), drifted=True, cell_ref=CELL)
        middle = clock.tick()
        catalog.record_drift_check(ck(1), drifted=False, cell_ref=CELL)
        clock.tick()
        catalog.record_drift_check(ck(2), drifted=True, cell_ref=OTHER_CELL)
        assert catalog.drift_counts() == (3, 2)
        assert catalog.drift_counts(since=start) == (3, 2)
        assert catalog.drift_counts(since=middle) == (2, 1)
        assert catalog.drift_counts(since=middle + timedelta(microseconds=1)) == (1, 1)
        assert catalog.drift_counts(since=clock.tick()) == (0, 0)
        # The same instant written at +02:00 selects the same checks.
        assert catalog.drift_counts(since=middle.astimezone(timezone(timedelta(hours=2)))) == (
            2,
            1,
        )
        with pytest.raises(ValueError, match="timezone-aware"):
            catalog.drift_counts(since=datetime(2026, 1, 1))

    # -- failures --------------------------------------------------------------------------

    def test_failed_write_changes_nothing(self, catalog, query):
        with pytest.raises(KeyError, match=ck(1)):
            complete(catalog, ck(1))
        assert catalog.entries() == []
        assert query("SELECT COUNT(*) FROM diagnostic_capture") == [(0,)]
        # The connection is usable after the rollback.
        assert begin(catalog, ck(1)).status == CaptureStatus.CAPTURING
        with pytest.raises(ValueError, match="bytes"):
            complete(catalog, ck(1), bytes=-1)
        entry = catalog.get(ck(1))
        assert entry is not None and entry.status == CaptureStatus.CAPTURING

    def test_a_closed_catalog_refuses_to_work(self, location):
        catalog = open_catalog(*location)
        catalog.close()
        catalog.close()
        with pytest.raises(CatalogUnavailable, match="closed"):
            catalog.get(ck(1))


class TestSqliteCatalog(CatalogContract):
    @pytest.fixture
    def location(self, tmp_path) -> tuple[str, str]:
        return ("sqlite", str(tmp_path / "not" / "yet" / "there" / "catalog.sqlite"))

    @pytest.fixture
    def query(self, location) -> Callable[[str], list[tuple[Any, ...]]]:
        def run(sql: str) -> list[tuple[Any, ...]]:
            with closing(sqlite3.connect(location[1])) as connection:
                return connection.execute(sql).fetchall()

        return run

    def test_uses_wal_and_stores_iso_utc_text(self, catalog, query):
        begin(catalog, ck(1))
        assert query("PRAGMA journal_mode") == [("wal",)]
        assert query("SELECT created_at, last_used_at FROM diagnostic_capture") == [
            ("2026-01-05T12:00:00.123456+00:00", None)
        ]

    def test_parent_is_a_file(self, tmp_path):
        blocker = tmp_path / "blocker"
        blocker.write_text("not a folder")
        path = blocker / "catalog.sqlite"
        with pytest.raises(CatalogUnavailable) as raised:
            SqliteCatalog(path)
        message = str(raised.value)
        assert message.startswith(f"sqlite capture catalog at {path} is unavailable")
        assert f"make sure {blocker} is a writable directory" in message
        assert (raised.value.backend, raised.value.location) == ("sqlite", str(path))

    def test_not_a_database(self, tmp_path):
        path = tmp_path / "catalog.sqlite"
        path.write_bytes(b"this is no sqlite file, just some bytes " * 100)
        with pytest.raises(CatalogUnavailable, match="not a database"):
            SqliteCatalog(path)

    def test_a_write_lock_held_too_long_is_reported(self, catalog, location):
        holder = sqlite3.connect(location[1], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            waiting = SqliteCatalog(location[1], busy_timeout_s=0.2)
            with pytest.raises(CatalogUnavailable, match="locked"):
                begin(waiting, ck(1))
            # Readers are not blocked by a writer in WAL mode.
            assert waiting.get(ck(1)) is None
            waiting.close()
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert begin(catalog, ck(1)).status == CaptureStatus.CAPTURING
