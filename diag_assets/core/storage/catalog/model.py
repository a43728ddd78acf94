"""What the capture catalog holds: a capture's status and its entry, and the catalog's errors."""

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
    # The capture attempt that began the row (None: written before attempts existed).
    attempt_id: str | None = None


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


class CaptureFenced(RuntimeError):
    """A capture attempt tried to complete (or fail) a row that another attempt holds now.

    The writer lost its lease and another writer began the capture again; the catalog was
    not changed.

    Attributes:
        key: The capture key.
        attempt_id: The attempt that was refused.
        status: The row's status now (``""`` if it has none).
        producing_run_id: The run recorded on the row now.
        holder_attempt_id: The attempt the row belongs to now.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str = "",
        attempt_id: str = "",
        status: str = "",
        producing_run_id: str | None = None,
        holder_attempt_id: str | None = None,
    ) -> None:
        # Defaults keep the exception picklable (unpickling calls cls(*args)).
        super().__init__(message)
        self.key = key
        self.attempt_id = attempt_id
        self.status = status
        self.producing_run_id = producing_run_id
        self.holder_attempt_id = holder_attempt_id

    @classmethod
    def of(cls, entry: CatalogEntry, attempt_id: str, action: str) -> "CaptureFenced":
        """The refusal of ``attempt_id``'s ``action`` on ``entry`` as the catalog holds it."""
        return cls(
            f"Capture {entry.key}: attempt {attempt_id} may not {action} it, the catalog row "
            f"belongs to another writer now (status {entry.status.value}, run "
            f"{entry.producing_run_id or 'unknown'}, attempt {entry.attempt_id or 'none'}). "
            f"This writer lost its lease while capturing; nothing it did was recorded and its "
            f"files are not used. Fix: nothing to repair; retry the run if it still needs the "
            f"capture (it then reuses or redoes the other writer's capture).",
            key=entry.key,
            attempt_id=attempt_id,
            status=entry.status.value,
            producing_run_id=entry.producing_run_id,
            holder_attempt_id=entry.attempt_id,
        )
