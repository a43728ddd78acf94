"""What serving a capture request ends in: a verified capture and how, or the refusal."""

from dataclasses import dataclass, field
from enum import StrEnum

from diag_assets.core.capture.events import CaptureEvent
from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.cells import CellRef
from diag_assets.core.names import ALLOW_COLD_CAPTURE_TAG, APPROVED_COLD_AUDIT_JOB
from diag_assets.core.storage.catalog.model import CaptureStatus, CatalogEntry

COLD_CAPTURE_REQUIRES_OPERATOR = "COLD_CAPTURE_REQUIRES_OPERATOR"


class CaptureOutcome(StrEnum):
    """How a request was served."""

    HIT = "HIT"
    MISS = "MISS"
    WAITED = "WAITED"


class ColdCaptureRequiresOperator(RuntimeError):
    """A cold capture was needed and nobody approved it."""

    code = COLD_CAPTURE_REQUIRES_OPERATOR

    def __init__(self, cell: CellRef, reason: str) -> None:
        self.cell = cell
        self.reason = reason
        super().__init__(
            f"{COLD_CAPTURE_REQUIRES_OPERATOR}: {cell} has no usable capture ({reason}); a cold "
            "capture replays the whole fine-tune and needs an operator's approval. To approve, "
            f"launch the {APPROVED_COLD_AUDIT_JOB} job for the cell (UI Launchpad or "
            f"`dagster job launch`); it carries the tag {ALLOW_COLD_CAPTURE_TAG}=true, so "
            "nothing has to be typed (`make demo` sets the tag itself)."
        )


@dataclass(frozen=True)
class CaptureResult:
    """A verified capture and how it was obtained."""

    outcome: CaptureOutcome
    manifest: CaptureManifest
    entry: CatalogEntry
    uri: str
    waited_s: float = 0.0
    drift_checked: bool = False
    elapsed_s: float = 0.0
    events: list[CaptureEvent] = field(default_factory=list)


def no_capture_reason(last: CatalogEntry | None) -> str:
    """Why a request has no complete capture, from the entry of its request changed last."""
    if last is None or last.status is CaptureStatus.COMPLETE:
        return "no capture of this cell with this recipe and config yet"
    if last.status is CaptureStatus.CAPTURING:
        return (
            f"its capture {last.key} was begun by run {last.producing_run_id} and has not "
            "completed (still running, or its writer died)"
        )
    why = last.status_reason or "no reason recorded"
    return f"its last capture {last.key} is {last.status}: {why}"
