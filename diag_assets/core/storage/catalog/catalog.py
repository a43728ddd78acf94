"""The DIAGNOSTIC_CAPTURE catalog: one row per capture key, on SQLite or PostgreSQL.

The catalog records what is known about every capture: what was asked (``request_key``, the
warm lookup key, which leaves out the source version), where its artifacts are, their hashes,
its status and how often it was used. The artifacts themselves live in a blob store; the
catalog only points at them.

:class:`CaptureCatalog` is the one implementation of every operation, in SQLAlchemy Core over
an engine; what differs between databases is in
:mod:`diag_assets.core.storage.catalog.dialects`. Open it with:

- :class:`SqliteCatalog` for the embedded profile (a file under ``.diag``; WAL mode, and a
  busy timeout so that concurrent processes wait for each other instead of failing);
- :class:`PostgresCatalog` for production.

Opening a catalog migrates its schema (:meth:`CaptureCatalog.migrate`, an alembic history).

Every write is one transaction: on any error it is rolled back and the catalog is unchanged.

**Writes of a capture are fenced by its attempt.** Each :meth:`~CaptureCatalog.begin_capture`
records a new attempt id (the capture cache makes one per begin); :meth:`complete_capture`
and :meth:`fail_capture` change the row only while it is CAPTURING for that same attempt, in
one conditional update. A writer that lost its lease and was overtaken by another writer
therefore can neither complete the other writer's row with its own hashes nor mark it failed:
:meth:`complete_capture` raises :class:`CaptureFenced` saying who holds the row now.
A database that cannot be reached or used raises :class:`CatalogUnavailable`, whose message
names the backend, where it was looked for and what to do about it.

Timestamps are taken from the Python clock on both backends so that both behave the same.
"""

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import RowMapping

from diag_assets.core.storage.catalog import upgrade
from diag_assets.core.storage.catalog.dialects import (
    WRITE_OPTION,
    CatalogDialect,
    PostgresDialect,
    SqliteDialect,
)
from diag_assets.core.storage.catalog.model import CaptureFenced, CaptureStatus, CatalogEntry
from diag_assets.core.storage.catalog.schema import diag_drift_checks, diagnostic_capture

_CAPTURE = diagnostic_capture.c
_DRIFT = diag_drift_checks.c
# Fields that describe a stored capture; beginning a capture again clears them.
_ARTIFACT_FIELDS = ("artifact_uri", "x_hash", "y_hash", "trial_log_hash", "content_hash", "bytes")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CaptureCatalog:
    """The capture catalog over one database.

    A catalog holds a small pool of connections, so one instance may be shared by the threads
    of a process. Each process opens its own catalog (connections do not survive a fork).

    Args:
        dialect: The database and how to talk to it.
        clock: Returns the current time (timezone-aware); for tests.

    Raises:
        CatalogUnavailable: If the database cannot be reached or its schema migrated.
    """

    def __init__(
        self, dialect: CatalogDialect, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._dialect = dialect
        self._clock = clock or _utc_now
        self.backend = dialect.backend
        self.location = dialect.location
        self._engine: sa.Engine | None = dialect.create_engine()
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Closes the connections; the catalog cannot be used afterwards. Idempotent."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sa.Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        engine = self._engine
        if engine is None:
            raise self._dialect.closed()
        try:
            with engine.connect() as connection:
                connection.execution_options(**{WRITE_OPTION: write})
                with connection.begin():
                    yield connection
        except exc.SQLAlchemyError as error:
            unavailable = self._dialect.unavailable(error)
            if unavailable is not None:
                raise unavailable from error
            raise

    # -- schema ----------------------------------------------------------------------------

    def migrate(self) -> int:
        """Brings the schema to the newest revision of the catalog's migration history.

        A catalog already at the newest revision is only read. Otherwise the pending
        revisions run in one transaction under a cross-process lock, and alembic re-reads the
        version under that lock, so concurrent calls are safe; a catalog written by the
        hand-written schema history before alembic is adopted first (see
        :mod:`diag_assets.core.storage.catalog.upgrade`). A failing revision leaves the
        schema as it was.

        Returns:
            The schema version of the database (3 today): the number of its revision.

        Raises:
            CatalogUnavailable: If the database cannot be reached or used.
        """
        head = upgrade.head_revision(upgrade.MIGRATIONS_PATH)
        with self._transaction(write=False) as connection:
            current = upgrade.current_revision(connection)
        if current != head:
            with self._transaction(write=True) as connection:
                self._dialect.lock_schema(connection)
                current = upgrade.upgrade(connection, upgrade.MIGRATIONS_PATH)
        return upgrade.schema_version(current)

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: str) -> CatalogEntry | None:
        """The entry of capture ``key``, or None if the catalog has none."""
        with self._transaction(write=False) as connection:
            return self._one(connection, key)

    def latest_complete(self, request_key: str) -> CatalogEntry | None:
        """The newest COMPLETE entry for ``request_key``, or None.

        Newest means the latest ``created_at``, then the greatest key on a tie. Entries in
        any other status are ignored.
        """
        query = (
            sa.select(diagnostic_capture)
            .where(_CAPTURE.request_key == request_key, _CAPTURE.status == CaptureStatus.COMPLETE)
            .order_by(_CAPTURE.created_at.desc(), _CAPTURE.key.desc())
            .limit(1)
        )
        with self._transaction(write=False) as connection:
            row = connection.execute(query).first()
        return _entry(row._mapping) if row else None

    def latest(self, request_key: str) -> CatalogEntry | None:
        """The entry for ``request_key`` changed last, in any status, or None.

        What the cache says when nothing complete is left: the capture that failed or went
        stale, and why.
        """
        query = (
            sa.select(diagnostic_capture)
            .where(_CAPTURE.request_key == request_key)
            .order_by(_CAPTURE.updated_at.desc(), _CAPTURE.key.desc())
            .limit(1)
        )
        with self._transaction(write=False) as connection:
            row = connection.execute(query).first()
        return _entry(row._mapping) if row else None

    def entries(
        self, *, cell_ref: str | None = None, status: CaptureStatus | None = None
    ) -> list[CatalogEntry]:
        """The entries matching every filter given, oldest ``created_at`` first."""
        query = sa.select(diagnostic_capture).order_by(_CAPTURE.created_at, _CAPTURE.key)
        if cell_ref is not None:
            query = query.where(_CAPTURE.cell_ref == cell_ref)
        if status is not None:
            query = query.where(_CAPTURE.status == CaptureStatus(status).value)
        with self._transaction(write=False) as connection:
            rows = connection.execute(query).all()
        return [_entry(row._mapping) for row in rows]

    def drift_counts(self, since: datetime | None = None) -> tuple[int, int]:
        """Counts the drift checks recorded at or after ``since`` (all of them if None).

        Args:
            since: A timezone-aware datetime, or None.

        Returns:
            ``(checks, drifted)``: how many checks, and how many of them found drift.

        Raises:
            ValueError: If ``since`` is a naive datetime.
        """
        drifted = sa.func.coalesce(sa.func.sum(sa.case((_DRIFT.drifted, 1), else_=0)), 0)
        query = sa.select(sa.func.count(), drifted).select_from(diag_drift_checks)
        if since is not None:
            query = query.where(_DRIFT.checked_at >= _require_aware(since, "since"))
        with self._transaction(write=False) as connection:
            checks, found = connection.execute(query).one()
        return int(checks), int(found)

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
        attempt_id: str,
    ) -> CatalogEntry:
        """Marks capture ``key`` as being captured by ``run_id`` in attempt ``attempt_id``.

        A new key is inserted as CAPTURING. An existing entry that is CAPTURING, FAILED or
        STALE is reset to CAPTURING for ``run_id`` and ``attempt_id``: its artifact fields and
        status reason are cleared, its ``created_at`` and use history are kept. A COMPLETE
        entry is left unchanged; the caller sees it in the returned entry's status (and in
        its ``attempt_id``, which is not ``attempt_id``).

        Returns:
            The entry after the call.
        """
        now = self._now()
        insert = self._dialect.insert(diagnostic_capture).values(
            key=key,
            request_key=request_key,
            cell_ref=cell_ref,
            status=CaptureStatus.CAPTURING.value,
            mode=mode,
            source_version=source_version,
            created_at=now,
            updated_at=now,
            use_count=0,
            producing_run_id=run_id,
            attempt_id=attempt_id,
        )
        taken = ("request_key", "cell_ref", "status", "mode", "source_version", "updated_at")
        # One upsert, so that two runs beginning the same key at once cannot both insert.
        upsert = insert.on_conflict_do_update(
            index_elements=[_CAPTURE.key],
            set_={
                **{
                    name: insert.excluded[name]
                    for name in (*taken, "producing_run_id", "attempt_id")
                },
                **dict.fromkeys((*_ARTIFACT_FIELDS, "status_reason")),
            },
            where=_CAPTURE.status != CaptureStatus.COMPLETE.value,
        )
        with self._transaction(write=True) as connection:
            connection.execute(upsert)
            entry = self._one(connection, key)
        assert entry is not None  # the upsert either inserted it or found it
        return entry

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
        attempt_id: str,
    ) -> CatalogEntry:
        """Records that capture ``key`` is stored, if ``attempt_id`` still holds its row.

        One conditional update: the row changes only while it is CAPTURING for
        ``attempt_id`` (see :meth:`begin_capture`); otherwise nothing changes.

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
            attempt_id: The attempt that began the row and wrote the capture.

        Returns:
            The COMPLETE entry.

        Raises:
            KeyError: If the catalog has no entry ``key``; nothing is changed.
            CaptureFenced: If the row is not CAPTURING for ``attempt_id`` (another attempt
                began it since, or it is already complete); nothing is changed.
            ValueError: If ``bytes`` is negative.
        """
        if bytes < 0:
            raise ValueError(f"bytes must be >= 0, got {bytes} for capture {key}")
        values: dict[str, Any] = {
            "status": CaptureStatus.COMPLETE.value,
            "artifact_uri": artifact_uri,
            "x_hash": x_hash,
            "y_hash": y_hash,
            "trial_log_hash": trial_log_hash,
            "content_hash": content_hash,
            "bytes": bytes,
            "updated_at": self._now(),
            "status_reason": None,
        }
        if run_id is not None:
            values["producing_run_id"] = run_id
        with self._transaction(write=True) as connection:
            changed = self._update(connection, key, values, *_held_by(attempt_id))
            entry = self._one(connection, key)
        if entry is None:
            raise KeyError(f"no catalog entry {key}: call begin_capture first")
        if changed == 0:
            raise CaptureFenced.of(entry, attempt_id, "complete")
        return entry

    def fail_capture(self, key: str, reason: str, *, attempt_id: str) -> bool:
        """Marks capture ``key`` FAILED with ``reason``, if ``attempt_id`` still holds its row.

        Only a row that is CAPTURING for ``attempt_id`` changes: a writer that lost its lease
        never marks another writer's capture failed, nor a complete one. Use
        :meth:`mark_stale` to retire a complete capture.

        Returns:
            Whether the row was marked FAILED.

        Raises:
            KeyError: If the catalog has no entry ``key``.
        """
        values = {
            "status": CaptureStatus.FAILED.value,
            "status_reason": reason,
            "updated_at": self._now(),
        }
        with self._transaction(write=True) as connection:
            changed = self._update(connection, key, values, *_held_by(attempt_id))
            if changed == 0 and self._one(connection, key) is None:
                raise KeyError(f"no catalog entry {key}")
        return changed > 0

    def mark_stale(self, key: str, reason: str) -> bool:
        """Marks capture ``key`` STALE with ``reason``, whatever its status was.

        Returns:
            False if the catalog has no entry ``key`` (the GC retired it meanwhile): there is
            nothing left to mark, which is what marking it stale was for.
        """
        values = {
            "status": CaptureStatus.STALE.value,
            "status_reason": reason,
            "updated_at": self._now(),
        }
        with self._transaction(write=True) as connection:
            return self._update(connection, key, values) > 0

    def record_use(self, key: str) -> bool:
        """Sets ``last_used_at`` to now and adds one to ``use_count``, atomically.

        Returns:
            False if the catalog has no entry ``key``: the GC retired it since it was looked
            up, so the caller must not serve it.
        """
        # The increment happens in the database, so concurrent users never lose a count.
        values = {"use_count": _CAPTURE.use_count + 1, "last_used_at": self._now()}
        with self._transaction(write=True) as connection:
            return self._update(connection, key, values) > 0

    def delete(self, key: str) -> None:
        """Deletes the entry of capture ``key``; deleting a missing key does nothing."""
        with self._transaction(write=True) as connection:
            connection.execute(sa.delete(diagnostic_capture).where(_CAPTURE.key == key))

    def record_drift_check(self, key: str, *, drifted: bool, cell_ref: str) -> None:
        """Records one drift check of capture ``key`` at the current time."""
        insert = sa.insert(diag_drift_checks).values(
            capture_key=key, cell_ref=cell_ref, drifted=bool(drifted), checked_at=self._now()
        )
        with self._transaction(write=True) as connection:
            connection.execute(insert)

    # -- helpers ---------------------------------------------------------------------------

    def _one(self, connection: sa.Connection, key: str) -> CatalogEntry | None:
        row = connection.execute(sa.select(diagnostic_capture).where(_CAPTURE.key == key)).first()
        return _entry(row._mapping) if row else None

    def _update(
        self,
        connection: sa.Connection,
        key: str,
        values: Mapping[str, Any],
        *conditions: sa.ColumnElement[bool],
    ) -> int:
        """Updates the entry ``key`` if it meets ``conditions``; returns the rows changed."""
        statement = (
            sa.update(diagnostic_capture).where(_CAPTURE.key == key, *conditions).values(values)
        )
        return connection.execute(statement).rowcount

    def _now(self) -> datetime:
        return _require_aware(self._clock(), "clock()").astimezone(UTC)


def _held_by(attempt_id: str) -> tuple[sa.ColumnElement[bool], ...]:
    """The conditions of a row that ``attempt_id`` is still capturing."""
    return (
        _CAPTURE.status == CaptureStatus.CAPTURING.value,
        _CAPTURE.attempt_id == attempt_id,
    )


def _entry(row: RowMapping) -> CatalogEntry:
    return CatalogEntry.model_validate(dict(row))


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

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 30.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        dialect = SqliteDialect(path, busy_timeout_s)
        self.path = dialect.path
        super().__init__(dialect, clock=clock)

    def __repr__(self) -> str:
        return f"SqliteCatalog({self.location!r})"


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

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout_s: float = 5,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(PostgresDialect(dsn, connect_timeout_s), clock=clock)

    def __repr__(self) -> str:
        return f"PostgresCatalog({self.location!r})"
