"""Latest per-cell results of each diagnostic, as JSON in a blob store.

``results/<asset>/<cell slug>.json`` holds the newest result of ``asset`` for a cell. The
Dagster event log keeps the history; this is what the next asset in the graph reads, so an
asset that must not read an upstream result (a skipped anchor) simply does not call
:meth:`ResultStore.read`.
"""

from typing import TypeVar

from pydantic import BaseModel

from diag_assets.core.cells import CellRef
from diag_assets.core.storage.blob import BlobStore

ModelT = TypeVar("ModelT", bound=BaseModel)


class ResultStore:
    """Pydantic results keyed by (asset name, cell)."""

    def __init__(self, store: BlobStore, prefix: str = "results") -> None:
        self.store = store
        self.prefix = prefix

    def key_of(self, asset: str, cell: CellRef) -> str:
        """Store key of a cell's latest result of ``asset``."""
        return f"{self.prefix}/{asset}/{cell.slug}.json"

    def write(self, asset: str, cell: CellRef, result: BaseModel) -> str:
        """Replace the cell's latest result atomically; returns its URI."""
        key = self.key_of(asset, cell)
        self.store.write_bytes(key, result.model_dump_json(indent=2).encode())
        return self.store.uri(key)

    def read_raw(self, asset: str, cell: CellRef) -> bytes | None:
        """The cell's latest result of ``asset`` as stored, or ``None`` if it has none."""
        try:
            return self.store.read_bytes(self.key_of(asset, cell))
        except FileNotFoundError:
            return None

    def read(self, asset: str, cell: CellRef, model: type[ModelT]) -> ModelT | None:
        """The cell's latest result of ``asset``, or ``None`` if it has none."""
        try:
            raw = self.store.read_bytes(self.key_of(asset, cell))
        except FileNotFoundError:
            return None
        return model.model_validate_json(raw)
