"""Blob stores: where captures and results live, addressed by relative keys.

Keys are relative POSIX paths built by the harness from validated ids (capture keys, cell
slugs); :func:`check_key` refuses anything else, so no user string becomes a path.

Every write is atomic: a reader sees the old object or the whole new one, never a part.
Locally that is a temp file in the same directory + fsync + ``os.replace``; a process killed
between the two leaves its temp file (``.<name>.<random>.tmp``), which :meth:`list_keys`
hides and :meth:`BlobStore.temp_files` finds for the GC.

A missing object is ``FileNotFoundError``. Any other failure of a store (a read-only or full
disk, a permission, an unreachable bucket) is a :class:`StoreError` whose message names the
operation, where it failed and what to fix.
"""

import contextlib
import errno
import os
import re
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from diag_assets.core.errors import quoted
from diag_assets.core.hashing.digests import bytes_digest, file_digest

# The setting of the embedded profile that names the local store's folder.
STORAGE_DIR_ENV = "DIAG_STORAGE_DIR"

KEY_PATTERN = re.compile(r"[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*")


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise ``ValueError``.

    The whole key must match :data:`KEY_PATTERN` (a trailing newline or space is refused).
    """
    if (
        not isinstance(key, str)
        or not KEY_PATTERN.fullmatch(key)
        or any(part in {".", ".."} for part in key.split("/"))
    ):
        raise ValueError(f"Refusing unsafe store key {quoted(key)}.")
    return key


class StoreError(OSError):
    """A blob store could not do an operation; the message names it, where, and the fix.

    An ``OSError``, so code that handles I/O failures handles it too; never a
    ``FileNotFoundError``, which stays the one answer for "no object at this key".
    """

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} Fix: {fix}" if fix else problem)


class BlobStore(ABC):
    """A flat namespace of immutable-by-convention objects."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` atomically, replacing any previous object."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Read the object at ``key``; ``FileNotFoundError`` if there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (a folder-like prefix without trailing slash), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object at ``key`` if it exists."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """A URI a person can paste to find the object."""

    def digest(self, key: str) -> tuple[int, str]:
        """Size and xxh3-128 digest of the object; backends override this to stream."""
        data = self.read_bytes(key)
        return len(data), bytes_digest(data)

    def temp_files(self, prefix: str, *, older_than_s: float) -> list[str]:
        """Keys of temp files that interrupted writes left under ``prefix``, sorted.

        Only those untouched for ``older_than_s`` seconds: a younger one may belong to a
        write still under way. None here: a store whose writes leave no temp files (S3
        uploads are atomic) keeps this default. :meth:`delete` removes them.
        """
        return []


T = TypeVar("T")
# errno values whose fix is the folder's permissions, and those whose fix is free space.
_NOT_PERMITTED = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_IN_THE_WAY = frozenset({errno.ENOTDIR, errno.EEXIST, errno.EISDIR})


class LocalBlobStore(BlobStore):
    """A folder on the local disk.

    Every operation turns an ``OSError`` other than a missing object into a
    :class:`StoreError` that names the operation, the file and the fix.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _run(
        self, operation: str, path: Path, action: Callable[[], T], *, reads: bool = False
    ) -> T:
        """Run one file operation; a read of a missing file stays ``FileNotFoundError``."""
        try:
            return action()
        except OSError as error:
            if reads and isinstance(error, FileNotFoundError):
                raise
            raise self._error(operation, path, error) from error

    def _error(self, operation: str, path: Path, error: OSError) -> StoreError:
        """The :class:`StoreError` of ``error``, with the fix that matches its cause."""
        code = error.errno
        cause = f"{os.strerror(code)} ({errno.errorcode.get(code, code)})" if code else str(error)
        where = f"{path} (local artifact store at {self.root})"
        elsewhere = f"point {STORAGE_DIR_ENV} at"
        if code in _NOT_PERMITTED:
            need = "writable" if operation in ("write", "delete") else "readable"
            fix = (
                f"make {self.root} {need} by the user running the code location, or "
                f"{elsewhere} a {need} folder."
            )
        elif code in _FULL:
            fix = (
                f"free space on the file system of {self.root} (or raise the user's quota), or "
                f"{elsewhere} a folder on a larger one; nothing was half-written, so the "
                "operation can simply be run again."
            )
        elif code in _IN_THE_WAY:
            fix = (
                f"something in {self.root} is a file where the store needs a folder or the "
                f"reverse: move it away, or {elsewhere} a folder the store alone uses."
            )
        else:
            fix = (
                f"check that {self.root} is a folder on a mounted, working file system that the "
                "code location's user can read and write, then retry."
            )
        store_error = StoreError(f"Could not {operation} {where}: {cause}.", fix)
        store_error.errno = code
        return store_error

    def write_bytes(self, key: str, data: bytes) -> None:
        """Temp file in the target folder, fsync, then rename over the target.

        Raises:
            StoreError: the folder is not writable, the disk is full, or another I/O error;
                no part of the object, and no temp file, stays behind.
        """
        path = self._path(key)
        self._run("write", path, lambda: self._write(path, data))

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            # The temp file goes whatever went wrong; failing to remove it must not hide why.
            with contextlib.suppress(OSError):
                Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    def read_bytes(self, key: str) -> bytes:
        """Read the whole file.

        Raises:
            FileNotFoundError: no object at ``key``.
            StoreError: the file cannot be read.
        """
        path = self._path(key)
        return self._run("read", path, path.read_bytes, reads=True)

    def exists(self, key: str) -> bool:
        """Whether the file exists.

        Raises:
            StoreError: the folder cannot be looked into.
        """
        path = self._path(key)
        return self._run("look up", path, path.is_file)

    def list_keys(self, prefix: str) -> list[str]:
        """Files below ``prefix``, temp files excluded.

        Raises:
            StoreError: a folder below ``prefix`` cannot be read (never skipped silently:
                the garbage collector must see every capture in use).
        """
        base = self._path(prefix)
        return self._run("list", base, lambda: self._list(base))

    def _list(self, base: Path) -> list[str]:
        if not base.is_dir():
            return []

        def refuse(error: OSError) -> None:
            if not isinstance(error, FileNotFoundError):  # a folder removed while listing
                raise error

        keys = []
        for folder, _dirs, files in os.walk(base, onerror=refuse, followlinks=True):
            for name in files:
                path = Path(folder, name)
                if not name.startswith(".") and path.is_file():
                    keys.append(str(path.relative_to(self.root)))
        return sorted(keys)

    def temp_files(self, prefix: str, *, older_than_s: float) -> list[str]:
        """The ``.<name>.<random>.tmp`` files of writes killed before their rename.

        Raises:
            StoreError: a folder below ``prefix`` cannot be read.
        """
        base = self._path(prefix)
        return self._run("list temp files in", base, lambda: self._temp_files(base, older_than_s))

    def _temp_files(self, base: Path, older_than_s: float) -> list[str]:
        if not base.is_dir():
            return []
        cutoff = time.time() - older_than_s
        found = []
        for path in base.rglob(".*.tmp"):
            try:
                if not path.is_file() or path.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:  # renamed or removed while we looked
                continue
            key = str(path.relative_to(self.root))
            if KEY_PATTERN.fullmatch(key):
                found.append(key)
        return sorted(found)

    def delete(self, key: str) -> None:
        """Remove the file and any folders it leaves empty; a missing file is fine.

        Raises:
            StoreError: the file cannot be removed (a read-only folder, a permission).
        """
        path = self._path(key)
        self._run("delete", path, lambda: path.unlink(missing_ok=True))
        for folder in path.parents:
            if folder == self.root or self.root not in folder.parents:
                break
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): stop pruning
                break

    def uri(self, key: str) -> str:
        """``file://`` URI of the object."""
        return self._path(key).as_uri()

    def digest(self, key: str) -> tuple[int, str]:
        """Streams the file through the hash without holding it in memory.

        Raises:
            FileNotFoundError: no object at ``key``.
            StoreError: the file cannot be read.
        """
        path = self._path(key)
        return self._run("hash", path, lambda: (path.stat().st_size, file_digest(path)), reads=True)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class NamespacedBlobStore(BlobStore):
    """A view of ``store`` under ``namespace/``: one audit's results and gate records.

    Keys given to and returned by the view are relative to the namespace, so code that writes
    and reads a store works unchanged on an audit's own part of a shared one.
    """

    def __init__(self, store: BlobStore, namespace: str) -> None:
        self.inner = store
        self.namespace = check_key(namespace.strip("/"))

    def _key(self, key: str) -> str:
        return f"{self.namespace}/{key}"

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write under the namespace."""
        self.inner.write_bytes(self._key(key), data)

    def read_bytes(self, key: str) -> bytes:
        """Read from the namespace."""
        return self.inner.read_bytes(self._key(key))

    def exists(self, key: str) -> bool:
        """Whether the key exists in the namespace."""
        return self.inner.exists(self._key(key))

    def list_keys(self, prefix: str) -> list[str]:
        """Keys below ``prefix`` in the namespace, relative to it."""
        start = len(self.namespace) + 1
        return [key[start:] for key in self.inner.list_keys(self._key(prefix))]

    def delete(self, key: str) -> None:
        """Delete from the namespace."""
        self.inner.delete(self._key(key))

    def uri(self, key: str) -> str:
        """The URI of the namespaced object."""
        return self.inner.uri(self._key(key))

    def digest(self, key: str) -> tuple[int, str]:
        """Size and digest of the namespaced object."""
        return self.inner.digest(self._key(key))

    def temp_files(self, prefix: str, *, older_than_s: float) -> list[str]:
        """Temp files below ``prefix`` in the namespace, relative to it."""
        start = len(self.namespace) + 1
        found = self.inner.temp_files(self._key(prefix), older_than_s=older_than_s)
        return [key[start:] for key in found]
