"""Blob stores: where captures and results live, addressed by relative keys.

Keys are relative POSIX paths built by the harness from validated ids (capture keys, cell
slugs); :func:`check_key` refuses anything else, so no user string becomes a path.

Every write is atomic: a reader sees the old object or the whole new one, never a part.
Locally that is a temp file in the same directory + fsync + ``os.replace``; a process killed
between the two leaves its temp file (``.<name>.<random>.tmp``), which :meth:`list_keys`
hides and :meth:`BlobStore.temp_files` finds for the GC.
"""

import os
import re
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path

from diag_assets.core.hashing.digests import bytes_digest, file_digest

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*$")


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise ``ValueError``."""
    if not KEY_PATTERN.match(key) or any(part in {".", ".."} for part in key.split("/")):
        raise ValueError(f"Refusing unsafe store key {key!r}.")
    return key


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


class LocalBlobStore(BlobStore):
    """A folder on the local disk."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def write_bytes(self, key: str, data: bytes) -> None:
        """Temp file in the target folder, fsync, then rename over the target."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    def read_bytes(self, key: str) -> bytes:
        """Read the whole file."""
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        """Files below ``prefix``, temp files excluded."""
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def temp_files(self, prefix: str, *, older_than_s: float) -> list[str]:
        """The ``.<name>.<random>.tmp`` files of writes killed before their rename."""
        base = self._path(prefix)
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
            if KEY_PATTERN.match(key):
                found.append(key)
        return sorted(found)

    def delete(self, key: str) -> None:
        """Remove the file and any folders it leaves empty; a missing file is fine."""
        path = self._path(key)
        path.unlink(missing_ok=True)
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
        """Streams the file through the hash without holding it in memory."""
        path = self._path(key)
        return path.stat().st_size, file_digest(path)


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
