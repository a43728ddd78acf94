"""The results pointer: which capture a cell's diagnostics read, and the proof that it may.

The captured_fold asset writes the manifest of the capture it served at
``results/captured_fold/<cell slug>.json``: the cell's *results pointer*. Anyone who can
write to the store can change that file, and a copy or a swap is still a well-formed
manifest, so a reader never trusts it: :func:`prove_pointer` accepts a pointer only if it
names a capture of this very cell that the capture catalog holds as COMPLETE, with the same
mode and content hash, and whose hashes add up to that content hash. The verified load then
checks the stored bytes against those hashes, so what a diagnostic reads is the catalog's
capture of its cell, or nothing.

The capture GC reads every pointer too, to keep the captures they name
(:func:`pointers_in_use`); a pointer it cannot read makes it keep all of its cell's
captures instead of failing the collection.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from diag_assets.core.capture.artifacts import CaptureVerificationError
from diag_assets.core.capture.manifest import CaptureManifest, parse_manifest
from diag_assets.core.capture.proof import claim_problems
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError, clipped
from diag_assets.core.names import CAPTURED_FOLD
from diag_assets.core.storage.blob import BlobStore
from diag_assets.core.storage.catalog.model import CaptureStatus, CatalogEntry

# How much of the catalog's reason for a status a message repeats.
_REASON_CHARS = 300


class PointerNotProven(CaptureVerificationError):
    """A cell's results pointer does not name a complete capture of that cell: not used.

    Attributes:
        cell: The cell whose pointer was read.
        problem: What is wrong with it, completing "the results pointer of <cell> ...".
    """

    def __init__(self, cell: CellRef, problem: str, capture_asset: str = CAPTURED_FOLD) -> None:
        self.cell = cell
        self.problem = problem
        super().__init__(
            f"The results pointer of {cell} {problem}. Re-materialize {capture_asset} for "
            f"{cell}: it serves the cell's capture and points the results at it."
        )


def prove_pointer(
    cell: CellRef,
    raw: bytes,
    entry_of: Callable[[str], CatalogEntry | None],
    *,
    capture_asset: str = CAPTURED_FOLD,
) -> CaptureManifest:
    """The manifest of ``cell``'s results pointer ``raw``, once proven against the catalog.

    ``entry_of`` looks a capture key up in the capture catalog. The pointer is accepted only
    if it parses, names a capture of ``cell``, its own claims hold (its keys and content hash
    recompute, :func:`~diag_assets.core.capture.proof.claim_problems`), and the catalog
    holds that capture as COMPLETE, for the same cell, in the same mode, with the same content
    hash.

    Raises:
        PointerNotProven: any of that does not hold; the message says which, and the fix.
    """
    try:
        manifest = parse_manifest(raw)
    except ValueError as error:
        raise PointerNotProven(cell, str(error), capture_asset) from None
    key = clipped(str(manifest.capture_key))
    if manifest.cell_ref != str(cell):
        raise PointerNotProven(
            cell, f"names a capture of {clipped(str(manifest.cell_ref))} ({key})", capture_asset
        )
    claims = claim_problems(manifest)
    if claims:
        raise PointerNotProven(
            cell, f"names capture {key}, whose manifest does not hold: {claims[0]}", capture_asset
        )
    entry = entry_of(manifest.capture_key)
    if entry is None or entry.key != manifest.capture_key:
        raise PointerNotProven(
            cell,
            f"names capture {key}, which the capture catalog does not hold (retired by the "
            "capture GC, or never committed)",
            capture_asset,
        )
    if entry.status is not CaptureStatus.COMPLETE:
        why = f": {clipped(entry.status_reason, _REASON_CHARS)}" if entry.status_reason else ""
        raise PointerNotProven(
            cell,
            f"names capture {key}, which the capture catalog marks {entry.status.value}{why}",
            capture_asset,
        )
    for what, recorded, pointed in (
        ("cell", entry.cell_ref, manifest.cell_ref),
        ("mode", entry.mode, str(manifest.mode)),
        ("content hash", entry.content_hash, manifest.content_hash),
    ):
        if recorded != pointed:
            raise PointerNotProven(
                cell,
                f"names capture {key} with {what} {clipped(str(pointed))}, but the capture catalog "
                f"records {clipped(str(recorded))}",
                capture_asset,
            )
    return manifest


@dataclass
class PointersInUse:
    """What the results pointers of a store ask the capture GC to keep.

    Attributes:
        keys: The capture keys the pointers name.
        keep_cells: Cells whose pointer could not be read or names another cell: every
            capture of theirs is kept, since which one their diagnostics read is unknown.
        bad: Store key of each pointer that could not be used -> why (never its content).
    """

    keys: set[str] = field(default_factory=set)
    keep_cells: set[str] = field(default_factory=set)
    bad: dict[str, str] = field(default_factory=dict)


def _cell_of_pointer(key: str) -> CellRef | None:
    """The cell a pointer's file is named after (``<cell slug>.json``), or ``None``."""
    name = key.rsplit("/", 1)[-1]
    if not name.endswith(".json"):
        return None
    try:
        return CellRef.from_slug(name.removesuffix(".json"))
    except DiagInputError:
        return None


def pointers_in_use(store: BlobStore, keys: Iterable[str]) -> PointersInUse:
    """Read the results pointers at ``keys`` in ``store``: what they keep, and which are bad.

    A pointer that cannot be parsed, or that names a capture of another cell than the one
    its file is named after, is reported in ``bad`` and its cell's captures all kept; the
    capture a parsed pointer names is kept either way. A pointer whose file name is not a
    cell slug keeps no cell, and is reported. A pointer deleted while being read names
    nothing.
    """
    found = PointersInUse()
    for key in keys:
        cell = _cell_of_pointer(key)
        try:
            raw = store.read_bytes(key)
        except FileNotFoundError:
            continue
        problems = []
        try:
            manifest = parse_manifest(raw)
        except ValueError as error:
            problems.append(str(error))
        else:
            found.keys.add(manifest.capture_key)
            if cell is not None and manifest.cell_ref != str(cell):
                problems.append(f"names a capture of {clipped(str(manifest.cell_ref))}")
        if cell is None:
            problems.append("its file name is not a cell slug, so no cell's captures are kept")
        elif problems:
            found.keep_cells.add(str(cell))
        if problems:
            found.bad[key] = "; ".join(problems)
    return found
