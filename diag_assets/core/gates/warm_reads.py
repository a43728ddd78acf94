"""Warm reads of the capture cache: is a cold capture served back warm, intact?

For each fold of the shared fixture set the capture is requested twice in a row: the first
request is the cold leg (or already a HIT when an earlier gate captured the fold), the second
is the warm leg. The gate passes when every warm leg is a HIT, served within the budget, with
the content hash of the first leg and X/y whose canonical hashes were recomputed on load and
matched.
Single-flight under contention is measured by ``python -m benchmarks contention``.
"""

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.gates.report import GateReport, Table

WARM_READ_LABEL = "warm-read gate"


class WarmReadDecision(StrEnum):
    """The gate's outcome."""

    PASS = "PASS"
    FAIL = "FAIL"


class WarmRead(BaseModel):
    """One fixture fold, requested cold then warm."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    first_outcome: str
    first_s: float
    warm_outcome: str
    warm_s: float
    first_content_hash: str
    warm_content_hash: str
    verified_on_load: bool


class WarmReadFigures(BaseModel):
    """The numbers behind the decision."""

    model_config = ConfigDict(frozen=True)

    folds: int
    cold_legs: int
    max_warm_s: float
    budget_s: float


class WarmReadReport(GateReport[WarmReadDecision, WarmReadFigures]):
    """Warm reads over the fixture folds."""

    gate: str = WARM_READ_LABEL
    reads: list[WarmRead] = Field(default_factory=list)

    def tables(self) -> list[Table]:
        """One row per fold: both legs and whether they served the same content."""
        rows = [
            (
                read.cell_ref,
                f"{read.first_outcome} {read.first_s:.2f} s",
                f"{read.warm_outcome} {read.warm_s:.3f} s",
                "yes" if read.first_content_hash == read.warm_content_hash else "NO",
            )
            for read in self.reads
        ]
        return [Table(("fold", "first leg", "warm leg", "same content"), rows)]


def warm_read_gate(reads: Sequence[WarmRead], *, budget_s: float) -> WarmReadReport:
    """Decide the warm-read gate (see the module docstring); every failing fold is a reason."""
    problems = []
    for read in reads:
        if read.warm_outcome != "HIT":
            problems.append(f"{read.cell_ref}: the warm leg was {read.warm_outcome}, not HIT.")
        if read.warm_s > budget_s:
            problems.append(
                f"{read.cell_ref}: the warm leg took {read.warm_s:.1f} s, over {budget_s:g} s."
            )
        if read.warm_content_hash != read.first_content_hash:
            problems.append(f"{read.cell_ref}: the warm leg served other content.")
        if not read.verified_on_load:
            problems.append(f"{read.cell_ref}: X/y failed their canonical hashes on load.")
    if not reads:
        problems.append("The warm-read gate ran on 0 folds; nothing is proven.")
    figures = WarmReadFigures(
        folds=len(reads),
        cold_legs=sum(read.first_outcome != "HIT" for read in reads),
        max_warm_s=round(max((read.warm_s for read in reads), default=0.0), 3),
        budget_s=budget_s,
    )
    if problems:
        return WarmReadReport(
            decision=WarmReadDecision.FAIL, reasons=problems, figures=figures, reads=list(reads)
        )
    reasons = [
        f"All {len(reads)} fixture folds were served warm (HIT) with the content of their "
        f"first request, X/y verified on load; slowest warm leg {figures.max_warm_s:.3f} s "
        f"(budget {budget_s:g} s).",
        f"{figures.cold_legs} fold(s) were captured cold in this run; the others were already "
        "in the cache (the shared fixture set).",
    ]
    return WarmReadReport(
        decision=WarmReadDecision.PASS, reasons=reasons, figures=figures, reads=list(reads)
    )
