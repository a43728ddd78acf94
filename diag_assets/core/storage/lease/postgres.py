"""Leases as PostgreSQL session-level advisory locks: the backend for any number of machines.

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
since a lease session is idle by design. The client side of the connection has keepalives
and a TCP user timeout too, so a query on a lease session whose server vanished fails
within about a minute instead of hanging. ``is_held`` reads ``pg_locks`` on a separate
connection (kept open until :meth:`Lease.close`) and never touches the lock.

**A lease ends with its session**, also while the holder still works: a server restart,
``pg_terminate_backend`` or a network partition takes the lock away, and another process can
take it. ``grant.ensure_held()`` asks the lease's own session whether ``pg_locks`` still
shows the lock granted to it (``pg_backend_pid()``); a query that fails, a closed connection
or a missing lock raise ``LeaseLost``, so the old holder stops before it publishes.

**Session-level advisory locks need a session-pinned connection.** PgBouncer (or any
pooler) in *transaction* pooling mode breaks them: the lock can be taken on one server
connection and "released" on another, or stay held by a pooled server connection after
the client has gone, blocking the key until the pooler recycles it. Point the lease DSN at
PostgreSQL directly or at a *session*-mode pool. A release that the server says was not
ours is logged as a warning naming this cause.
"""

import contextlib
import hashlib
import logging
import math
import re
import threading
from typing import Any

from diag_assets.core.errors import DiagInputError
from diag_assets.core.storage.lease.base import (
    Lease,
    LeaseAttempt,
    LeaseUnavailable,
    check_lease_key,
)

LOGGER = logging.getLogger(__name__)

# Server-side keepalives for lease sessions: without them a holder whose machine disappears
# (power loss, network partition) keeps its lock until the kernel gives up, hours later.
_PG_KEEPALIVES = {
    "tcp_keepalives_idle": 30,
    "tcp_keepalives_interval": 10,
    "tcp_keepalives_count": 3,
}
# Client-side: a query on a session whose server vanished fails within about a minute, so a
# holder proving its lease (ensure_held) learns it lost it instead of hanging for hours.
_PG_CLIENT_KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}
_PG_APPLICATION_NAME = "diag-lease"
# The setting that carries the lease DSN in the packaged profiles, for error messages.
LEASE_DSN_SETTING = "DIAG_PG_DSN"
_PG_NAME_LIMIT = 63  # NAMEDATALEN - 1: the server truncates application_name there


def advisory_lock_id(key: str) -> int:
    """The PostgreSQL advisory lock id of ``key``.

    Args:
        key: A lease key.

    Returns:
        The first 8 bytes of ``sha256(key.encode("utf-8"))`` as a big-endian signed int64.
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _PostgresAttempt(LeaseAttempt):
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

    def why_lost(self) -> str | None:
        import psycopg2

        if self._connection.closed:
            return f"its lease session to PostgreSQL at {self._where} is closed"
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(_OWN_SQL, _lock_tag(self._lock_id))
                row = cursor.fetchone()
        except psycopg2.Error as error:
            detail = str(error).strip().splitlines()[0] if str(error).strip() else "no detail"
            return (
                f"its lease session to PostgreSQL at {self._where} is gone ({detail}); the "
                f"server freed advisory lock {self._lock_id} when the session ended"
            )
        if not (row and row[0]):
            return (
                f"its lease session at {self._where} no longer holds advisory lock "
                f"{self._lock_id} (is the lease DSN going through a transaction-mode pooler?)"
            )
        return None

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

# Held by *this* session: the lease's own connection asks about itself.
_OWN_SQL = """
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND pid = pg_backend_pid()
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


def _without_dsn_text(message: str) -> str:
    """The parse error of libpq without the parts of the DSN it quotes (maybe a password)."""
    text = message.strip().removeprefix("invalid dsn:").strip()
    return re.sub(r'"([^"]*)"', lambda m: m[0] if m[1] in {"=", "]"} else '"..."', text)


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
        DiagInputError: ``dsn`` cannot be parsed (a ``ValueError``); the message names the
            setting and never shows the DSN, which may hold a password.
    """

    backend = "postgres"

    def __init__(self, dsn: str, *, connect_timeout_s: float = 5, holder: str = "") -> None:
        import psycopg2.extensions

        try:
            params = psycopg2.extensions.parse_dsn(dsn)
        except psycopg2.Error as error:
            raise DiagInputError(
                f"Invalid lease DSN: it is not a libpq connection string or URI "
                f"({_without_dsn_text(str(error))}; the DSN is not shown, it may hold a "
                f"password).",
                f"set {LEASE_DSN_SETTING} (the PostgreSQL database of the catalog and the "
                f"leases; the lease resource's dsn when it is configured by hand) to a DSN such "
                f"as 'host=127.0.0.1 port=5432 dbname=diag user=diag' or a URI such as "
                f"'postgresql://diag@127.0.0.1:5432/diag'.",
            ) from None
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
                **_PG_CLIENT_KEEPALIVES,
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

    def _open_attempt(self, key: str) -> LeaseAttempt:
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
