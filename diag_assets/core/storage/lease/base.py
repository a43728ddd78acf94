"""Single-flight leases: at most one process captures a given key at a time.

When several audits ask for the same cold capture at once, exactly one of them takes the
capture key's lease and captures; the others wait (a bounded time) for the lease, then find
the finished capture and reuse it. A holder that crashes frees its lease by itself: both
backends tie the lease to something the operating system or the database server tears down
when the holder dies, so there is no expiry to tune and no stale lock to clean up by hand.

Use::

    with lease.hold(key, wait_s=600, on_wait=report) as grant:
        ...  # only one process in here per key, on every machine sharing the backend

``hold`` tries once without blocking. If someone else holds the key it calls
``on_wait(elapsed_s)`` right away and then at most about once a second, polling with an
interval that grows from ``poll_s`` to 0.5 s, and raises :class:`LeaseTimeout` once
``wait_s`` has passed (``wait_s=0``: a single try). The lease is released when the block
exits, also on an exception. Leases are not re-entrant: holding a key and asking for it
again, even from the same process or thread, waits like any other caller.

**A lease can be lost while its block runs**, and then the block must stop before it
publishes anything: a PostgreSQL lease ends with its session (a server restart,
``pg_terminate_backend``, a network partition the server's keepalives notice), a file lease
with its lock file (deleted or replaced, after which the next caller locks a new file). Nothing
interrupts the holder when that happens, so the block proves the lease right before each step
another holder must never see twice, with the grant it was given::

    with lease.hold(key, wait_s=600) as grant:
        write_the_data()
        grant.ensure_held()  # raises LeaseLost if another process may hold the key now
        publish()

:meth:`LeaseGrant.ensure_held` asks the backend (Postgres: does this lease's own session
still hold the advisory lock in ``pg_locks``; file: is the locked descriptor still the file
at the lock path) and raises :class:`LeaseLost` if not, or once the block has exited. The
proof holds when it is given; a step that must stay exclusive after it (a catalog commit)
is also fenced where it lands (see the capture catalog's attempt ids).

``is_held(key)`` says whether anyone, this process included, holds the key right now. It is a
snapshot: the answer can be stale the moment it returns, so use it for reports and GC
planning, and take the lease itself (``hold(key, wait_s=0)``) before acting on a key.

Keys must match ``^[A-Za-z0-9_.-]{1,200}$`` on both backends (``ValueError`` otherwise), so a
key means the same thing whichever backend is configured and is always a safe file name.

Backends: :mod:`diag_assets.core.storage.lease.file` (one machine) and
:mod:`diag_assets.core.storage.lease.postgres` (any number of machines).
"""

import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

KEY_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,200}")
MAX_POLL_S = 0.5
POLL_GROWTH = 1.5
ON_WAIT_EVERY_S = 1.0


@dataclass(frozen=True)
class LeaseGrant:
    """What ``hold`` hands to the block that runs under the lease.

    Attributes:
        key: The key that is held.
        waited_s: Seconds spent waiting for another holder before acquisition; 0.0 if the
            first try succeeded.
        waited: True if someone else held the key when we first tried.
        backend: ``"file"`` or ``"postgres"``.
    """

    key: str
    waited_s: float
    waited: bool
    backend: str
    # What the backend says about the lease now (None: still held); set by ``hold``.
    proof: Callable[[], str | None] | None = field(default=None, repr=False, compare=False)

    def ensure_held(self) -> None:
        """Prove that the lease is still held, right before a step only the holder may take.

        Raises:
            LeaseLost: The lease was lost (the backend no longer shows it as ours), or the
                ``hold`` block has already exited; the step must not be taken.
        """
        found = "no hold block handed out this grant" if self.proof is None else self.proof()
        if found is not None:
            raise LeaseLost(
                _lost_message(self.key, self.backend, found),
                key=self.key,
                backend=self.backend,
                found=found,
            )


class LeaseTimeout(RuntimeError):
    """The key stayed held by someone else for longer than ``wait_s``."""

    def __init__(
        self, message: str, *, key: str = "", waited_s: float = 0.0, wait_s: float = 0.0
    ) -> None:
        # Defaults keep the exception picklable (unpickling calls cls(*args)).
        super().__init__(message)
        self.key = key
        self.waited_s = waited_s
        self.wait_s = wait_s


class LeaseLost(RuntimeError):
    """The lease was lost while its block ran: another process may hold the key now.

    Attributes:
        key: The key whose lease was lost.
        backend: ``"file"`` or ``"postgres"``.
        found: What showed the loss (a terminated session, a replaced lock file).
    """

    def __init__(self, message: str, *, key: str = "", backend: str = "", found: str = "") -> None:
        # Defaults keep the exception picklable (unpickling calls cls(*args)).
        super().__init__(message)
        self.key = key
        self.backend = backend
        self.found = found


def _lost_message(key: str, backend: str, found: str) -> str:
    return (
        f"Lease {key!r} ({backend} backend) was lost while its holder was working: {found}. "
        f"Another process may hold the key now, so this holder stopped before publishing "
        f"anything; the work under the lease is abandoned. Fix: nothing to repair, retry the "
        f"run. If it keeps happening, check what ends lease sessions or touches lock files "
        f"(server restarts, idle-session killers, network drops, a cleanup of the lease folder)."
    )


class LeaseUnavailable(RuntimeError):
    """The lease backend cannot be used: Postgres unreachable, lock folder not writable."""


def check_lease_key(key: str) -> str:
    """Return ``key`` if it is a valid lease key, else raise ``ValueError``.

    Args:
        key: A capture key or other identifier.

    Returns:
        The key unchanged.

    Raises:
        ValueError: ``key`` does not match ``^[A-Za-z0-9_.-]{1,200}$``.
    """
    if not isinstance(key, str) or KEY_PATTERN.fullmatch(key) is None:
        raise ValueError(
            f"Invalid lease key {key!r}: a key is 1 to 200 characters from A-Z a-z 0-9 _ . -"
        )
    return key


class LeaseAttempt(ABC):
    """One ``hold`` call's resources (a descriptor, a connection) from first try to release."""

    @abstractmethod
    def try_acquire(self) -> bool:
        """Try once without blocking; True if we now hold the lease."""

    @abstractmethod
    def release(self) -> None:
        """Give the held lease back and free the resources; must not raise."""

    @abstractmethod
    def abandon(self) -> None:
        """Free the resources of an attempt that never acquired; must not raise."""

    @abstractmethod
    def why_lost(self) -> str | None:
        """``None`` while this attempt still holds its lease, else what shows it does not.

        Called by the holder between :meth:`try_acquire` and :meth:`release`; must not raise
        (a backend that cannot tell counts the lease as lost and says why).
        """

    def holder_hint(self) -> str:
        """Who holds the key, for a timeout message; empty if unknown."""
        return ""


class Lease(ABC):
    """A single-flight lease per key. See the module docstring for the semantics."""

    backend: str

    @contextmanager
    def hold(
        self,
        key: str,
        *,
        wait_s: float,
        on_wait: Callable[[float], None] | None = None,
        poll_s: float = 0.05,
    ) -> Iterator[LeaseGrant]:
        """Hold the lease on ``key`` for the duration of the ``with`` block.

        Args:
            key: The lease key (see :func:`check_lease_key`).
            wait_s: How long to wait for another holder, in seconds; 0 tries once.
            on_wait: Called with the seconds waited so far as soon as the key is found held,
                then at most about once per second while waiting.
            poll_s: First poll interval; it grows to 0.5 s (or ``poll_s`` if larger).

        Yields:
            A :class:`LeaseGrant` describing the acquisition.

        Raises:
            ValueError: Invalid key, negative ``wait_s`` or non-positive ``poll_s``.
            LeaseTimeout: The key was still held by someone else after ``wait_s``.
            LeaseUnavailable: The backend cannot be reached or written.
        """
        check_lease_key(key)
        if not (wait_s >= 0 and math.isfinite(wait_s)):
            raise ValueError(f"wait_s must be a finite number >= 0, got {wait_s!r}.")
        if not (poll_s > 0 and math.isfinite(poll_s)):
            raise ValueError(f"poll_s must be a finite number > 0, got {poll_s!r}.")
        attempt = self._open_attempt(key)
        acquired = False
        try:
            waited, waited_s = self._acquire(attempt, key, wait_s, on_wait, poll_s)
            acquired = True
        finally:
            if not acquired:
                attempt.abandon()
        released = False

        def why_lost() -> str | None:
            if released:
                return "the hold block had already exited and released the lease"
            return attempt.why_lost()

        try:
            yield LeaseGrant(
                key=key, waited_s=waited_s, waited=waited, backend=self.backend, proof=why_lost
            )
        finally:
            released = True
            attempt.release()

    def _acquire(
        self,
        attempt: LeaseAttempt,
        key: str,
        wait_s: float,
        on_wait: Callable[[float], None] | None,
        poll_s: float,
    ) -> tuple[bool, float]:
        start = time.monotonic()
        interval = poll_s
        max_interval = max(poll_s, MAX_POLL_S)
        waited = False
        last_report = start
        while not attempt.try_acquire():
            now = time.monotonic()
            elapsed = now - start
            if on_wait is not None and (not waited or now - last_report >= ON_WAIT_EVERY_S):
                last_report = now
                on_wait(elapsed)
            waited = True
            if elapsed >= wait_s:
                raise LeaseTimeout(
                    self._timeout_message(key, elapsed, wait_s, attempt.holder_hint()),
                    key=key,
                    waited_s=elapsed,
                    wait_s=wait_s,
                )
            # Sleep to the deadline at most, so the last try happens right at wait_s.
            time.sleep(max(0.0, min(interval, start + wait_s - time.monotonic())))
            interval = min(max_interval, interval * POLL_GROWTH)
        return waited, (time.monotonic() - start if waited else 0.0)

    def _timeout_message(self, key: str, elapsed: float, wait_s: float, hint: str) -> str:
        held_by = f" by {hint}" if hint else ""
        return (
            f"Lease {key!r} ({self.backend} backend) is still held{held_by} after waiting "
            f"{elapsed:.1f} s (wait_s={wait_s:g}). Fix: if the holder run is alive and still "
            f"capturing, raise wait_s above how long a cold capture takes; otherwise check the "
            f"holder run and stop it if it is stuck (its lease frees itself when its process "
            f"or connection ends)."
        )

    @abstractmethod
    def _open_attempt(self, key: str) -> LeaseAttempt:
        """Open what trying ``key`` needs; raise :class:`LeaseUnavailable` if it cannot."""

    @abstractmethod
    def is_held(self, key: str) -> bool:
        """Whether anyone, this process included, holds ``key`` right now.

        Args:
            key: The lease key.

        Returns:
            True if the lease is held. The holder is never disturbed.

        Raises:
            ValueError: Invalid key.
            LeaseUnavailable: The backend cannot be reached or read.
        """

    @abstractmethod
    def close(self) -> None:
        """Free what the lease keeps open between calls; leases being held stay held."""
