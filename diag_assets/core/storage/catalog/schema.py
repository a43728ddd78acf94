"""The catalog's tables as SQLAlchemy Core sees them, for the queries of the catalog.

The tables are created and changed only by the migrations (``migrations/versions``); these
definitions must describe what the newest revision leaves in the database, which
``tests/unit/test_catalog_migrations.py`` checks against a migrated database.

Timestamps are timezone-aware UTC datetimes in Python, ``TIMESTAMPTZ`` in PostgreSQL and
ISO-8601 text in SQLite, which has no time type: one fixed format (microseconds, ``+00:00``)
so that text order is time order and a ``>=`` on the text compares instants.
"""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from diag_assets.core.storage.catalog.model import CaptureStatus

metadata = sa.MetaData()


class UtcTimestamp(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, stored as ``TIMESTAMPTZ`` or, on SQLite, ISO-8601 text."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Text on SQLite, a timezone-aware timestamp elsewhere."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Text())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """A timezone-aware datetime as the database stores it."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"a catalog timestamp must be timezone-aware, got naive {value}")
        moment = value.astimezone(UTC)
        return moment.isoformat(timespec="microseconds") if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """A stored timestamp as a timezone-aware UTC datetime."""
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.astimezone(UTC)


# SQLite keeps the column types of the hand-written schema that came before the migrations
# (INTEGER, not BIGINT), so that every catalog has one schema whatever its history.
_BIG_INTEGER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

STATUSES = tuple(status.value for status in CaptureStatus)

diagnostic_capture = sa.Table(
    "diagnostic_capture",
    metadata,
    sa.Column("key", sa.Text(), primary_key=True),
    sa.Column("request_key", sa.Text(), nullable=False),
    sa.Column("cell_ref", sa.Text(), nullable=False),
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("mode", sa.Text(), nullable=False),
    sa.Column("source_version", sa.Text(), nullable=False),
    sa.Column("artifact_uri", sa.Text()),
    sa.Column("x_hash", sa.Text()),
    sa.Column("y_hash", sa.Text()),
    sa.Column("trial_log_hash", sa.Text()),
    sa.Column("content_hash", sa.Text()),
    sa.Column("bytes", _BIG_INTEGER),
    sa.Column("created_at", UtcTimestamp(), nullable=False),
    sa.Column("updated_at", UtcTimestamp(), nullable=False),
    sa.Column("last_used_at", UtcTimestamp()),
    sa.Column("use_count", _BIG_INTEGER, nullable=False, server_default=sa.text("0")),
    sa.Column("producing_run_id", sa.Text()),
    sa.Column("status_reason", sa.Text()),
    # The attempt that began the row; only that attempt may complete or fail it.
    sa.Column("attempt_id", sa.Text()),
    sa.CheckConstraint(f"status IN ({', '.join(repr(status) for status in STATUSES)})"),
    sa.Index("diagnostic_capture_request_idx", "request_key", "status", "created_at"),
    sa.Index("diagnostic_capture_cell_idx", "cell_ref"),
)
"""One row per capture key: what was asked, where the artifacts are, their hashes, status."""

# No foreign key to diagnostic_capture: the drift history outlives a capture that garbage
# collection deletes.
diag_drift_checks = sa.Table(
    "diag_drift_checks",
    metadata,
    sa.Column("id", _BIG_INTEGER, sa.Identity(always=True), primary_key=True),
    sa.Column("capture_key", sa.Text(), nullable=False),
    sa.Column("cell_ref", sa.Text(), nullable=False),
    sa.Column("drifted", sa.Boolean().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("checked_at", UtcTimestamp(), nullable=False),
    sa.CheckConstraint("drifted IN (0, 1)").ddl_if(dialect="sqlite"),
    sa.Index("diag_drift_checks_checked_at_idx", "checked_at"),
    sqlite_autoincrement=True,
)
"""One row per drift check of a capture: did re-hashing the source find it changed."""
