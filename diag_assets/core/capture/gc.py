"""Capture garbage collection: retire old captures, never one that is leased or in use.

An entry is retired when it was last used (or, never used, created) longer than ``ttl`` ago,
unless it is one of the ``keep_newest`` newest complete captures of its cell, is being
captured, is leased right now, or is the capture a cell's diagnostics currently read.
Retiring deletes the manifest first (the capture is invisible from then on), then the data
files, then the catalog row, so a crash half-way leaves nothing a reader could trust.

GC also collects what dead writers left behind (:func:`collect_leftovers`): for every capture
key in the store, under that key's lease (so no live writer of the key is at work; a held key
is skipped), the attempt folders the key's manifest does not name, the whole folder of a key
with no manifest whose catalog row is not being captured, and temp files of writes killed
before their rename once they are older than a grace period (an hour by default: a younger
one may belong to a write still under way in a process that lost its lease).
"""

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from diag_assets.core.capture import events as ev
from diag_assets.core.capture.artifacts import CaptureArtifacts, CaptureVerificationError
from diag_assets.core.capture.events import CaptureEvent, EventSink
from diag_assets.core.storage.catalog.catalog import CaptureCatalog
from diag_assets.core.storage.catalog.model import CaptureStatus, CatalogEntry
from diag_assets.core.storage.lease.base import Lease, LeaseTimeout, check_lease_key

TEMP_FILE_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class GcDecision:
    """What GC does with one entry, and why."""

    entry: CatalogEntry
    delete: bool
    reason: str


@dataclass
class GcReport:
    """The outcome of one GC pass."""

    decisions: list[GcDecision] = field(default_factory=list)
    deleted_files: int = 0
    dry_run: bool = False
    # Dead writers' leftovers: files of attempts no manifest names, and stale temp files.
    orphaned_files: int = 0
    temp_files: int = 0

    @property
    def deleted(self) -> list[CatalogEntry]:
        """Entries retired (or, in a dry run, that would be)."""
        return [d.entry for d in self.decisions if d.delete]

    @property
    def freed_bytes(self) -> int:
        """Bytes of the retired captures."""
        return sum(e.bytes or 0 for e in self.deleted)


def plan_gc(
    entries: Iterable[CatalogEntry],
    *,
    now: datetime,
    ttl: timedelta,
    keep_newest: int,
    is_leased: Callable[[str], bool],
    in_use: set[str],
    keep_cells: Collection[str] = frozenset(),
) -> list[GcDecision]:
    """Decide, for every entry, whether GC retires it (pure: reads nothing else).

    ``keep_cells`` are cells whose results pointer could not be read: which of their
    captures their diagnostics read is unknown, so none of them is retired.
    """
    entries = list(entries)
    newest: dict[str, set[str]] = defaultdict(set)
    by_cell: dict[str, list[CatalogEntry]] = defaultdict(list)
    for entry in entries:
        if entry.status is CaptureStatus.COMPLETE:
            by_cell[entry.cell_ref].append(entry)
    for cell_ref, complete in by_cell.items():
        complete.sort(key=lambda e: (e.created_at, e.key), reverse=True)
        newest[cell_ref] = {e.key for e in complete[:keep_newest]}

    decisions = []
    for entry in entries:
        last_touch = entry.last_used_at or entry.created_at
        if entry.status is CaptureStatus.CAPTURING:
            decisions.append(GcDecision(entry, False, "being captured"))
        elif entry.key in in_use:
            decisions.append(GcDecision(entry, False, "in use by a cell's diagnostics"))
        elif entry.cell_ref in keep_cells:
            decisions.append(GcDecision(entry, False, "its cell's results pointer is unreadable"))
        elif entry.key in newest[entry.cell_ref]:
            decisions.append(
                GcDecision(entry, False, f"among the {keep_newest} newest of its cell")
            )
        elif now - last_touch < ttl:
            decisions.append(GcDecision(entry, False, f"used within the TTL ({ttl})"))
        elif is_leased(entry.key):
            decisions.append(GcDecision(entry, False, "leased right now"))
        else:
            decisions.append(GcDecision(entry, True, f"unused for {now - last_touch}"))
    return decisions


def run_gc(
    catalog: CaptureCatalog,
    artifacts: CaptureArtifacts,
    *,
    lease: Lease,
    now: datetime,
    ttl: timedelta,
    keep_newest: int,
    in_use: set[str],
    dry_run: bool = False,
    events: EventSink | None = None,
    temp_grace: timedelta = TEMP_FILE_GRACE,
    keep_cells: Collection[str] = frozenset(),
) -> GcReport:
    """Plan, retire what the plan says, then collect dead writers' leftovers.

    Each retirement holds the capture's lease, so a run that starts capturing the same key
    meanwhile either waits for GC or makes GC skip the entry; it never sees a half-deleted one.
    A dry run deletes nothing and reports what would go. Under the lease the row is read
    again: one a reader touched since the plan is kept (a warm read touches the row before it
    proves the files).
    """
    report = GcReport(dry_run=dry_run)
    report.decisions = plan_gc(
        catalog.entries(),
        now=now,
        ttl=ttl,
        keep_newest=keep_newest,
        is_leased=lease.is_held,
        in_use=in_use,
        keep_cells=keep_cells,
    )
    if not dry_run:
        _retire(catalog, artifacts, report, lease=lease, events=events)
    collect_leftovers(catalog, artifacts, report, lease=lease, temp_grace=temp_grace, events=events)
    return report


def _retire(
    catalog: CaptureCatalog,
    artifacts: CaptureArtifacts,
    report: GcReport,
    *,
    lease: Lease,
    events: EventSink | None,
) -> None:
    """Retire the entries the plan in ``report`` deletes, each under its capture's lease."""
    for position, decision in enumerate(report.decisions):
        if not decision.delete:
            continue
        entry = decision.entry
        try:
            with lease.hold(entry.key, wait_s=0):
                if catalog.get(entry.key) != entry:
                    # A reader touched it (or it was re-captured or retired) since the plan.
                    report.decisions[position] = GcDecision(entry, False, "used while GC ran")
                    continue
                catalog.mark_stale(entry.key, f"retired by GC: {decision.reason}")
                report.deleted_files += artifacts.delete(entry.key)
                catalog.delete(entry.key)
        except LeaseTimeout:
            report.decisions[position] = GcDecision(entry, False, "leased right now")
            continue
        if events is not None:
            events(
                CaptureEvent(
                    name=ev.CAPTURE_GC_DELETED,
                    capture_key=entry.key,
                    cell_ref=entry.cell_ref,
                    fields={"reason": decision.reason, "bytes": entry.bytes},
                )
            )


def collect_leftovers(
    catalog: CaptureCatalog,
    artifacts: CaptureArtifacts,
    report: GcReport,
    *,
    lease: Lease,
    temp_grace: timedelta = TEMP_FILE_GRACE,
    events: EventSink | None = None,
) -> None:
    """Delete dead writers' leftovers of every key in the store, counted in ``report``.

    In a dry run they are only counted. A key whose lease is held is skipped: its writer
    may be alive. A key whose manifest cannot be read is skipped too: what it names is not
    known.
    """
    for key in artifacts.stored_keys():
        try:
            check_lease_key(key)
        except ValueError:
            continue  # not a folder the cache wrote
        if _leftovers(catalog, artifacts, key, temp_grace) in (None, ([], [])):
            continue  # nothing to collect: spare the key a lease (a connection on Postgres)
        try:
            with lease.hold(key, wait_s=0):
                # Looked at again under the lease: a writer may have finished meanwhile.
                found = _leftovers(catalog, artifacts, key, temp_grace)
                if found is None:
                    continue
                orphans, temps = found
                if not report.dry_run:
                    for stored in orphans + temps:
                        artifacts.store.delete(stored)
        except LeaseTimeout:
            continue
        report.orphaned_files += len(orphans)
        report.temp_files += len(temps)
        if events is not None and (orphans or temps):
            events(
                CaptureEvent(
                    name=ev.CAPTURE_GC_LEFTOVERS_DELETED,
                    capture_key=key,
                    cell_ref="",
                    fields={
                        "orphaned_files": len(orphans),
                        "temp_files": len(temps),
                        "dry_run": report.dry_run,
                    },
                )
            )


def _leftovers(
    catalog: CaptureCatalog, artifacts: CaptureArtifacts, key: str, temp_grace: timedelta
) -> tuple[list[str], list[str]] | None:
    """``(orphaned files, stale temp files)`` of ``key``; None if its manifest is unreadable."""
    try:
        manifest = artifacts.read_manifest(key)
    except (ValueError, CaptureVerificationError):
        return None
    if manifest is not None:
        orphans = artifacts.leftovers(key, keep=manifest)
    else:
        entry = catalog.get(key)
        capturing = entry is not None and entry.status is CaptureStatus.CAPTURING
        orphans = [] if capturing else artifacts.leftovers(key, keep=None)
    temps = artifacts.stale_temp_files(key, older_than_s=temp_grace.total_seconds())
    return orphans, temps
