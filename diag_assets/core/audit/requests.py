"""Re-audit requests: JSON files an operator, a script or another system drops in a folder.

One file per request, ``<anything>.json``::

    {"cell_ref": "defi_top5/UNIUSDC/fold-3", "requested_by": "alice", "reason": "new model"}

``cell_ref`` is required; ``audit`` names the audit by its prefix (leave it out for the
packaged audit); the other fields are free text recorded on the run. A request is
identified by its file name and content, so editing a file makes it a new request.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.hashing.digests import bytes_digest


class AuditRequest(BaseModel):
    """What a request file says."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cell_ref: str
    audit: str = ""
    requested_by: str = "unknown"
    reason: str = ""

    def cell(self) -> CellRef:
        """The validated cell."""
        return CellRef.parse(self.cell_ref)


@dataclass(frozen=True)
class PendingRequest:
    """A request file, parsed, or the reason it cannot be."""

    request_id: str
    path: Path
    request: AuditRequest | None
    error: str | None


def read_requests(directory: Path) -> list[PendingRequest]:
    """Every ``*.json`` request in ``directory``, oldest first; unreadable ones carry an error."""
    if not directory.is_dir():
        return []
    files = sorted(directory.glob("*.json"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    pending = []
    for path in files:
        raw = path.read_bytes()
        request_id = f"{path.stem}-{bytes_digest(raw)[:12]}"
        try:
            request = AuditRequest.model_validate_json(raw)
            request.cell()
        except (ValidationError, DiagInputError, json.JSONDecodeError) as error:
            pending.append(PendingRequest(request_id, path, None, f"{path.name}: {error}"))
            continue
        pending.append(PendingRequest(request_id, path, request, None))
    return pending
