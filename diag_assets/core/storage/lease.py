"""Single-flight leases: at most one process captures a given key at a time.

When several audits ask for the same cold capture at once, exactly one of them takes the
capture key's lease and captures; the others wait (a bounded time) for the lease, then find
the finished capture and reuse it. A holder that crashes frees its lease by itself: both
backends tie the lease to something the operating system or the database server tears down
when the holder dies, so there is no expiry to tune and no stale lock to clean up by hand.

Use::

    with lease.hold(key, wait_s=600, on_wait=report) as grant:
        ...  # only one process in here per key, on every machine sharing the backend

``hold`` tries once without blocking. If someone else holds the key it calls
``on_wait(elapsed_s)`` right away and then at most about once a second, polling with an
interval that grows from ``poll_s`` to 0.5 s, and raises :class:`LeaseTimeout` once
``wait_s`` has passed (``wait_s=0``: a single try). The lease is released when the block
exits, also on an exception. Leases are not re-entrant: holding a key and asking for it
again, even from the same process or thread, waits like any other caller.

``is_held(key)`` says whether anyone, this process included, holds the key right now. It is a
snapshot: the answer can be stale the moment it returns, so use it for reports and GC
planning, and take the lease itself (``hold(key, wait_s=0)``) before acting on a key.

Keys must match ``^[A-Za-z0-9_.-]{1,200}$`` on both backends (``ValueError`` otherwise), so a
key means the same thing whichever backend is configured and is always a safe file name.

File backend (:class:`FileLease`, one machine)
    One lock file per key, ``<root>/<key>.lock``, locked with ``flock(LOCK_EX)``. The kernel
    releases a flock when the last descriptor of the open file goes away, so a holder killed
    with SIGKILL frees its lease at once. Each ``hold`` opens its own descriptor, so two holds
    in one process exclude each other too. Descriptors are opened close-on-exec, so programs
    the holder starts do not keep its lease alive; a child made with a bare ``fork()`` while
    a lease is held does share it until it exits. The holder writes its pid, host and start
    time into the file (the lock is on the inode, not on the contents); a timeout message
    quotes them. Operators: ``fuser -v <root>/<key>.lock`` or ``lsof`` show the holding
    process. This module never deletes a lock file: deleting a locked file lets the next
    caller lock a *new* inode while the old holder still holds the old one, which breaks
    mutual exclusion. They are tiny files, one per key ever leased; delete them only when no
    run is active. Flock is reliable on local file systems only; for
    several machines use the Postgres backend, not a lock folder on NFS. ``is_held`` probes
    with a momentary shared lock: the holder is not disturbed, but a ``hold(key, wait_s=0)``
    that tries in the same microsecond as a probe gets ``LeaseTimeout`` (with ``wait_s > 0``
    it simply polls again).

Postgres backend (:class:`PostgresLease`, any number of machines)
    Each held lease has its own **dedicated** connection (autocommit), opened by ``hold`` and
    closed when the lease is released. The lease is the session-level advisory lock
    ``pg_try_advisory_lock(id)``, released with ``pg_advisory_unlock(id)``, where ``id`` is
    the first 8 bytes of ``sha256(key)`` (UTF-8) read as a big-endian signed int64
    (:func:`advisory_lock_id`). In SQL, for operators::

        SELECT ('x' || left(encode(sha256(convert_to('KEY', 'UTF8')), 'hex'), 16))::bit(64)::bigint;

    and to see who holds it, with ``ID`` that bigint (``pg_locks`` splits it into ``classid``
    = high 32 bits and ``objid`` = low 32 bits, with ``objsubid = 1``)::

        SELECT l.pid, a.application_name, a.client_addr, a.backend_start
        FROM pg_locks l JOIN pg_stat_activity a USING (pid)
        WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
          AND l.classid = ((ID >> 32) & 4294967295)::oid AND l.objid = (ID & 4294967295)::oid;

    Lease sessions are named ``diag-lease`` (plus the ``holder`` given to the lease) in
    ``application_name``. A holder that dies closes its connection and the server frees the
    lock; for a holder whose *machine* vanishes, the session sets server-side TCP keepalives
    (30 s idle, 10 s interval, 3 probes) so the server notices within about a minute instead
    of the kernel default of hours, and turns ``idle_session_timeout`` off (PostgreSQL 14+),
    since a lease session is idle by design. ``is_held`` reads ``pg_locks`` on a separate
    connection (kept open until :meth:`Lease.close`) and never touches the lock.

    **Session-level advisory locks need a session-pinned connection.** PgBouncer (or any
    pooler) in *transaction* pooling mode breaks them: the lock can be taken on one server
    connection and "released" on another, or stay held by a pooled server connection after
    the client has gone, blocking the key until the pooler recycles it. Point the lease DSN at
    PostgreSQL directly or at a *session*-mode pool. A release that the server says was not
    ours is logged as a warning naming this cause.
"""

import contextlib
import fcntl
import hashlib
import logging
import math
import os
import re
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,200}")
MAX_POLL_S = 0.5
POLL_GROWTH = 1.5
ON_WAIT_EVERY_S = 1.0

# Server-side keepalives for lease sessions: without them a holder whose machine disappears
# (power loss, network partition) keeps its lock until the kernel gives up, hours later.
_PG_KEEPALIVES = {
    "tcp_keepalives_idle": 30,
    "tcp_keepalives_interval": 10,
    "tcp_keepalives_count": 3,
}
_PG_APPLICATION_NAME = "diag-lease"
_PG_NAME_LIMIT = 63  # NAMEDATALEN - 1: the server truncates application_name there


@dataclass(frozen=True)
class LeaseGrant:
    """What ``hold`` hands to the block that runs under the lease.

    Attributes:
        key: The key that is held.
        waited_s: Seconds spent waiting for another holder before acquisition; 0.0 if the
            first try succeeded.
        waited: True if someone else held the key when we first tried.
        backend: ``"file"`` or ``"postgres"``.
    """

    key: str
    waited_s: float
    waited: bool
    backend: str


class LeaseTimeout(RuntimeError):
    """The key stayed held by someone else for longer than ``wait_s``."""

    def __init__(
        self, message: str, *, key: str = "", waited_s: float = 0.0, wait_s: float = 0.0
    ) -> None:
        # Defaults keep the exception picklable (unpickling calls cls(*args)).
        super().__init__(message)
        self.key = key
        self.waited_s = waited_s
        self.wait_s = wait_s


class LeaseUnavailable(RuntimeError):
    """The lease backend cannot be used: Postgres unreachable, lock folder not writable."""


def check_lease_key(key: str) -> str:
    """Return ``key`` if it is a valid lease key, else raise ``ValueError``.

    Args:
        key: A capture key or other identifier.

    Returns:
        The key unchanged.

    Raises:
        ValueError: ``key`` does not match ``^[A-Za-z0-9_.-]{1,200}$``.
    """
    if not isinstance(key, str) or KEY_PATTERN.fullmatch(key) is None:
        raise ValueError(
            f"Invalid lease key {key!r}: a key is 1 to 200 characters from A-Z a-z 0-9 _ . -"
        )
    return key


def advisory_lock_id(key: str) -> int:
    """The PostgreSQL advisory lock id of ``key``.

    Args:
        key: A lease key.

    Returns:
        The first 8 bytes of ``sha256(key.encode("utf-8"))`` as a big-endian signed int64.
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _holder_description(holder: str) -> str:
    since = datetime.now(UTC).isoformat(timespec="seconds")
    text = f"pid={os.getpid()} host={socket.gethostname()} since={since}"
    return f"{text} holder={holder}" if holder else text


class _Attempt(ABC):
    """One ``hold`` call's resources (a descriptor, a connection) from first try to release."""

    @abstractmethod
    def try_acquire(self) -> bool:
        """Try once without blocking; True if we now hold the lease."""

    @abstractmethod
    def release(self) -> None:
        """Give the held lease back and free the resources; must not raise."""

    @abstractmethod
    def abandon(self) -> None:
        """Free the resources of an attempt that never acquired; must not raise."""

    def holder_hint(self) -> str:
        """Who holds the key, for a timeout message; empty if unknown."""
        return ""


class Lease(ABC):
    """A single-flight lease per key. See the module docstring for the semantics."""

    backend: str

    @contextmanager
    def hold(
        self,
        key: str,
        *,
        wait_s: float,
        on_wait: Callable[[float], None] | None = None,
        poll_s: float = 0.05,
    ) -> Iterator[LeaseGrant]:
        """Hold the lease on ``key`` for the duration of the ``with`` block.

        Args:
            key: The lease key (see :func:`check_lease_key`).
            wait_s: How long to wait for another holder, in seconds; 0 tries once.
            on_wait: Called with the seconds waited so far as soon as the key is found held,
                then at most about once per second while waiting.
            poll_s: First poll interval; it grows to 0.5 s (or ``poll_s`` if larger).

        Yields:
            A :class:`LeaseGrant` describing the acquisition.

        Raises:
            ValueError: Invalid key, negative ``wait_s`` or non-positive ``poll_s``.
            LeaseTimeout: The key was still held by someone else after ``wait_s``.
            LeaseUnavailable: The backend cannot be reached or written.
        """
        check_lease_key(key)
        if not (wait_s >= 0 and math.isfinite(wait_s)):
            raise ValueError(f"wait_s must be a finite number >= 0, got {wait_s!r}.")
        if not (poll_s > 0 and math.isfinite(poll_s)):
            raise ValueError(f"poll_s must be a finite number > 0, got {poll_s!r}.")
        attempt = self._open_attempt(key)
        acquired = False
        try:
            waited, waited_s = self._acquire(attempt, key, wait_s, on_wait, poll_s)
            acquired = True
        finally:
            if not acquired:
                attempt.abandon()
        try:
            yield LeaseGrant(key=key, waited_s=waited_s, waited=waited, backend=self.backend)
        finally:
            attempt.release()

    def _acquire(
        self,
        attempt: _Attempt,
        key: str,
        wait_s: float,
        on_wait: Callable[[float], None] | None,
        poll_s: float,
    ) -> tuple[bool, float]:
        start = time.monotonic()
        interval = poll_s
        max_interval = max(poll_s, MAX_POLL_S)
        waited = False
        last_report = start
        while not attempt.try_acquire():
            now = time.monotonic()
            elapsed = now - start
            if on_wait is not None and (not waited or now - last_report >= ON_WAIT_EVERY_S):
                last_report = now
                on_wait(elapsed)
            waited = True
            if elapsed >= wait_s:
                raise LeaseTimeout(
                    self._timeout_message(key, elapsed, wait_s, attempt.holder_hint()),
                    key=key,
                    waited_s=elapsed,
                    wait_s=wait_s,
                )
            # Sleep to the deadline at most, so the last try happens right at wait_s.
            time.sleep(max(0.0, min(interval, start + wait_s - time.monotonic())))
            interval = min(max_interval, interval * POLL_GROWTH)
        return waited, (time.monotonic() - start if waited else 0.0)

    def _timeout_message(self, key: str, elapsed: float, wait_s: float, hint: str) -> str:
        held_by = f" by {hint}" if hint else ""
        return (
            f"Lease {key!r} ({self.backend} backend) is still held{held_by} after waiting "
            f"{elapsed:.1f} s (wait_s={wait_s:g}). Fix: if the holder run is alive and still "
            f"capturing, raise wait_s above how long a cold capture takes; otherwise check the "
            f"holder run and stop it if it is stuck (its lease frees itself when its process "
            f"or connection ends)."
        )

    @abstractmethod
    def _open_attempt(self, key: str) -> _Attempt:
        """Open what trying ``key`` needs; raise :class:`LeaseUnavailable` if it cannot."""

    @abstractmethod
    def is_held(self, key: str) -> bool:
        """Whether anyone, this process included, holds ``key`` right now.

        Args:
            key: The lease key.

        Returns:
            True if the lease is held. The holder is never disturbed.

        Raises:
            ValueError: Invalid key.
            LeaseUnavailable: The backend cannot be reached or read.
        """

    @abstractmethod
    def close(self) -> None:
        """Free what the lease keeps open between calls; leases being held stay held."""


class _FileAttempt(_Attempt):
    def __init__(self, fd: int, path: Path, holder: str) -> None:
        self._fd = fd
        self._path = path
        self._holder = holder

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as error:
            raise LeaseUnavailable(
                f"Cannot lock {self._path}: {error}. Fix: put the lease folder on a local file "
                f"system that supports flock, or use the Postgres lease backend."
            ) from error
        try:
            data = (_holder_description(self._holder) + "\n").encode()
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError as error:
            # The note only feeds timeout messages; the lock itself is already ours.
            LOGGER.debug("Could not record the holder in %s: %s", self._path, error)
        return True

    def holder_hint(self) -> str:
        try:
            text = os.pread(self._fd, 512, 0).decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        where = f"(fuser -v {self._path})"
        return f"{text} {where}" if text else where

    def release(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError as error:
            LOGGER.warning(
                "Unlocking %s failed (%s); closing it frees the lock.", self._path, error
            )
        self.abandon()

    def abandon(self) -> None:
        try:
            os.close(self._fd)
        except OSError as error:
            LOGGER.warning("Closing lock file %s failed: %s", self._path, error)


class FileLease(Lease):
    """Leases as ``flock`` locks on ``<root>/<key>.lock``: one machine.

    Args:
        root: Folder of the lock files; created on first use.
        holder: Optional description of this process (a run id), recorded in the lock file
            while held and quoted in other callers' timeout messages.
    """

    backend = "file"

    def __init__(self, root: str | os.PathLike[str], *, holder: str = "") -> None:
        self.root = Path(root).absolute()
        self.holder = holder

    def path_for(self, key: str) -> Path:
        """The lock file of ``key`` (validated)."""
        return self.root / f"{check_lease_key(key)}.lock"

    def _unavailable(self, path: Path, error: OSError) -> LeaseUnavailable:
        return LeaseUnavailable(
            f"File lease folder {self.root} is not usable ({path}: {error.strerror or error}). "
            f"Fix: make {self.root} a directory writable by the user running the code location, "
            f"or configure the lease root to point at one."
        )

    def _open_attempt(self, key: str) -> _Attempt:
        path = self.path_for(key)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Non-inheritable (O_CLOEXEC) so processes we start never keep our lock alive.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as error:
            raise self._unavailable(path, error) from error
        return _FileAttempt(fd, path, self.holder)

    def is_held(self, key: str) -> bool:
        """Whether anyone holds ``key``; never creates a lock file (see :meth:`Lease.is_held`)."""
        path = self.path_for(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError as error:
            raise self._unavailable(path, error) from error
        try:
            # Shared, so concurrent probes never see each other as holders.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError as error:
            raise self._unavailable(path, error) from error
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def close(self) -> None:
        """Nothing to free: every ``hold`` owns and closes its own descriptor."""


class _PostgresAttempt(_Attempt):
    def __init__(self, connection: Any, lock_id: int, where: str) -> None:
        self._connection = connection
        self._lock_id = lock_id
        self._where = where

    def try_acquire(self) -> bool:
        import psycopg2

        try:
            with self._connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_id,))
                row = cursor.fetchone()
        except psycopg2.Error as error:
            raise LeaseUnavailable(
                f"The lease connection to PostgreSQL at {self._where} failed while trying the "
                f"lock: {error}. Fix: check that the server is up and reachable."
            ) from error
        return bool(row and row[0])

    def holder_hint(self) -> str:
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(_HOLDER_SQL, _lock_tag(self._lock_id))
                row = cursor.fetchone()
        except Exception:  # noqa: BLE001 - only decorates a timeout message
            return ""
        if row is None:
            return ""
        pid, application_name, client_addr, backend_start = row
        parts = [f"backend pid {pid}"]
        if application_name:
            parts.append(f"application_name={application_name!r}")
        if client_addr:
            parts.append(f"client {client_addr}")
        if backend_start is not None:
            parts.append(f"since {backend_start}")
        return ", ".join(parts)

    def release(self) -> None:
        try:
            with self._connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (self._lock_id,))
                row = cursor.fetchone()
            if not (row and row[0]):
                LOGGER.warning(
                    "Advisory lock %d was not held by the lease session at %s when released. "
                    "Is the lease DSN going through a transaction-mode pooler (PgBouncer)? "
                    "Connect directly or through a session-mode pool.",
                    self._lock_id,
                    self._where,
                )
        except Exception as error:  # noqa: BLE001 - release must not mask the block's outcome
            LOGGER.warning(
                "Lease connection to %s was lost before release (%s): the server freed advisory "
                "lock %d when the session ended, possibly while the block was still running.",
                self._where,
                error,
                self._lock_id,
            )
        self.abandon()

    def abandon(self) -> None:
        try:
            self._connection.close()
        except Exception as error:  # noqa: BLE001 - a close that fails has nothing left to free
            LOGGER.debug("Closing the lease connection to %s failed: %s", self._where, error)


_HELD_SQL = """
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory'
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid = %s::oid AND objid = %s::oid AND objsubid = 1 AND granted
)
"""

_HOLDER_SQL = """
SELECT l.pid, a.application_name, a.client_addr::text, a.backend_start
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = %s::oid AND l.objid = %s::oid AND l.objsubid = 1 AND l.granted
LIMIT 1
"""


def _lock_tag(lock_id: int) -> tuple[int, int]:
    """``(classid, objid)`` of a bigint advisory lock as ``pg_locks`` shows it."""
    unsigned = lock_id & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


class PostgresLease(Lease):
    """Leases as PostgreSQL session-level advisory locks: any number of machines.

    Args:
        dsn: libpq DSN or URI. Must reach PostgreSQL directly or through a session-mode pool.
        connect_timeout_s: Connection timeout in seconds (libpq rounds up to whole seconds).
        holder: Optional description of this process (a run id), shown in the lease
            session's ``application_name`` and in other callers' timeout messages.

    Raises:
        ValueError: ``dsn`` cannot be parsed.
    """

    backend = "postgres"

    def __init__(self, dsn: str, *, connect_timeout_s: float = 5, holder: str = "") -> None:
        import psycopg2.extensions

        try:
            params = psycopg2.extensions.parse_dsn(dsn)
        except psycopg2.Error as error:
            raise ValueError(f"Invalid lease DSN: {error}") from error
        host = params.get("host") or params.get("hostaddr") or "the default socket"
        port = params.get("port") or "5432"
        database = params.get("dbname") or params.get("user") or "the default database"
        # Never the password: this string goes into messages and logs.
        self.where = f"{host}:{port}/{database}"
        self._dsn = dsn
        self._connect_timeout = max(1, math.ceil(connect_timeout_s))
        name = f"{_PG_APPLICATION_NAME} {holder}".strip()
        self._application_name = "".join(c if " " <= c <= "~" else "?" for c in name)[
            :_PG_NAME_LIMIT
        ]
        self._probe: Any = None
        self._probe_lock = threading.Lock()

    def _connect(self) -> Any:
        import psycopg2

        try:
            connection = psycopg2.connect(
                self._dsn,
                connect_timeout=self._connect_timeout,
                application_name=self._application_name,
            )
        except psycopg2.Error as error:
            raise LeaseUnavailable(
                f"Cannot connect to PostgreSQL for leases at {self.where}: "
                f"{str(error).strip()}. Fix: start the server or correct the lease DSN; it must "
                f"reach PostgreSQL directly or a session-mode pool."
            ) from error
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                for name, value in _PG_KEEPALIVES.items():
                    cursor.execute(f"SET {name} = {int(value)}")
                if connection.server_version >= 140000:
                    cursor.execute("SET idle_session_timeout = 0")
        except psycopg2.Error as error:
            connection.close()
            raise LeaseUnavailable(
                f"Cannot set up the lease session at {self.where}: {error}. Fix: check the "
                f"server and the DSN's role."
            ) from error
        return connection

    def _open_attempt(self, key: str) -> _Attempt:
        return _PostgresAttempt(self._connect(), advisory_lock_id(key), self.where)

    def is_held(self, key: str) -> bool:
        """Whether any session holds ``key``'s advisory lock; reads ``pg_locks`` only."""
        import psycopg2

        tag = _lock_tag(advisory_lock_id(check_lease_key(key)))
        with self._probe_lock:
            # One retry on a fresh connection: the cached one may predate a server restart.
            for retry in (False, True):
                if self._probe is None or self._probe.closed:
                    self._probe = self._connect()
                try:
                    with self._probe.cursor() as cursor:
                        cursor.execute(_HELD_SQL, tag)
                        row = cursor.fetchone()
                    return bool(row and row[0])
                except psycopg2.Error as error:
                    self._close_probe()
                    if retry:
                        raise LeaseUnavailable(
                            f"Cannot read pg_locks at {self.where}: {error}. Fix: check that "
                            f"the server is up and the DSN's role can read pg_locks."
                        ) from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _close_probe(self) -> None:
        if self._probe is not None:
            # A broken probe connection has nothing left to free.
            with contextlib.suppress(Exception):
                self._probe.close()
            self._probe = None

    def close(self) -> None:
        """Close the ``is_held`` connection; leases being held stay held until their block ends."""
        with self._probe_lock:
            self._close_probe()
