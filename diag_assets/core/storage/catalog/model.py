"""What the capture catalog holds: a capture's status and its entry, and the catalog's error."""

from datetime import datetime
from enum import StrEnum

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
