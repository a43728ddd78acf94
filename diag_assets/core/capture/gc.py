"""Capture garbage collection: retire old captures, never one that is leased or in use.

An entry is retired when it was last used (or, never used, created) longer than ``ttl`` ago,
unless it is one of the ``keep_newest`` newest complete captures of its cell, is being
captured, is leased right now, or is the capture a cell's diagnostics currently read.
Retiring deletes the manifest first (the capture is invisible from then on), then the data
files, then the catalog row, so a crash half-way leaves nothing a reader could trust.
"""

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from diag_assets.core.capture import events as ev
from diag_assets.core.capture.artifacts import CaptureArtifacts
from diag_assets.core.capture.events import CaptureEvent, EventSink
from diag_assets.core.storage.catalog.catalog import CaptureCatalog
from diag_assets.core.storage.catalog.model import CaptureStatus, CatalogEntry
from diag_assets.core.storage.lease.base import Lease, LeaseTimeout


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
    keep_cells: Collection[str] = frozenset(),
) -> GcReport:
    """Plan, then retire what the plan says (nothing at all in a dry run).

    Each retirement holds the capture's lease, so a run that starts capturing the same key
    meanwhile either waits for GC or makes GC skip the entry; it never sees a half-deleted one.
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
    if dry_run:
        return report
    for position, decision in enumerate(report.decisions):
        if not decision.delete:
            continue
        entry = decision.entry
        try:
            with lease.hold(entry.key, wait_s=0):
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
    return report
