"""The DIAGNOSTIC_CAPTURE catalog: one row per capture key, on SQLite or PostgreSQL.

The catalog records what is known about every capture: what was asked (``request_key``, the
warm lookup key, which leaves out the source version), where its artifacts are, their hashes,
its status and how often it was used. The artifacts themselves live in a blob store; the
catalog only points at them.

Two backends share one schema and one implementation of every operation:

- :class:`SqliteCatalog` for the embedded profile (a file under ``.diag``; WAL mode, and a
  busy timeout so that concurrent processes wait for each other instead of failing);
- :class:`PostgresCatalog` for production.

The schema history is :data:`MIGRATIONS`, one ordered list. :meth:`CaptureCatalog.migrate`
applies what is missing, one transaction per migration, under a lock that makes concurrent
``migrate()`` calls from several processes safe, and records each version in
``diag_schema_migrations``.

Every write is one transaction: on any error it is rolled back and the catalog is unchanged.
A database that cannot be reached or used raises :class:`CatalogUnavailable`, whose message
names the backend, where it was looked for and what to do about it.

Timestamps are timezone-aware UTC datetimes in Python, ISO-8601 text in SQLite (one fixed
format, so text order is time order) and ``TIMESTAMPTZ`` in PostgreSQL. They are taken from
the Python clock on both backends so that both behave the same.
"""

import math
import os
import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

from pydantic import BaseModel, ConfigDict


class CaptureStatus(StrEnum):
    """Where a capture is in its life."""

    CAPTURING = "capturing"
    COMPLETE = "complete"
    FAILED = "failed"
    STALE = "stale"


class CatalogEntry(BaseModel):
    """One row of the catalog."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    request_key: str
    cell_ref: str
    status: CaptureStatus
    mode: str
    source_version: str
    artifact_uri: str | None
    x_hash: str | None
    y_hash: str | None
    trial_log_hash: str | None
    content_hash: str | None
    bytes: int | None
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
    use_count: int
    producing_run_id: str | None
    status_reason: str | None


class CatalogUnavailable(RuntimeError):
    """The catalog's database cannot be reached or used.

    Attributes:
        backend: ``"sqlite"`` or ``"postgres"``.
        location: The SQLite path, or the PostgreSQL DSN without its password.
    """

    def __init__(self, backend: str, location: str, problem: str, fix: str) -> None:
        self.backend = backend
        self.location = location
        super().__init__(
            f"{backend} capture catalog at {location} is unavailable: {problem}. {fix}"
        )


class Migration(NamedTuple):
    """One step of the schema history; each SQL field is a sequence of single statements."""

    version: int
    description: str
    sqlite_sql: tuple[str, ...]
    postgres_sql: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "diagnostic_capture: one row per capture key",
        (
            """
            CREATE TABLE diagnostic_capture (
                key TEXT NOT NULL PRIMARY KEY,
                request_key TEXT NOT NULL,
                cell_ref TEXT NOT NULL,
                status TEXT NOT NULL
                    CHECK (status IN ('capturing', 'complete', 'failed', 'stale')),
                mode TEXT NOT NULL,
                source_version TEXT NOT NULL,
                artifact_uri TEXT,
                x_hash TEXT,
                y_hash TEXT,
                trial_log_hash TEXT,
                content_hash TEXT,
                bytes INTEGER,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                last_used_at TEXT,
                use_count INTEGER NOT NULL DEFAULT 0,
                producing_run_id TEXT,
                status_reason TEXT
            )
            """,
            "CREATE INDEX diagnostic_capture_request_idx"
            " ON diagnostic_capture (request_key, status, created_at)",
            "CREATE INDEX diagnostic_capture_cell_idx ON diagnostic_capture (cell_ref)",
        ),
        (
            """
            CREATE TABLE diagnostic_capture (
                key TEXT NOT NULL PRIMARY KEY,
                request_key TEXT NOT NULL,
                cell_ref TEXT NOT NULL,
                status TEXT NOT NULL
                    CHECK (status IN ('capturing', 'complete', 'failed', 'stale')),
                mode TEXT NOT NULL,
                source_version TEXT NOT NULL,
                artifact_uri TEXT,
                x_hash TEXT,
                y_hash TEXT,
                trial_log_hash TEXT,
                content_hash TEXT,
                bytes BIGINT,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                last_used_at TIMESTAMPTZ,
                use_count BIGINT NOT NULL DEFAULT 0,
                producing_run_id TEXT,
                status_reason TEXT
            )
            """,
            "CREATE INDEX diagnostic_capture_request_idx"
            " ON diagnostic_capture (request_key, status, created_at)",
            "CREATE INDEX diagnostic_capture_cell_idx ON diagnostic_capture (cell_ref)",
        ),
    ),
    Migration(
        2,
        "diag_drift_checks: one row per drift check of a capture",
        (
            # No foreign key to diagnostic_capture: the drift history outlives a capture that
            # garbage collection deletes.
            """
            CREATE TABLE diag_drift_checks (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                capture_key TEXT NOT NULL,
                cell_ref TEXT NOT NULL,
                drifted INTEGER NOT NULL CHECK (drifted IN (0, 1)),
                checked_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX diag_drift_checks_checked_at_idx ON diag_drift_checks (checked_at)",
        ),
        (
            """
            CREATE TABLE diag_drift_checks (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                capture_key TEXT NOT NULL,
                cell_ref TEXT NOT NULL,
                drifted BOOLEAN NOT NULL,
                checked_at TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX diag_drift_checks_checked_at_idx ON diag_drift_checks (checked_at)",
        ),
    ),
)

_COLUMNS = tuple(CatalogEntry.model_fields)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM diagnostic_capture"
_TIME_COLUMNS = frozenset({"created_at", "updated_at", "last_used_at"})

# Arbitrary but fixed: every process migrating the same PostgreSQL database must use the same
# advisory lock key ("diag" in ASCII).
PG_MIGRATION_LOCK_KEY = 0x64696167


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Tx:
    """The statements of one open transaction; SQL is written with ``?`` placeholders."""

    def __init__(self, cursor: Any, *, pyformat: bool) -> None:
        self._cursor = cursor
        self._pyformat = pyformat

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Executes one statement; returns the number of rows it changed."""
        # psycopg2 uses %s placeholders; none of the catalog's SQL contains a literal ? or %.
        self._cursor.execute(sql.replace("?", "%s") if self._pyformat else sql, tuple(params))
        return self._cursor.rowcount

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Executes one query; returns all its rows."""
        self.run(sql, params)
        return list(self._cursor.fetchall())


class CaptureCatalog(ABC):
    """The capture catalog; every operation is written once, for both backends.

    A catalog holds one connection guarded by a lock, so one instance may be shared by the
    threads of a process. Each process opens its own catalog (connections do not survive a
    fork).
    """

    backend: str

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or _utc_now

    # -- backend hooks ---------------------------------------------------------------------

    @abstractmethod
    def _transaction(self, *, write: bool) -> AbstractContextManager[_Tx]:
        """One transaction: committed when the block ends, rolled back if it raises."""

    @abstractmethod
    def _migration_sql(self, migration: Migration) -> tuple[str, ...]:
        """The backend's statements of ``migration``."""

    @abstractmethod
    def _migrations_table_sql(self) -> str:
        """``CREATE TABLE IF NOT EXISTS diag_schema_migrations`` in the backend's types."""

    @abstractmethod
    def _migrations_table_exists(self, tx: _Tx) -> bool:
        """Whether ``diag_schema_migrations`` exists, without failing the transaction."""

    @abstractmethod
    def _lock_schema(self, tx: _Tx) -> None:
        """Serializes migrations across processes until ``tx`` ends."""

    @abstractmethod
    def _to_db_time(self, moment: datetime) -> Any:
        """A UTC datetime as the backend stores it."""

    @abstractmethod
    def _from_db_time(self, value: Any) -> datetime:
        """A stored timestamp as a timezone-aware UTC datetime."""

    @abstractmethod
    def close(self) -> None:
        """Closes the connection; the catalog cannot be used afterwards. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- schema ----------------------------------------------------------------------------

    def migrate(self) -> int:
        """Applies the pending migrations of :data:`MIGRATIONS` in order.

        Each migration runs in its own transaction under a cross-process lock, and re-checks
        under that lock whether another process applied it first, so concurrent calls are
        safe. Calling it on an up-to-date database changes nothing.

        Returns:
            The schema version of the database: the highest version recorded in
            ``diag_schema_migrations``.

        Raises:
            CatalogUnavailable: If the database cannot be reached or used.
        """
        known = {migration.version for migration in MIGRATIONS}
        if not known <= self._applied_versions():
            for migration in sorted(MIGRATIONS, key=lambda m: m.version):
                self._apply(migration)
        with self._transaction(write=False) as tx:
            (version,) = tx.rows("SELECT MAX(version) FROM diag_schema_migrations")[0]
        return int(version or 0)

    def _applied_versions(self) -> set[int]:
        with self._transaction(write=False) as tx:
            if not self._migrations_table_exists(tx):
                return set()
            return {int(v) for (v,) in tx.rows("SELECT version FROM diag_schema_migrations")}

    def _apply(self, migration: Migration) -> None:
        with self._transaction(write=True) as tx:
            self._lock_schema(tx)
            tx.run(self._migrations_table_sql())
            done = tx.rows(
                "SELECT 1 FROM diag_schema_migrations WHERE version = ?", (migration.version,)
            )
            if done:
                return
            for statement in self._migration_sql(migration):
                tx.run(statement)
            tx.run(
                "INSERT INTO diag_schema_migrations (version, applied_at, description)"
                " VALUES (?, ?, ?)",
                (migration.version, self._to_db_time(self._now()), migration.description),
            )

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: str) -> CatalogEntry | None:
        """The entry of capture ``key``, or None if the catalog has none."""
        with self._transaction(write=False) as tx:
            rows = tx.rows(f"{_SELECT} WHERE key = ?", (key,))
        return self._entry(rows[0]) if rows else None

    def latest_complete(self, request_key: str) -> CatalogEntry | None:
        """The newest COMPLETE entry for ``request_key``, or None.

        Newest means the latest ``created_at``, then the greatest key on a tie. Entries in
        any other status are ignored.
        """
        with self._transaction(write=False) as tx:
            rows = tx.rows(
                f"{_SELECT} WHERE request_key = ? AND status = ?"
                " ORDER BY created_at DESC, key DESC LIMIT 1",
                (request_key, CaptureStatus.COMPLETE.value),
            )
        return self._entry(rows[0]) if rows else None

    def entries(
        self, *, cell_ref: str | None = None, status: CaptureStatus | None = None
    ) -> list[CatalogEntry]:
        """The entries matching every filter given, oldest ``created_at`` first."""
        conditions: list[str] = []
        params: list[str] = []
        if cell_ref is not None:
            conditions.append("cell_ref = ?")
            params.append(cell_ref)
        if status is not None:
            conditions.append("status = ?")
            params.append(CaptureStatus(status).value)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._transaction(write=False) as tx:
            rows = tx.rows(f"{_SELECT}{where} ORDER BY created_at, key", params)
        return [self._entry(row) for row in rows]

    def drift_counts(self, since: datetime | None = None) -> tuple[int, int]:
        """Counts the drift checks recorded at or after ``since`` (all of them if None).

        Args:
            since: A timezone-aware datetime, or None.

        Returns:
            ``(checks, drifted)``: how many checks, and how many of them found drift.

        Raises:
            ValueError: If ``since`` is a naive datetime.
        """
        sql = (
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN drifted THEN 1 ELSE 0 END), 0)"
            " FROM diag_drift_checks"
        )
        params: tuple[Any, ...] = ()
        if since is not None:
            sql += " WHERE checked_at >= ?"
            params = (self._to_db_time(_require_aware(since, "since")),)
        with self._transaction(write=False) as tx:
            checks, drifted = tx.rows(sql, params)[0]
        return int(checks), int(drifted)

    # -- writes ----------------------------------------------------------------------------

    def begin_capture(
        self,
        key: str,
        *,
        request_key: str,
        cell_ref: str,
        mode: str,
        source_version: str,
        run_id: str | None,
    ) -> CatalogEntry:
        """Marks capture ``key`` as being captured by ``run_id``.

        A new key is inserted as CAPTURING. An existing entry that is CAPTURING, FAILED or
        STALE is reset to CAPTURING for ``run_id``: its artifact fields and status reason are
        cleared, its ``created_at`` and use history are kept. A COMPLETE entry is left
        unchanged; the caller sees it in the returned entry's status.

        Returns:
            The entry after the call.
        """
        now = self._to_db_time(self._now())
        with self._transaction(write=True) as tx:
            # One upsert, so that two runs beginning the same key at once cannot both insert.
            tx.run(
                """
                INSERT INTO diagnostic_capture (
                    key, request_key, cell_ref, status, mode, source_version,
                    created_at, updated_at, use_count, producing_run_id
                ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)
                ON CONFLICT (key) DO UPDATE SET
                    request_key = excluded.request_key,
                    cell_ref = excluded.cell_ref,
                    status = excluded.status,
                    mode = excluded.mode,
                    source_version = excluded.source_version,
                    artifact_uri = NULL,
                    x_hash = NULL,
                    y_hash = NULL,
                    trial_log_hash = NULL,
                    content_hash = NULL,
                    bytes = NULL,
                    updated_at = excluded.updated_at,
                    producing_run_id = excluded.producing_run_id,
                    status_reason = NULL
                WHERE diagnostic_capture.status <> ?
                """,
                (
                    key,
                    request_key,
                    cell_ref,
                    CaptureStatus.CAPTURING.value,
                    mode,
                    source_version,
                    now,
                    now,
                    run_id,
                    CaptureStatus.COMPLETE.value,
                ),
            )
            rows = tx.rows(f"{_SELECT} WHERE key = ?", (key,))
        return self._entry(rows[0])

    def complete_capture(
        self,
        key: str,
        *,
        artifact_uri: str,
        x_hash: str,
        y_hash: str,
        trial_log_hash: str | None,
        content_hash: str,
        bytes: int,
        run_id: str | None,
    ) -> CatalogEntry:
        """Records that capture ``key`` is stored, whatever its status was.

        Args:
            key: The capture key; its entry must exist (see :meth:`begin_capture`).
            artifact_uri: Where the capture's files are.
            x_hash: Canonical hash of X.
            y_hash: Canonical hash of y.
            trial_log_hash: Hash of the trial log (``None``: dataset_only, no trials).
            content_hash: The capture's content hash (its data version).
            bytes: Total size of the stored files.
            run_id: The run that produced it; None keeps the run recorded by
                :meth:`begin_capture`.

        Returns:
            The COMPLETE entry.

        Raises:
            KeyError: If the catalog has no entry ``key``; nothing is changed.
            ValueError: If ``bytes`` is negative.
        """
        if bytes < 0:
            raise ValueError(f"bytes must be >= 0, got {bytes} for capture {key}")
        with self._transaction(write=True) as tx:
            changed = tx.run(
                """
                UPDATE diagnostic_capture SET
                    status = ?, artifact_uri = ?, x_hash = ?, y_hash = ?,
                    trial_log_hash = ?, content_hash = ?, bytes = ?, updated_at = ?,
                    producing_run_id = COALESCE(?, producing_run_id), status_reason = NULL
                WHERE key = ?
                """,
                (
                    CaptureStatus.COMPLETE.value,
                    artifact_uri,
                    x_hash,
                    y_hash,
                    trial_log_hash,
                    content_hash,
                    bytes,
                    self._to_db_time(self._now()),
                    run_id,
                    key,
                ),
            )
            if changed == 0:
                raise KeyError(f"no catalog entry {key}: call begin_capture first")
            rows = tx.rows(f"{_SELECT} WHERE key = ?", (key,))
        return self._entry(rows[0])

    def fail_capture(self, key: str, reason: str) -> None:
        """Marks capture ``key`` FAILED with ``reason``.

        A COMPLETE entry is left as it is: another run may have completed the same key while
        this one was failing. Use :meth:`mark_stale` to retire a complete capture.

        Raises:
            KeyError: If the catalog has no entry ``key``.
        """
        with self._transaction(write=True) as tx:
            changed = tx.run(
                "UPDATE diagnostic_capture SET status = ?, status_reason = ?, updated_at = ?"
                " WHERE key = ? AND status <> ?",
                (
                    CaptureStatus.FAILED.value,
                    reason,
                    self._to_db_time(self._now()),
                    key,
                    CaptureStatus.COMPLETE.value,
                ),
            )
            if changed == 0 and not tx.rows(
                "SELECT 1 FROM diagnostic_capture WHERE key = ?", (key,)
            ):
                raise KeyError(f"no catalog entry {key}")

    def mark_stale(self, key: str, reason: str) -> None:
        """Marks capture ``key`` STALE with ``reason``, whatever its status was.

        Raises:
            KeyError: If the catalog has no entry ``key``.
        """
        self._update_one(
            key,
            "status = ?, status_reason = ?, updated_at = ?",
            (CaptureStatus.STALE.value, reason, self._to_db_time(self._now())),
        )

    def record_use(self, key: str) -> None:
        """Sets ``last_used_at`` to now and adds one to ``use_count``, atomically.

        Raises:
            KeyError: If the catalog has no entry ``key``.
        """
        # The increment happens in the database, so concurrent users never lose a count.
        self._update_one(
            key,
            "use_count = use_count + 1, last_used_at = ?",
            (self._to_db_time(self._now()),),
        )

    def delete(self, key: str) -> None:
        """Deletes the entry of capture ``key``; deleting a missing key does nothing."""
        with self._transaction(write=True) as tx:
            tx.run("DELETE FROM diagnostic_capture WHERE key = ?", (key,))

    def record_drift_check(self, key: str, *, drifted: bool, cell_ref: str) -> None:
        """Records one drift check of capture ``key`` at the current time."""
        with self._transaction(write=True) as tx:
            tx.run(
                "INSERT INTO diag_drift_checks (capture_key, cell_ref, drifted, checked_at)"
                " VALUES (?, ?, ?, ?)",
                (key, cell_ref, bool(drifted), self._to_db_time(self._now())),
            )

    # -- helpers ---------------------------------------------------------------------------

    def _update_one(self, key: str, assignments: str, params: tuple[Any, ...]) -> None:
        with self._transaction(write=True) as tx:
            changed = tx.run(
                f"UPDATE diagnostic_capture SET {assignments} WHERE key = ?", (*params, key)
            )
            if changed == 0:
                raise KeyError(f"no catalog entry {key}")

    def _now(self) -> datetime:
        return _require_aware(self._clock(), "clock()").astimezone(UTC)

    def _entry(self, row: Sequence[Any]) -> CatalogEntry:
        values = dict(zip(_COLUMNS, row, strict=True))
        for column in _TIME_COLUMNS:
            if values[column] is not None:
                values[column] = self._from_db_time(values[column])
        return CatalogEntry.model_validate(values)


def _require_aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got naive {moment}")
    return moment


class SqliteCatalog(CaptureCatalog):
    """The catalog in one SQLite file (the embedded profile).

    Args:
        path: The database file; missing parent folders are created.
        busy_timeout_s: How long a write waits for another process's write to finish before
            :class:`CatalogUnavailable` is raised.
        clock: Returns the current time (timezone-aware); for tests.

    Raises:
        CatalogUnavailable: If the file cannot be created, opened or migrated.
    """

    backend = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 30.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.path = Path(path)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: the module never opens transactions on its own; every
            # transaction is an explicit BEGIN ... COMMIT below.
            connection = sqlite3.connect(
                self.path,
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as error:
            raise self._unavailable(error) from error
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            _enable_wal(connection, busy_timeout_s)
        except sqlite3.Error as error:
            connection.close()
            raise self._unavailable(error) from error
        self._connection = connection
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"SqliteCatalog({str(self.path)!r})"

    def close(self) -> None:
        """Closes the connection; the catalog cannot be used afterwards. Idempotent."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[_Tx]:
        with self._lock:
            connection = self._connection
            if connection is None:
                raise CatalogUnavailable(
                    self.backend, str(self.path), "the catalog was closed", "Open a new one."
                )
            try:
                # IMMEDIATE takes the write lock up front: a deferred transaction that later
                # upgrades to a writer can fail with SQLITE_BUSY without waiting.
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield _Tx(connection.cursor(), pyformat=False)
                connection.execute("COMMIT")
            except BaseException as error:
                if connection.in_transaction:
                    with suppress(sqlite3.Error):
                        connection.rollback()
                if _sqlite_unavailable(error):
                    raise self._unavailable(error) from error
                raise

    def _unavailable(self, error: BaseException) -> CatalogUnavailable:
        return CatalogUnavailable(
            self.backend,
            str(self.path),
            str(error) or type(error).__name__,
            f"Fix: make sure {self.path.parent} is a writable directory (not a file), that "
            f"{self.path.name} is an SQLite database, and that no other process holds a write "
            "lock on it for long.",
        )

    def _migration_sql(self, migration: Migration) -> tuple[str, ...]:
        return migration.sqlite_sql

    def _migrations_table_sql(self) -> str:
        return (
            "CREATE TABLE IF NOT EXISTS diag_schema_migrations ("
            "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL, description TEXT NOT NULL)"
        )

    def _migrations_table_exists(self, tx: _Tx) -> bool:
        return bool(
            tx.rows(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                ("diag_schema_migrations",),
            )
        )

    def _lock_schema(self, tx: _Tx) -> None:
        # BEGIN IMMEDIATE already holds the database's single write lock.
        return None

    def _to_db_time(self, moment: datetime) -> str:
        return moment.astimezone(UTC).isoformat(timespec="microseconds")

    def _from_db_time(self, value: Any) -> datetime:
        return datetime.fromisoformat(value).astimezone(UTC)


def _enable_wal(connection: sqlite3.Connection, timeout_s: float) -> None:
    # Switching to WAL needs an exclusive lock, and SQLite answers "database is locked" at
    # once instead of calling the busy handler, so processes opening a new database together
    # retry here until the busy timeout.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _sqlite_unavailable(error: BaseException) -> bool:
    # OperationalError: locked, unreadable, read-only, disk full. A bare DatabaseError is
    # "file is not a database". Integrity and programming errors are the caller's bugs.
    return isinstance(error, sqlite3.OperationalError) or type(error) is sqlite3.DatabaseError


class PostgresCatalog(CaptureCatalog):
    """The catalog in a PostgreSQL database (production).

    A connection lost between calls is reopened by the next call; the call that finds it
    lost raises :class:`CatalogUnavailable` (it is not retried, since a write may or may not
    have been committed).

    Args:
        dsn: A libpq connection string or URI.
        connect_timeout_s: How long to wait for the server when connecting.
        clock: Returns the current time (timezone-aware); for tests.

    Raises:
        CatalogUnavailable: If the server cannot be reached or the schema cannot be migrated.
    """

    backend = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout_s: float = 5,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self._dsn = dsn
        self._connect_timeout = max(1, math.ceil(connect_timeout_s))
        self.location, self._host_port = _describe_dsn(dsn)
        self._lock = threading.Lock()
        self._connection: Any = None
        self._closed = False
        with self._lock:
            self._connect()
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresCatalog({self.location!r})"

    def close(self) -> None:
        """Closes the connection; the catalog cannot be used afterwards. Idempotent."""
        with self._lock:
            self._closed = True
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _connect(self) -> Any:
        psycopg2 = _psycopg2()

        try:
            connection = psycopg2.connect(self._dsn, connect_timeout=self._connect_timeout)
        except psycopg2.ProgrammingError as error:
            raise CatalogUnavailable(
                self.backend,
                self.location,
                f"the DSN is not a valid libpq connection string ({error})",
                "Fix: set DIAG_PG_DSN to e.g. 'host=127.0.0.1 port=5432 dbname=diag user=diag'.",
            ) from error
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
            raise self._unavailable(error) from error
        connection.autocommit = False
        self._connection = connection
        return connection

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[_Tx]:
        psycopg2 = _psycopg2()

        with self._lock:
            if self._closed:
                raise CatalogUnavailable(
                    self.backend, self.location, "the catalog was closed", "Open a new one."
                )
            connection = self._connection
            if connection is None or connection.closed:
                connection = self._connect()
            try:
                with connection.cursor() as cursor:
                    yield _Tx(cursor, pyformat=True)
                connection.commit()
            except BaseException as error:
                self._discard_transaction(connection)
                if isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError):
                    raise self._unavailable(error) from error
                raise

    def _discard_transaction(self, connection: Any) -> None:
        psycopg2 = _psycopg2()

        if not connection.closed:
            try:
                connection.rollback()
                return
            except psycopg2.Error:
                connection.close()
        # A broken connection is dropped; the next call opens a new one.
        self._connection = None

    def _unavailable(self, error: BaseException) -> CatalogUnavailable:
        problem = " ".join(str(error).split()) or type(error).__name__
        return CatalogUnavailable(
            self.backend,
            self.location,
            problem,
            f"Fix: check that PostgreSQL is running at {self._host_port} and DIAG_PG_DSN is right.",
        )

    def _migration_sql(self, migration: Migration) -> tuple[str, ...]:
        return migration.postgres_sql

    def _migrations_table_sql(self) -> str:
        return (
            "CREATE TABLE IF NOT EXISTS diag_schema_migrations ("
            "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL,"
            " description TEXT NOT NULL)"
        )

    def _migrations_table_exists(self, tx: _Tx) -> bool:
        (exists,) = tx.rows("SELECT to_regclass('diag_schema_migrations') IS NOT NULL")[0]
        return bool(exists)

    def _lock_schema(self, tx: _Tx) -> None:
        # Held until the transaction ends; concurrent CREATE TABLE IF NOT EXISTS would
        # otherwise race on the system catalogs.
        tx.run("SELECT pg_advisory_xact_lock(?)", (PG_MIGRATION_LOCK_KEY,))

    def _to_db_time(self, moment: datetime) -> datetime:
        return moment.astimezone(UTC)

    def _from_db_time(self, value: Any) -> datetime:
        return value.astimezone(UTC)


def _psycopg2() -> Any:
    # Imported on first use so that the SQLite profile does not need psycopg2 installed.
    try:
        import psycopg2
        import psycopg2.extensions
    except ImportError as error:
        raise ImportError(
            "PostgresCatalog needs psycopg2. Fix: pip install psycopg2-binary."
        ) from error
    return psycopg2


def _describe_dsn(dsn: str) -> tuple[str, str]:
    """A DSN without secrets, and the ``host:port`` it points at (libpq defaults filled in)."""
    parse_dsn = _psycopg2().extensions.parse_dsn

    try:
        parts = parse_dsn(dsn)
    except Exception:  # noqa: BLE001 - an unparsable DSN is reported by connect(); hide secrets
        redacted = re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)
        redacted = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", redacted)
        return redacted, "the host and port it names"
    host = parts.get("host") or parts.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
    port = parts.get("port") or os.environ.get("PGPORT") or "5432"
    shown = {"host": host, "port": port}
    for name in ("dbname", "user"):
        if parts.get(name):
            shown[name] = parts[name]
    return " ".join(f"{name}={value}" for name, value in shown.items()), f"{host}:{port}"
