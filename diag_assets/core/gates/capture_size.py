"""The capture cache's size gate: do captures fit the per-capture storage budget?"""

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, Field

from diag_assets.core.errors import DiagInputError
from diag_assets.core.gates.measures import percentile
from diag_assets.core.gates.report import FROZEN, GateReport
from diag_assets.core.storage.catalog.model import CaptureStatus, CatalogEntry

CAPTURE_SIZE_LABEL = "capture size gate"
GIB = 1024**3


class CaptureSizeDecision(StrEnum):
    """Whether captures fit the storage budget."""

    WITHIN_BUDGET = "WITHIN_BUDGET"
    OVER_BUDGET = "OVER_BUDGET"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class CaptureSizeSettings(BaseModel):
    """Threshold of the capture cache's size gate."""

    model_config = FROZEN

    max_capture_bytes: int = Field(
        default=2 * GIB, gt=0, description="Budget for the p95 of bytes per capture."
    )


class CaptureSizeFigures(BaseModel):
    """What the size gate measured."""

    model_config = FROZEN

    n: int
    p50_bytes: float | None
    p95_bytes: float | None
    max_bytes: int | None
    total_bytes: int


class CaptureSizeReport(GateReport[CaptureSizeDecision, CaptureSizeFigures]):
    """The size gate: figures, decision and reasons."""

    gate: str = CAPTURE_SIZE_LABEL
    settings: CaptureSizeSettings

    def heading(self) -> str:
        """The report's title."""
        return f"{self.gate}: bytes per capture"


def capture_bytes(entries: Iterable[CatalogEntry]) -> list[int]:
    """Bytes of every complete capture of the catalog that records its size.

    Args:
        entries: Catalog rows.

    Returns:
        One size per complete capture with known bytes.
    """
    return [
        entry.bytes
        for entry in entries
        if entry.status is CaptureStatus.COMPLETE and entry.bytes is not None
    ]


def capture_size_gate(
    bytes_per_capture: list[int], settings: CaptureSizeSettings
) -> CaptureSizeReport:
    """Do captures fit the per-capture storage budget?

    Args:
        bytes_per_capture: Size of each capture (e.g. :func:`capture_bytes` of the catalog).
        settings: The budget.

    Returns:
        The report: WITHIN_BUDGET when p95 <= ``settings.max_capture_bytes``, OVER_BUDGET
        above, INSUFFICIENT_DATA without any capture.
    """
    bad = [size for size in bytes_per_capture if isinstance(size, bool) or size < 0]
    if bad:
        raise DiagInputError(
            f"Capture sizes {bad[:5]} are not byte counts.", "give sizes as integers >= 0."
        )
    sizes = [float(size) for size in bytes_per_capture]
    n, budget = len(bytes_per_capture), settings.max_capture_bytes
    p95 = percentile(sizes, 95)
    largest = max(bytes_per_capture) if bytes_per_capture else 0
    figures = CaptureSizeFigures(
        n=n,
        p50_bytes=percentile(sizes, 50),
        p95_bytes=p95,
        max_bytes=largest if bytes_per_capture else None,
        total_bytes=sum(bytes_per_capture),
    )
    if p95 is None:
        decision = CaptureSizeDecision.INSUFFICIENT_DATA
        reasons = [
            "0 captures measured, fewer than the minimum 1: piggyback the size on the next "
            "cold audit."
        ]
    elif p95 <= budget:
        decision = CaptureSizeDecision.WITHIN_BUDGET
        reasons = [
            f"p95 of {n} captures is {p95 / GIB:.3f} GiB <= max_capture_bytes "
            f"{budget / GIB:.3f} GiB (largest {largest / GIB:.3f} GiB, total "
            f"{figures.total_bytes / GIB:.3f} GiB)."
        ]
    else:
        decision = CaptureSizeDecision.OVER_BUDGET
        reasons = [
            f"p95 of {n} captures is {p95 / GIB:.3f} GiB > max_capture_bytes "
            f"{budget / GIB:.3f} GiB (largest {largest / GIB:.3f} GiB): storage and "
            "the warm read time need a decision before the capture cache keeps captures this size."
        ]
    return CaptureSizeReport(decision=decision, reasons=reasons, figures=figures, settings=settings)
