"""Single-flight leases: the contract both backends meet, run here on the file backend.

:class:`LeaseContract` holds the backend-agnostic tests; ``TestFileLease`` runs them on
:class:`FileLease` and ``tests/integration/test_lease_postgres.py`` on a real PostgreSQL.
Other processes are real processes (``sys.executable`` running :data:`CHILD_SCRIPT`), so
mutual exclusion, crash recovery and waiting are tested across processes, as in production.
"""

import fcntl
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from diag_assets.core.storage.lease.base import (
    Lease,
    LeaseAttempt,
    LeaseGrant,
    LeaseLost,
    LeaseTimeout,
    LeaseUnavailable,
    check_lease_key,
)
from diag_assets.core.storage.lease.file import FileLease

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTENDERS = 6
INSIDE_S = 0.1

# argv: backend target key mode [args...]; backend "none" runs the same code with no lock at
# all, which is how the overlap detector proves it would catch a broken lease.
CHILD_SCRIPT = r"""
import contextlib, os, sys, time
from pathlib import Path
from diag_assets.core.storage.lease.file import FileLease
from diag_assets.core.storage.lease.postgres import PostgresLease

backend, target, key, mode, *rest = sys.argv[1:]
if backend == "file":
    lease = FileLease(target)
elif backend == "postgres":
    lease = PostgresLease(target)
else:
    lease = None

def hold(wait_s):
    if lease is None:
        return contextlib.nullcontext()
    return lease.hold(key, wait_s=wait_s, poll_s=0.01)

def log(path, line):
    with open(path, "a") as handle:
        handle.write(line + "\n")

if mode == "hold":
    ready, hold_s = rest
    with hold(0):
        Path(ready).touch()
        time.sleep(float(hold_s))
elif mode == "contend":
    ready, go, out = rest
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.002)
    with hold(30):
        log(out, f"enter {os.getpid()}")
        time.sleep(float(os.environ["INSIDE_S"]))
        log(out, f"exit {os.getpid()}")
"""


class Children:
    """Child processes of one test; all killed at teardown."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, backend: str, target: str, key: str, mode: str, *args: str):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
            "INSIDE_S": str(INSIDE_S),
        }
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD_SCRIPT, backend, target, key, mode, *args],
            cwd=REPO_ROOT,
            env=env,
            stderr=subprocess.PIPE,
        )
        self.processes.append(process)
        return process

    def holder(self, backend: str, target: str, key: str, hold_s: float):
        """A child holding ``key`` for ``hold_s``; returns once it holds the lease."""
        ready = self.workdir / f"ready-{uuid.uuid4().hex}"
        process = self.spawn(backend, target, key, "hold", str(ready), str(hold_s))
        wait_for_file(ready, process)
        return process

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            if process.stderr is not None:
                process.stderr.close()


def wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"child exited with {process.returncode} before {path.name}:\n{stderr}")
        if time.monotonic() > deadline:
            pytest.fail(f"child did not create {path.name} within {timeout_s} s")
        time.sleep(0.01)


def overlaps(lines: list[str]) -> bool:
    """Whether the enter/exit log shows two holders inside at once."""
    inside: str | None = None
    for line in lines:
        event, pid = line.split()
        if event == "enter":
            if inside is not None:
                return True
            inside = pid
        else:
            if inside != pid:
                return True
            inside = None
    return False


def run_contenders(children: Children, backend: str, target: str, key: str) -> list[str]:
    """Start CONTENDERS processes, release them at once, return their enter/exit log."""
    workdir = children.workdir
    go = workdir / f"go-{uuid.uuid4().hex}"
    out = workdir / f"log-{uuid.uuid4().hex}"
    started = []
    for index in range(CONTENDERS):
        ready = workdir / f"ready-{index}-{uuid.uuid4().hex}"
        started.append(
            (children.spawn(backend, target, key, "contend", str(ready), str(go), str(out)), ready)
        )
    for process, ready in started:
        wait_for_file(ready, process)
    go.touch()
    for process, _ in started:
        if process.wait(timeout=30) != 0:
            stderr = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"contender exited with {process.returncode}:\n{stderr}")
    return out.read_text().splitlines()


class LeaseContract:
    """Behaviour every :class:`Lease` backend must have. Subclasses provide the fixtures."""

    backend: str

    @pytest.fixture
    def target(self) -> str:
        """The root folder or DSN the leases (and child processes) use."""
        raise NotImplementedError

    def make(self, target: str) -> Lease:
        raise NotImplementedError

    @pytest.fixture
    def lease(self, target: str) -> Iterator[Lease]:
        lease = self.make(target)
        yield lease
        lease.close()

    @pytest.fixture
    def key(self) -> str:
        return f"ck-{uuid.uuid4().hex}"

    @pytest.fixture
    def children(self, tmp_path: Path) -> Iterator[Children]:
        children = Children(tmp_path)
        yield children
        children.kill_all()

    def test_acquire_and_release(self, lease: Lease, key: str):
        assert not lease.is_held(key)
        with lease.hold(key, wait_s=0) as grant:
            assert grant == LeaseGrant(key=key, waited_s=0.0, waited=False, backend=self.backend)
            assert lease.backend == self.backend
            assert lease.is_held(key)
        assert not lease.is_held(key)
        with lease.hold(key, wait_s=0) as again:
            assert not again.waited

    def test_holds_in_one_process_exclude_each_other(self, lease: Lease, target: str, key: str):
        other = self.make(target)
        try:
            with (
                lease.hold(key, wait_s=0),
                pytest.raises(LeaseTimeout),
                other.hold(key, wait_s=0),
            ):
                pytest.fail("two holders of one key")
            # Not re-entrant, even on the same Lease object.
            with (
                lease.hold(key, wait_s=0),
                pytest.raises(LeaseTimeout),
                lease.hold(key, wait_s=0),
            ):
                pytest.fail("a lease was re-entered")
        finally:
            other.close()

    def test_waiter_in_another_process_gets_it_when_the_holder_releases(
        self, lease: Lease, target: str, key: str, children: Children
    ):
        hold_s = 1.5
        holder = children.holder(self.backend, target, key, hold_s)
        reports: list[float] = []
        started = time.monotonic()
        with lease.hold(key, wait_s=10, on_wait=reports.append) as grant:
            acquired_after = time.monotonic() - started
            assert lease.is_held(key)
        assert holder.wait(timeout=10) == 0
        assert grant.waited
        assert 0.8 * hold_s <= grant.waited_s <= hold_s + 1.0
        assert abs(grant.waited_s - acquired_after) < 0.2
        # Reported at once, then about once a second, never more often.
        assert 1 <= len(reports) <= 3, reports
        assert reports[0] < 0.3
        assert all(b - a >= 0.9 for a, b in zip(reports, reports[1:], strict=False)), reports

    def test_timeout_names_the_key_the_wait_and_the_fix(self, lease: Lease, target: str, key: str):
        other = self.make(target)
        try:
            with other.hold(key, wait_s=0):
                reports: list[float] = []
                started = time.monotonic()
                with (
                    pytest.raises(LeaseTimeout) as info,
                    lease.hold(key, wait_s=0.6, on_wait=reports.append),
                ):
                    pytest.fail("acquired a held lease")
                elapsed = time.monotonic() - started
                assert 0.6 <= elapsed < 1.5
                assert len(reports) == 1 and reports[0] < 0.3
                message = str(info.value)
                assert key in message and self.backend in message
                assert "after waiting 0.6 s" in message and "wait_s=0.6" in message
                assert "Fix:" in message and "raise wait_s" in message and "holder run" in message
                assert (info.value.key, info.value.wait_s) == (key, 0.6)

                started = time.monotonic()
                with pytest.raises(LeaseTimeout), lease.hold(key, wait_s=0):
                    pytest.fail("acquired a held lease")
                assert time.monotonic() - started < 0.5
                assert other.is_held(key)
        finally:
            other.close()
        # A timed-out waiter leaves nothing behind that blocks the next caller.
        with lease.hold(key, wait_s=0):
            pass

    def test_released_when_the_block_raises(self, lease: Lease, key: str):
        with pytest.raises(ZeroDivisionError), lease.hold(key, wait_s=0):
            assert lease.is_held(key)
            _ = 1 / 0
        assert not lease.is_held(key)
        with lease.hold(key, wait_s=0) as grant:
            assert not grant.waited

    def test_different_keys_do_not_block_each_other(self, lease: Lease, key: str):
        with lease.hold(key, wait_s=0), lease.hold(key + "-other", wait_s=0) as grant:
            assert not grant.waited
            assert lease.is_held(key) and lease.is_held(key + "-other")
        assert not lease.is_held(key + "-other")

    def test_crashed_holder_frees_the_lease(
        self, lease: Lease, target: str, key: str, children: Children
    ):
        holder = children.holder(self.backend, target, key, 60)
        # is_held must not disturb the holder: ask twice, then check it still holds.
        assert lease.is_held(key)
        assert lease.is_held(key)
        with pytest.raises(LeaseTimeout), lease.hold(key, wait_s=0):
            pytest.fail("acquired a lease held by a live process")

        grants: list[tuple[float, LeaseGrant]] = []
        errors: list[BaseException] = []

        def waiter() -> None:
            try:
                with lease.hold(key, wait_s=10) as grant:
                    grants.append((time.monotonic(), grant))
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                errors.append(error)

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.3)
        assert holder.poll() is None, "the holder exited before it was killed"
        killed_at = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
        thread.join(timeout=15)
        assert not thread.is_alive()
        assert not errors, errors
        assert holder.wait(timeout=5) == -signal.SIGKILL
        [(acquired_at, grant)] = grants
        assert grant.waited
        assert acquired_at - killed_at < 2.0
        assert not lease.is_held(key)

    def test_mutual_exclusion_under_contention(self, target: str, key: str, children: Children):
        lines = run_contenders(children, self.backend, target, key)
        assert len(lines) == 2 * CONTENDERS
        assert [line.split()[0] for line in lines] == ["enter", "exit"] * CONTENDERS
        assert not overlaps(lines), lines
        assert len({line.split()[1] for line in lines}) == CONTENDERS

    @pytest.mark.parametrize(
        "bad", ["", "a/b", "../x", "x" * 201, "ck\n", "ck-é", "a b", "ck:1", None]
    )
    def test_invalid_keys_are_refused(self, lease: Lease, bad):
        with pytest.raises(ValueError, match="Invalid lease key"), lease.hold(bad, wait_s=0):
            pytest.fail("held an invalid key")
        with pytest.raises(ValueError, match="Invalid lease key"):
            lease.is_held(bad)

    def test_the_grant_proves_the_lease_while_held_and_never_after(self, lease: Lease, key: str):
        with lease.hold(key, wait_s=0) as grant:
            grant.ensure_held()
            grant.ensure_held()
        with pytest.raises(LeaseLost, match="already exited") as lost:
            grant.ensure_held()
        assert (lost.value.key, lost.value.backend) == (key, self.backend)

    def test_longest_valid_key_is_accepted(self, lease: Lease):
        key = "K" * 200
        with lease.hold(key, wait_s=0):
            assert lease.is_held(key)


class TestFileLease(LeaseContract):
    backend = "file"

    @pytest.fixture
    def target(self, tmp_path: Path) -> str:
        return str(tmp_path / "locks")

    def make(self, target: str) -> Lease:
        return FileLease(target)

    def test_unwritable_root_is_unavailable(self, tmp_path: Path):
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        lease = FileLease(blocker / "locks")
        with pytest.raises(LeaseUnavailable) as info, lease.hold("ck-1", wait_s=1):
            pytest.fail("held a lease under a file")
        message = str(info.value)
        assert str(blocker / "locks") in message and "Fix:" in message and "writable" in message
        with pytest.raises(LeaseUnavailable):
            lease.is_held("ck-1")

    def test_is_held_never_creates_lock_files(self, lease: Lease, target: str, key: str):
        assert not lease.is_held(key)
        assert not Path(target).exists() or not any(Path(target).iterdir())

    def test_concurrent_probes_do_not_see_each_other_as_holders(self, target: str, key: str):
        lease = FileLease(target)
        with lease.hold(key, wait_s=0):
            pass
        # What another process's is_held probe holds for an instant: a shared lock.
        fd = os.open(Path(target) / f"{key}.lock", os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            assert not lease.is_held(key)
        finally:
            os.close(fd)

    def test_lock_file_is_kept_and_reused(self, target: str, key: str):
        lease = FileLease(target)
        path = Path(target) / f"{key}.lock"
        with lease.hold(key, wait_s=0):
            inode = path.stat().st_ino
        # Deleting a lock file in use would break mutual exclusion, so it is never deleted.
        assert path.exists()
        with lease.hold(key, wait_s=0):
            assert path.stat().st_ino == inode

    @pytest.mark.parametrize("change", ["deleted", "replaced"])
    def test_a_lock_file_deleted_or_replaced_under_the_holder_loses_its_lease(
        self, target: str, key: str, change: str
    ):
        lease = FileLease(target)
        path = Path(target) / f"{key}.lock"
        with lease.hold(key, wait_s=0) as grant:
            path.unlink()
            if change == "replaced":
                # What the next caller does: it creates and locks a new file at the path.
                with FileLease(target).hold(key, wait_s=0) as other:
                    other.ensure_held()
                    with pytest.raises(LeaseLost) as lost:
                        grant.ensure_held()
            else:
                with pytest.raises(LeaseLost) as lost:
                    grant.ensure_held()
        message = str(lost.value)
        assert f"Lease {key!r} (file backend) was lost" in message
        assert f"{path} was {change}" in message
        assert "abandoned" in message and "Fix: nothing to repair, retry the run" in message
        assert lost.value.found.startswith("its lock file")

    def test_timeout_quotes_the_recorded_holder(self, target: str, key: str):
        holder = FileLease(target, holder="run-1234abcd")
        with (
            holder.hold(key, wait_s=0),
            pytest.raises(LeaseTimeout) as info,
            FileLease(target).hold(key, wait_s=0),
        ):
            pytest.fail("acquired a held lease")
        message = str(info.value)
        assert "run-1234abcd" in message and f"pid={os.getpid()}" in message
        assert f"{key}.lock" in message


def test_the_overlap_detector_catches_a_missing_lock(tmp_path: Path):
    """Control: without a lease, the contenders overlap and the detector says so."""
    children = Children(tmp_path)
    try:
        lines = run_contenders(children, "none", str(tmp_path), "ck-control")
    finally:
        children.kill_all()
    assert overlaps(lines)


def test_check_lease_key():
    assert check_lease_key("ck-0a.B_9") == "ck-0a.B_9"
    with pytest.raises(ValueError, match="1 to 200 characters"):
        check_lease_key("x/y")


class ScriptedAttempt(LeaseAttempt):
    """Held for ``held_tries`` tries, then free; records what the base class does."""

    def __init__(self, held_tries: int) -> None:
        self.held_tries = held_tries
        self.tries: list[float] = []
        self.released = 0
        self.abandoned = 0

    def try_acquire(self) -> bool:
        self.tries.append(time.monotonic())
        return len(self.tries) > self.held_tries

    def release(self) -> None:
        self.released += 1

    def abandon(self) -> None:
        self.abandoned += 1

    def why_lost(self) -> str | None:
        return None


class ScriptedLease(Lease):
    backend = "scripted"

    def __init__(self, held_tries: int) -> None:
        self.attempt = ScriptedAttempt(held_tries)

    def _open_attempt(self, key: str) -> LeaseAttempt:
        return self.attempt

    def is_held(self, key: str) -> bool:
        return False

    def close(self) -> None:
        pass


def test_polling_backs_off_to_half_a_second_and_reports_once_a_second():
    lease = ScriptedLease(held_tries=10**9)
    reports: list[float] = []
    with (
        pytest.raises(LeaseTimeout),
        lease.hold("ck-1", wait_s=2.2, on_wait=reports.append, poll_s=0.05),
    ):
        pytest.fail("acquired")
    tries = lease.attempt.tries
    gaps = [b - a for a, b in zip(tries, tries[1:], strict=False)]
    assert gaps[0] < 0.15  # starts at poll_s
    assert max(gaps) < 0.6  # capped at about 0.5 s
    assert gaps[5] > 0.2  # and grows: 0.05 * 1.5**5 = 0.38
    assert 8 <= len(tries) <= 16, gaps
    assert tries[-1] - tries[0] >= 2.2
    assert reports[0] < 0.05
    assert 3 <= len(reports) <= 4, reports
    assert all(0.95 <= b - a < 1.6 for a, b in zip(reports, reports[1:], strict=False)), reports
    assert (lease.attempt.released, lease.attempt.abandoned) == (0, 1)


def test_wait_zero_is_a_single_try():
    lease = ScriptedLease(held_tries=1)
    reports: list[float] = []
    with pytest.raises(LeaseTimeout), lease.hold("ck-1", wait_s=0, on_wait=reports.append):
        pytest.fail("acquired")
    assert len(lease.attempt.tries) == 1
    assert len(reports) == 1


def test_grant_after_waiting_and_release_exactly_once():
    lease = ScriptedLease(held_tries=3)
    reports: list[float] = []
    with lease.hold("ck-1", wait_s=5, on_wait=reports.append, poll_s=0.01) as grant:
        assert lease.attempt.released == 0
    assert grant.waited and grant.waited_s > 0 and grant.backend == "scripted"
    assert len(reports) == 1
    assert (lease.attempt.released, lease.attempt.abandoned) == (1, 0)


def test_a_failing_on_wait_propagates_and_frees_the_attempt():
    lease = ScriptedLease(held_tries=10**9)

    def on_wait(elapsed_s: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), lease.hold("ck-1", wait_s=5, on_wait=on_wait):
        pytest.fail("acquired")
    assert (lease.attempt.released, lease.attempt.abandoned) == (0, 1)


@pytest.mark.parametrize(("wait_s", "poll_s"), [(-1, 0.05), (float("nan"), 0.05), (1, 0), (1, -1)])
def test_bad_wait_or_poll_is_refused(wait_s: float, poll_s: float):
    with pytest.raises(ValueError), ScriptedLease(0).hold("ck-1", wait_s=wait_s, poll_s=poll_s):
        pytest.fail("acquired")


def test_lease_timeout_survives_pickling():
    error = LeaseTimeout("held", key="ck-1", waited_s=1.0, wait_s=1.0)
    assert str(pickle.loads(pickle.dumps(error))) == "held"


def test_lease_lost_survives_pickling():
    error = LeaseLost("lost", key="ck-1", backend="file", found="deleted")
    assert str(pickle.loads(pickle.dumps(error))) == "lost"


def test_a_grant_no_hold_handed_out_proves_nothing():
    with pytest.raises(LeaseLost, match="no hold block"):
        LeaseGrant(key="ck-1", waited_s=0.0, waited=False, backend="file").ensure_held()
