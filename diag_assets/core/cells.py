"""Cells: one market symbol x one walk-forward fold of a universe.

A cell is named by a ``cell_ref`` such as ``defi_top5/UNIUSDC/fold-3``. The ref is an
identifier, never a path fragment: it is checked against a strict pattern before anything
uses it, so a request cannot smuggle ``..``, slashes or shell characters into a store path.
Every pattern here is matched against the whole text (``fullmatch``): a trailing newline or
a space around a name is refused, never trimmed.
"""

import re
from dataclasses import dataclass

from diag_assets.core.errors import DiagInputError, quoted

UNIVERSE_PATTERN = re.compile(r"[a-z][a-z0-9_]{1,31}")
SYMBOL_PATTERN = re.compile(r"[A-Z0-9]{2,24}")
FOLD_PATTERN = re.compile(r"fold-(?P<fold>0|[1-9][0-9]?)")
CELL_REF_PATTERN = re.compile(
    rf"(?P<universe>{UNIVERSE_PATTERN.pattern})/(?P<symbol>{SYMBOL_PATTERN.pattern})/"
    rf"{FOLD_PATTERN.pattern}"
)
CELL_REF_EXAMPLE = "defi_top5/UNIUSDC/fold-3"


@dataclass(frozen=True, order=True)
class CellRef:
    """A validated cell identifier: universe, symbol and fold index."""

    universe: str
    symbol: str
    fold: int

    def __post_init__(self) -> None:
        if not isinstance(self.universe, str) or not UNIVERSE_PATTERN.fullmatch(self.universe):
            raise DiagInputError(
                f"Universe {quoted(self.universe)} is not a valid universe name.",
                f"use lowercase letters, digits and '_' (pattern {UNIVERSE_PATTERN.pattern}).",
            )
        if not isinstance(self.symbol, str) or not SYMBOL_PATTERN.fullmatch(self.symbol):
            raise DiagInputError(
                f"Symbol {quoted(self.symbol)} is not a valid symbol.",
                f"use uppercase letters and digits only, e.g. UNIUSDC "
                f"(pattern {SYMBOL_PATTERN.pattern}).",
            )
        if isinstance(self.fold, bool) or not isinstance(self.fold, int):
            raise DiagInputError(
                f"Fold {quoted(self.fold)} is not a fold index.", "use a fold index from 0 to 99."
            )
        if not 0 <= self.fold <= 99:
            raise DiagInputError(
                f"Fold {self.fold} is out of range.", "use a fold index from 0 to 99."
            )

    @classmethod
    def parse(cls, text: str) -> "CellRef":
        """Parse ``universe/SYMBOL/fold-K``; anything else is refused with the expected form."""
        if not isinstance(text, str):
            raise DiagInputError(
                f"A cell_ref must be a string, got {type(text).__name__}.",
                f"pass a string such as {CELL_REF_EXAMPLE!r}.",
            )
        match = CELL_REF_PATTERN.fullmatch(text)
        if match is None:
            raise DiagInputError(
                f"Malformed cell_ref {quoted(text)}: a cell_ref is 'universe/SYMBOL/fold-K' and "
                "never a path (no '..', no leading '/', no extra segments, no spaces or line "
                "breaks).",
                f"write it like {CELL_REF_EXAMPLE!r}.",
            )
        return cls(match["universe"], match["symbol"], int(match["fold"]))

    def __str__(self) -> str:
        return f"{self.universe}/{self.symbol}/fold-{self.fold}"

    @property
    def slug(self) -> str:
        """A filesystem- and URL-safe form for store keys: ``defi_top5__UNIUSDC__fold-3``."""
        return f"{self.universe}__{self.symbol}__fold-{self.fold}"

    @classmethod
    def from_slug(cls, slug: str) -> "CellRef":
        """The cell whose :attr:`slug` is ``slug``; anything else is refused.

        A symbol has no ``_``, so the last two ``__`` separate universe, symbol and fold.
        """
        parts = slug.rsplit("__", 2)
        if len(parts) != 3 or not CELL_REF_PATTERN.fullmatch("/".join(parts)):
            raise DiagInputError(
                f"{slug[:80]!r} is not a cell slug ('universe__SYMBOL__fold-K').",
                "name the file after its cell, e.g. 'defi_top5__UNIUSDC__fold-3'.",
            )
        return cls.parse("/".join(parts))


def fold_partition_key(fold: int) -> str:
    """The partition key of fold ``fold`` in the cells' fold dimension (``fold-3``)."""
    return f"fold-{fold}"


def parse_fold_partition_key(key: str) -> int:
    """Inverse of :func:`fold_partition_key`."""
    match = FOLD_PATTERN.fullmatch(key) if isinstance(key, str) else None
    if match is None:
        raise DiagInputError(
            f"Fold partition key {quoted(key)} is malformed.", "use a key like 'fold-3'."
        )
    return int(match["fold"])
