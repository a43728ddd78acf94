"""The archive of handled re-audit requests: each file moved aside with its outcome beside it.

Once a request is handled it leaves the request folder for ``<requests>/archive/``, so the
folder holds only what is still pending and an operator can read what became of every
request::

    archive/<request id>.json           the request file, as it was filed
    archive/<request id>.outcome.json   what became of it (see :class:`ArchivedOutcome`)

An outcome is LAUNCHED (the re-audit run it launched), SERVED (an audit an operator approved
ran after the request was filed, so no second run was launched) or REJECTED (why, and the
fix). The outcome is written first and the request moved second; a request that cannot be
moved stays where it is, its outcome file is removed, and the caller is told why
(:class:`RequestNotArchived`): a request is never lost.

The archive folder is never reached through a symbolic link, so no outcome is written outside
the request folder.
"""

import json
import os
import stat
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from diag_assets.core.audit.requests import PendingRequest
from diag_assets.core.errors import DiagInputError
from diag_assets.core.names import REQUEST_ARCHIVE_FOLDER

OUTCOME_SUFFIX = ".outcome.json"


class RequestOutcome(StrEnum):
    """What became of a handled request."""

    LAUNCHED = "LAUNCHED"
    SERVED = "SERVED"
    REJECTED = "REJECTED"


class ArchivedOutcome(BaseModel):
    """What an outcome file says about its request."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    request_file: str
    outcome: RequestOutcome
    # For LAUNCHED, the run launched; for SERVED, the approved run that audited the cell.
    run_id: str | None = None
    cell_ref: str | None = None
    requested_by: str | None = None
    # For REJECTED, why and the fix; otherwise what the run was.
    reason: str
    archived_at: str


class RequestNotArchived(DiagInputError):
    """A handled request could not be moved to the archive; it is still in the folder."""


def archive_folder(requests_folder: Path) -> Path:
    """Where the request folder's handled requests go."""
    return requests_folder / REQUEST_ARCHIVE_FOLDER


def archive_request(
    item: PendingRequest,
    outcome: RequestOutcome,
    reason: str,
    *,
    run_id: str | None = None,
    now: datetime | None = None,
) -> Path | None:
    """Move ``item``'s file to the archive with its outcome beside it; the archived path.

    ``None`` when the file is gone from the folder before it could be moved.

    Raises:
        RequestNotArchived: the archive cannot be made or written, or the file cannot be
            moved; the request is still in the folder, and no outcome file is left behind.
    """
    folder = archive_folder(item.path.parent)
    record = ArchivedOutcome(
        request_id=item.request_id,
        request_file=item.path.name,
        outcome=outcome,
        run_id=run_id,
        cell_ref=item.request.cell_ref if item.request else None,
        requested_by=item.request.requested_by if item.request else None,
        reason=reason,
        archived_at=(now or datetime.now(UTC)).isoformat(),
    )
    try:
        _ensure_folder(folder)
        target = _free_name(folder, item.request_id)
        outcome_path = target.with_name(target.stem + OUTCOME_SUFFIX)
        _write_atomically(outcome_path, record.model_dump_json(indent=2) + "\n")
    except OSError as error:
        raise _not_archived(item, folder, error) from error
    try:
        os.rename(item.path, target)
    except FileNotFoundError:
        # Gone since the folder was read (moved by hand, or archived by another audit's
        # sensor): no longer a request, and nothing to archive.
        outcome_path.unlink(missing_ok=True)
        return None
    except OSError as error:
        outcome_path.unlink(missing_ok=True)
        raise _not_archived(item, folder, error) from error
    return target


def read_outcome(path: Path) -> ArchivedOutcome:
    """The outcome file at ``path``."""
    return ArchivedOutcome.model_validate(json.loads(path.read_text()))


def _ensure_folder(folder: Path) -> None:
    try:
        status = os.lstat(folder)
    except FileNotFoundError:
        folder.mkdir()
        return
    if not stat.S_ISDIR(status.st_mode):
        raise NotADirectoryError(f"{folder} is not a folder (a symbolic link is never followed)")


def _free_name(folder: Path, request_id: str) -> Path:
    """``<request id>.json`` in ``folder``, or ``<request id>-<n>.json`` if it is taken."""
    for n in range(10_000):
        name = f"{request_id}.json" if n == 0 else f"{request_id}-{n}.json"
        candidate = folder / name
        outcome = candidate.with_name(candidate.stem + OUTCOME_SUFFIX)
        if not os.path.lexists(candidate) and not os.path.lexists(outcome):
            return candidate
    raise FileExistsError(f"{folder} already holds 10000 archived copies of {request_id}")


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _not_archived(item: PendingRequest, folder: Path, error: OSError) -> RequestNotArchived:
    cause = os.strerror(error.errno) if error.errno else str(error)
    return RequestNotArchived(
        f"{item.name} was handled but could not be moved to {folder} ({cause}); it stays in "
        "the request folder and is not handled again.",
        "make the request folder and its archive folder writable by the user running the code "
        "location (the file is moved on the next tick), or move the file out yourself.",
    )
