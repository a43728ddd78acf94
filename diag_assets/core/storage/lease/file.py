"""Leases as ``flock`` locks on lock files: the backend for one machine.

One lock file per key, ``<root>/<key>.lock``, locked with ``flock(LOCK_EX)``. The kernel
releases a flock when the last descriptor of the open file goes away, so a holder killed
with SIGKILL frees its lease at once. Each ``hold`` opens its own descriptor, so two holds
in one process exclude each other too. Descriptors are opened close-on-exec, so programs
the holder starts do not keep its lease alive; a child made with a bare ``fork()`` while
a lease is held does share it until it exits. The holder writes its pid, host and start
time into the file (the lock is on the inode, not on the contents); a timeout message
quotes them. Operators: ``fuser -v <root>/<key>.lock`` or ``lsof`` show the holding
process. This module never deletes a lock file: deleting a locked file lets the next
caller lock a *new* inode while the old holder still holds the old one, which breaks
mutual exclusion. They are tiny files, one per key ever leased; delete them only when no
run is active. A holder whose lock file was deleted or replaced anyway has lost its lease:
``grant.ensure_held()`` compares the inode of the locked descriptor with the file now at
the path and raises ``LeaseLost`` when they differ, so the old holder stops before it
publishes. Flock is reliable on local file systems only; for
several machines use the Postgres backend, not a lock folder on NFS. ``is_held`` probes
with a momentary shared lock: the holder is not disturbed, but a ``hold(key, wait_s=0)``
that tries in the same microsecond as a probe gets ``LeaseTimeout`` (with ``wait_s > 0``
it simply polls again).
"""

import fcntl
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from diag_assets.core.storage.lease.base import (
    Lease,
    LeaseAttempt,
    LeaseUnavailable,
    check_lease_key,
)

LOGGER = logging.getLogger(__name__)


def _holder_description(holder: str) -> str:
    since = datetime.now(UTC).isoformat(timespec="seconds")
    text = f"pid={os.getpid()} host={socket.gethostname()} since={since}"
    return f"{text} holder={holder}" if holder else text


class _FileAttempt(LeaseAttempt):
    def __init__(self, fd: int, path: Path, holder: str) -> None:
        self._fd = fd
        self._path = path
        self._holder = holder

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as error:
            raise LeaseUnavailable(
                f"Cannot lock {self._path}: {error}. Fix: put the lease folder on a local file "
                f"system that supports flock, or use the Postgres lease backend."
            ) from error
        try:
            data = (_holder_description(self._holder) + "\n").encode()
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError as error:
            # The note only feeds timeout messages; the lock itself is already ours.
            LOGGER.debug("Could not record the holder in %s: %s", self._path, error)
        return True

    def why_lost(self) -> str | None:
        try:
            ours = os.fstat(self._fd)
        except OSError as error:
            return f"its lock file descriptor is unusable ({error.strerror or error})"
        try:
            there = os.stat(self._path)
        except FileNotFoundError:
            return f"its lock file {self._path} was deleted"
        except OSError as error:
            return f"its lock file {self._path} cannot be checked ({error.strerror or error})"
        if (ours.st_dev, ours.st_ino) != (there.st_dev, there.st_ino):
            return (
                f"its lock file {self._path} was replaced by another file (inode {there.st_ino}, "
                f"the lock is on inode {ours.st_ino})"
            )
        return None

    def holder_hint(self) -> str:
        try:
            text = os.pread(self._fd, 512, 0).decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        where = f"(fuser -v {self._path})"
        return f"{text} {where}" if text else where

    def release(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError as error:
            LOGGER.warning(
                "Unlocking %s failed (%s); closing it frees the lock.", self._path, error
            )
        self.abandon()

    def abandon(self) -> None:
        try:
            os.close(self._fd)
        except OSError as error:
            LOGGER.warning("Closing lock file %s failed: %s", self._path, error)


class FileLease(Lease):
    """Leases as ``flock`` locks on ``<root>/<key>.lock``: one machine.

    Args:
        root: Folder of the lock files; created on first use.
        holder: Optional description of this process (a run id), recorded in the lock file
            while held and quoted in other callers' timeout messages.
    """

    backend = "file"

    def __init__(self, root: str | os.PathLike[str], *, holder: str = "") -> None:
        self.root = Path(root).absolute()
        self.holder = holder

    def path_for(self, key: str) -> Path:
        """The lock file of ``key`` (validated)."""
        return self.root / f"{check_lease_key(key)}.lock"

    def _unavailable(self, path: Path, error: OSError) -> LeaseUnavailable:
        return LeaseUnavailable(
            f"File lease folder {self.root} is not usable ({path}: {error.strerror or error}). "
            f"Fix: make {self.root} a directory writable by the user running the code location, "
            f"or configure the lease root to point at one."
        )

    def _open_attempt(self, key: str) -> LeaseAttempt:
        path = self.path_for(key)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Non-inheritable (O_CLOEXEC) so processes we start never keep our lock alive.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as error:
            raise self._unavailable(path, error) from error
        return _FileAttempt(fd, path, self.holder)

    def is_held(self, key: str) -> bool:
        """Whether anyone holds ``key``; never creates a lock file (see :meth:`Lease.is_held`)."""
        path = self.path_for(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError as error:
            raise self._unavailable(path, error) from error
        try:
            # Shared, so concurrent probes never see each other as holders.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError as error:
            raise self._unavailable(path, error) from error
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def close(self) -> None:
        """Nothing to free: every ``hold`` owns and closes its own descriptor."""
