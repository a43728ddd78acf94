"""Gate records: what a gate leaves for others to read, where it is stored, how it is read.

Two records steer the capture modes. The prep/train seam gate stores a :class:`SeamRecord`
and the release parity gate a :class:`ReleaseGateRecord`; the capture mode policy
(:mod:`diag_assets.core.capture.mode_policy`) reads both before it serves ``dataset_only``.
Every gate also stores its report as ``gates/<asset name>.json``: the exit report reads the
history gates' reports back, and the gates judged on the shared fixture set store a
:class:`GateVerdict` there.

Everything goes through a :class:`~diag_assets.core.storage.blob.BlobStore` (the Dagster
layer passes ``artifacts.blob_store()``), so a write is atomic: a reader sees the old record
or the new one. The keys never change, because records stored by earlier versions must stay
readable. A stored record or report that no longer parses is a :class:`DiagInputError` that
names its key and the asset that rewrites it.
"""

from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from diag_assets.core.errors import DiagInputError
from diag_assets.core.names import RELEASE_PARITY_GATE, SEAM_GATE
from diag_assets.core.storage.blob import BlobStore

REPORTS = "gates"
SEAM_RECORD = f"{REPORTS}/{SEAM_GATE}.record.json"
RELEASE_GATE_RECORD = f"{REPORTS}/{RELEASE_PARITY_GATE}.record.json"

ModelT = TypeVar("ModelT", bound=BaseModel)


class ReleaseGateRecord(BaseModel):
    """What the release parity gate stores: the evidence a dataset_only default needs."""

    model_config = ConfigDict(frozen=True)

    recipe_version: str
    passed: bool
    folds: int
    hash_parity: bool
    verdict_parity: bool
    evaluated_at: datetime
    reasons: list[str]


class SeamRecord(BaseModel):
    """What the prep/train seam gate stores: whether this recipe version has a seam."""

    model_config = ConfigDict(frozen=True)

    recipe_version: str
    decision: str
    reasons: list[str]
    evaluated_at: datetime

    @property
    def seam(self) -> bool:
        """The gate found a seam."""
        return self.decision == "SEAM"


class GateVerdict(BaseModel):
    """What a gate judged on the shared fixture set stores for the exit report."""

    decision: str
    passed: bool
    markdown: str


# The asset that writes each record, named in the fix when a stored record does not parse.
_RECORDS: dict[type[BaseModel], tuple[str, str]] = {
    SeamRecord: (SEAM_RECORD, SEAM_GATE),
    ReleaseGateRecord: (RELEASE_GATE_RECORD, RELEASE_PARITY_GATE),
}


def report_key(name: str) -> str:
    """Where the report of the gate asset ``name`` is stored."""
    return f"{REPORTS}/{name}.json"


def _read(store: BlobStore, key: str, model: type[ModelT], written_by: str) -> ModelT | None:
    try:
        raw = store.read_bytes(key)
    except FileNotFoundError:
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the top level"
        # The sentence says what a person needs; pydantic's traceback would bury it.
        raise DiagInputError(
            f"The stored gate record {key} ({store.uri(key)}) does not parse as "
            f"{model.__name__}: {error.error_count()} problem(s), the first at {where}: "
            f"{first['msg']}.",
            f"materialize {written_by} again to rewrite it; until then, delete the file to "
            "treat the gate as not run.",
        ) from None


def read_seam(store: BlobStore) -> SeamRecord | None:
    """The latest prep/train seam record, or None if the seam gate never ran."""
    key, written_by = _RECORDS[SeamRecord]
    return _read(store, key, SeamRecord, written_by)


def read_release_gate(store: BlobStore) -> ReleaseGateRecord | None:
    """The latest release parity record, or None if the release parity gate never ran."""
    key, written_by = _RECORDS[ReleaseGateRecord]
    return _read(store, key, ReleaseGateRecord, written_by)


def write_record(store: BlobStore, record: SeamRecord | ReleaseGateRecord) -> str:
    """Store a gate record under its key, replacing the previous one; returns its URI."""
    key, _ = _RECORDS[type(record)]
    store.write_bytes(key, record.model_dump_json(indent=2).encode())
    return store.uri(key)


def write_report(store: BlobStore, name: str, report: BaseModel) -> str:
    """Store the report of the gate asset ``name`` as indented JSON; returns its URI."""
    key = report_key(name)
    store.write_bytes(key, report.model_dump_json(indent=2).encode())
    return store.uri(key)


def read_report(store: BlobStore, name: str, model: type[ModelT]) -> ModelT | None:
    """The stored report of the gate asset ``name``, or None if it never ran."""
    return _read(store, report_key(name), model, name)
