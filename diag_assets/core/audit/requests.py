"""Re-audit requests: JSON files an operator, a script or another system drops in a folder.

One file per request, ``<anything>.json``::

    {"cell_ref": "defi_top5/UNIUSDC/fold-3", "requested_by": "alice", "reason": "new model"}

``cell_ref`` is required; ``audit`` names the audit by its prefix (leave it out for the
packaged audit); the other fields are free text recorded on the run. A request is
identified by its file name and content, so editing a file makes it a new request.

The folder is read as untrusted input. Only regular files are read, never through a symbolic
link (so a link to a secret is never opened), and only up to :data:`MAX_REQUEST_BYTES`. Every
other entry named ``*.json`` (a folder, a link, a fifo, a device, a file too large or that
cannot be read) is a rejected request of its own, with a message that says what it is and the
fix; one bad entry never hides the others. No message quotes a file's content beyond the
first characters of a refused ``cell_ref``.
"""

import errno
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from diag_assets.core.cells import CELL_REF_EXAMPLE, CellRef
from diag_assets.core.errors import DiagInputError, quoted
from diag_assets.core.hashing.digests import bytes_digest, hash_json

MAX_REQUEST_BYTES = 64 * 1024
REQUEST_SUFFIX = ".json"
_SHAPE = f'a JSON object such as {{"cell_ref": "{CELL_REF_EXAMPLE}", "requested_by": "alice"}}'
# What an entry that is not a regular file is, by its file type.
_NOT_A_FILE = {
    stat.S_IFDIR: "a folder",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a named pipe (fifo)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class AuditRequest(BaseModel):
    """What a request file says."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cell_ref: str
    audit: str = ""
    requested_by: str = Field(default="unknown", max_length=200)
    reason: str = Field(default="", max_length=4_000)

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
    # When the request was filed: the entry's modification time (seconds since the epoch), as
    # ``lstat`` saw it; 0 when the entry could not be examined.
    filed_at: float = 0.0

    @property
    def name(self) -> str:
        """How messages name the request file (quoted, so no name can break a log line)."""
        return _name(self.path)


class RequestFolderUnreadable(DiagInputError):
    """The request folder itself cannot be listed."""


def read_requests(directory: Path) -> list[PendingRequest]:
    """Every ``*.json`` entry of ``directory``, oldest first; a bad one carries its error.

    Entries are ordered by (modification time, name) as ``lstat`` sees them, so a dangling
    link is ordered like any other entry. A file that disappears between the listing and its
    read is skipped: it is no longer a request.

    Raises:
        RequestFolderUnreadable: ``directory`` exists but cannot be listed.
    """
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(REQUEST_SUFFIX))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as error:
        raise RequestFolderUnreadable(
            f"The re-audit request folder {directory} cannot be listed ({_cause(error)}).",
            "make it readable by the user running the code location, or point the "
            "audit_requests resource (DIAG_REQUESTS_DIR) at another folder.",
        ) from error
    entries = []
    for name in names:
        path = Path(directory, name)
        try:
            entries.append((path, os.lstat(path)))
        except FileNotFoundError:
            continue
        except OSError as error:
            entries.append((path, error))
    entries.sort(key=lambda item: (_mtime_ns(item[1]), item[0].name))
    pending = []
    for path, status in entries:
        item = _read_one(path, status)
        if item is not None:
            pending.append(replace(item, filed_at=_mtime_ns(status) / 1e9))
    return pending


def _mtime_ns(status: os.stat_result | OSError) -> int:
    return status.st_mtime_ns if isinstance(status, os.stat_result) else 0


def _read_one(path: Path, status: os.stat_result | OSError) -> PendingRequest | None:
    """The request at ``path``, its rejection, or ``None`` if it is gone."""
    if isinstance(status, OSError):
        return _rejected(path, None, _unreadable(path, status))
    kind = stat.S_IFMT(status.st_mode)
    if kind != stat.S_IFREG:
        what = _NOT_A_FILE.get(kind, "not a regular file")
        return _rejected(path, status, _not_a_file(path, what))
    if status.st_size > MAX_REQUEST_BYTES:
        return _rejected(path, status, _too_large(path, status.st_size))
    try:
        raw = _read_regular(path)
    except FileNotFoundError:
        return None
    except _NotRegular as not_regular:
        return _rejected(path, status, _not_a_file(path, not_regular.what))
    except OSError as error:
        return _rejected(path, status, _unreadable(path, error))
    if len(raw) > MAX_REQUEST_BYTES:  # grew between the lstat and the read
        return _rejected(path, status, _too_large(path, len(raw)))
    request_id = f"{path.stem}-{bytes_digest(raw)[:12]}"
    try:
        request = AuditRequest.model_validate_json(raw)
        request.cell()
    except ValidationError as error:
        return PendingRequest(request_id, path, None, _invalid(path, error))
    except DiagInputError as error:
        return PendingRequest(request_id, path, None, f"{_name(path)}: {error}")
    return PendingRequest(request_id, path, request, None)


class _NotRegular(OSError):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def _read_regular(path: Path) -> bytes:
    """The bytes of the regular file at ``path``: never through a link, never a fifo's."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP:  # replaced by a link since the listing
            raise _NotRegular(_NOT_A_FILE[stat.S_IFLNK]) from error
        raise
    try:
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFREG:  # replaced since the listing
            raise _NotRegular(_NOT_A_FILE.get(kind, "not a regular file"))
        chunks, size = [], 0
        while size <= MAX_REQUEST_BYTES:
            chunk = os.read(fd, MAX_REQUEST_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _rejected(path: Path, status: os.stat_result | None, error: str) -> PendingRequest:
    """A rejection of an entry that was not read: identified by its name and file status.

    The status changes when the entry is replaced, written or has its permissions changed,
    so a fixed entry is a new request, and an unchanged one is reported once.
    """
    fields = (
        [status.st_mode, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns]
        if status is not None
        else []
    )
    return PendingRequest(f"{path.stem}-{hash_json(fields)[:12]}", path, None, error)


def _name(path: Path) -> str:
    """How a message names a request file: quoted, so no name can break a log line."""
    return quoted(path.name)


def _not_a_file(path: Path, what: str) -> str:
    link = "a symbolic link is never followed; " if what == _NOT_A_FILE[stat.S_IFLNK] else ""
    return (
        f"{_name(path)} is {what}, not a regular file, so it was not read. Fix: {link}put each "
        f"request in the folder as a regular file ({_SHAPE}), and move this entry out of the "
        f"folder or rename it so its name does not end in {REQUEST_SUFFIX}."
    )


def _too_large(path: Path, size: int) -> str:
    return (
        f"{_name(path)} is {size} bytes, more than the {MAX_REQUEST_BYTES} a request may be, so "
        f"it was not parsed. Fix: a request is {_SHAPE}; write one small file per request."
    )


def _cause(error: OSError) -> str:
    return os.strerror(error.errno) if error.errno else type(error).__name__


def _unreadable(path: Path, error: OSError) -> str:
    return (
        f"{_name(path)} cannot be read ({_cause(error)}). Fix: make it readable by the user "
        "running the code location, or move it out of the request folder."
    )


def _invalid(path: Path, error: ValidationError) -> str:
    """Where and why the file does not parse; never the values it holds."""
    problems = []
    for detail in error.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(part) for part in detail["loc"])
        field = f"field {quoted(where, 40)}: " if where else ""
        problems.append(f"{field}{detail['msg']}")
    shown = "; ".join(problems[:5])
    if len(problems) > 5:
        shown += f"; and {len(problems) - 5} more"
    return (
        f"{_name(path)} is not a valid request ({shown}). Fix: write {_SHAPE}; the fields are "
        "cell_ref (required), audit, requested_by and reason."
    )
