"""Everything the capture catalog does differently on SQLite and on PostgreSQL.

The catalog's operations are written once, in SQLAlchemy Core, over an engine; a dialect
gives it that engine and the few things no SQL expression hides:

- how a connection is set up: on SQLite WAL mode (readers never wait for the writer) and a
  busy timeout (concurrent writers wait for each other instead of failing), and ``BEGIN
  IMMEDIATE`` for writes; on PostgreSQL, psycopg2 (the driver of the leases and of Dagster's
  instance too) with a connect timeout;
- the upsert of :meth:`~CatalogDialect.insert` (both spell ``ON CONFLICT`` alike but
  SQLAlchemy keeps one construct per dialect);
- the lock that serializes migrations across processes;
- which driver errors mean the database cannot be used (:class:`CatalogUnavailable`), and
  what the message says to do about it.
"""

import math
import os
import re
import sqlite3
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite

from diag_assets.core.storage.catalog.model import CatalogUnavailable

# The execution option a connection carries into its transaction: True for a write.
WRITE_OPTION = "diag_catalog_write"

# Arbitrary but fixed: every process migrating the same PostgreSQL database must use the same
# advisory lock key ("diag" in ASCII).
PG_MIGRATION_LOCK_KEY = 0x64696167


class CatalogDialect(ABC):
    """How the catalog talks to one kind of database.

    Attributes:
        backend: ``"sqlite"`` or ``"postgres"``, as :class:`CatalogUnavailable` names it.
        location: Where the catalog is, without secrets.
    """

    backend: str
    location: str

    @abstractmethod
    def create_engine(self) -> sa.Engine:
        """An engine whose connections are set up for the catalog; connects lazily."""

    @abstractmethod
    def insert(self, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
        """An ``INSERT`` into ``table`` that can take an ``ON CONFLICT`` clause."""

    @abstractmethod
    def lock_schema(self, connection: sa.Connection) -> None:
        """Serializes migrations across processes until the write transaction ends."""

    @abstractmethod
    def unavailable(self, error: BaseException) -> CatalogUnavailable | None:
        """The :class:`CatalogUnavailable` that ``error`` means, or None for other errors."""

    def closed(self) -> CatalogUnavailable:
        """The error of a call on a closed catalog."""
        return CatalogUnavailable(
            self.backend, self.location, "the catalog was closed", "Open a new one."
        )


class SqliteDialect(CatalogDialect):
    """One SQLite file (the embedded profile).

    Args:
        path: The database file; missing parent folders are created with the engine.
        busy_timeout_s: How long a write waits for another connection's write to finish.
    """

    backend = "sqlite"

    def __init__(self, path: str | os.PathLike[str], busy_timeout_s: float) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._busy_timeout_s = busy_timeout_s

    def create_engine(self) -> sa.Engine:
        """An engine on the file, creating its folder; pysqlite transactions are explicit."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self._unavailable(error) from error
        engine = sa.create_engine(
            sa.URL.create("sqlite+pysqlite", database=str(self.path)),
            connect_args={"timeout": self._busy_timeout_s, "check_same_thread": False},
        )
        event.listen(engine, "connect", self._set_up_connection)
        event.listen(engine, "begin", _begin)
        return engine

    def _set_up_connection(self, dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # pysqlite must never open or commit a transaction on its own: every transaction is
        # the explicit BEGIN of _begin, so that DDL is transactional too.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        _enable_wal(dbapi_connection, self._busy_timeout_s)

    def insert(self, table: sa.Table) -> sqlite.Insert:
        """SQLite's ``INSERT`` with ``ON CONFLICT``."""
        return sqlite.insert(table)

    def lock_schema(self, connection: sa.Connection) -> None:
        """Nothing: the write transaction's ``BEGIN IMMEDIATE`` holds the database's lock."""

    def unavailable(self, error: BaseException) -> CatalogUnavailable | None:
        """Locked, unreadable, read-only, full, or not a database at all."""
        # Integrity and programming errors are the caller's bugs, not an unusable database.
        if isinstance(error, exc.DBAPIError):
            cause: BaseException = error.orig or error
            if isinstance(error, exc.OperationalError) or type(cause) is sqlite3.DatabaseError:
                return self._unavailable(cause)
        return None

    def _unavailable(self, error: BaseException) -> CatalogUnavailable:
        return CatalogUnavailable(
            self.backend,
            self.location,
            str(error) or type(error).__name__,
            f"Fix: make sure {self.path.parent} is a writable directory (not a file), that "
            f"{self.path.name} is an SQLite database, and that no other process holds a write "
            "lock on it for long.",
        )


def _begin(connection: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front: a deferred transaction that later upgrades to
    # a writer can fail with SQLITE_BUSY without waiting.
    write = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


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


class PostgresDialect(CatalogDialect):
    """A PostgreSQL database (production), through psycopg2.

    Args:
        dsn: A libpq connection string or URI.
        connect_timeout_s: How long to wait for the server when connecting.

    Raises:
        CatalogUnavailable: If ``dsn`` is not a valid libpq connection string.
    """

    backend = "postgres"

    def __init__(self, dsn: str, connect_timeout_s: float) -> None:
        self._dsn = dsn
        self._connect_timeout = max(1, math.ceil(connect_timeout_s))
        self.location, self._host_port = _describe_dsn(dsn)
        try:
            _psycopg2().extensions.parse_dsn(dsn)
        except _psycopg2().ProgrammingError as error:
            raise CatalogUnavailable(
                self.backend,
                self.location,
                f"the DSN is not a valid libpq connection string ({error})",
                "Fix: set DIAG_PG_DSN to e.g. 'host=127.0.0.1 port=5432 dbname=diag user=diag'.",
            ) from error

    def create_engine(self) -> sa.Engine:
        """An engine whose connections psycopg2 opens from the DSN as given.

        A connection lost between calls is dropped and the next call opens a new one; the
        call that finds it lost fails (it is not retried, since a write may or may not have
        been committed).
        """
        psycopg2 = _psycopg2()
        return sa.create_engine(
            "postgresql+psycopg2://",
            creator=lambda: psycopg2.connect(self._dsn, connect_timeout=self._connect_timeout),
        )

    def insert(self, table: sa.Table) -> postgresql.Insert:
        """PostgreSQL's ``INSERT`` with ``ON CONFLICT``."""
        return postgresql.insert(table)

    def lock_schema(self, connection: sa.Connection) -> None:
        """Takes the migration advisory lock, held until the transaction ends."""
        # Taken before alembic reads the version, so a second process reads it only once the
        # first one's revisions are committed.
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK_KEY}
        )

    def unavailable(self, error: BaseException) -> CatalogUnavailable | None:
        """The server is unreachable, refused us, or dropped the connection."""
        if isinstance(error, exc.OperationalError | exc.InterfaceError):
            cause: BaseException = error.orig or error
            return CatalogUnavailable(
                self.backend,
                self.location,
                " ".join(str(cause).split()) or type(cause).__name__,
                f"Fix: check that PostgreSQL is running at {self._host_port} and DIAG_PG_DSN "
                "is right.",
            )
        return None


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
    try:
        parts = _psycopg2().extensions.parse_dsn(dsn)
    except Exception:  # noqa: BLE001 - an unparsable DSN is reported by the caller; hide secrets
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
