"""The consumer map: every asset that reads a capture, and what it may read of it.

The readers are every asset of the code location that depends on the capture, collected when
the code location is composed, each with the diagnostic it declares and that diagnostic's
registered requirement. A reader that declares no diagnostic, or one the registry does not
know, is ``unknown`` and is served a full replay.
"""

from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import BaseModel, Field

from diag_assets.core.diagnostics.consumers import CaptureReader, CaptureRequirement
from diag_assets.core.gates.report import (
    FROZEN,
    GateReport,
    Table,
)

CONSUMER_MAP_LABEL = "consumer map"


class ConsumerMapDecision(StrEnum):
    """Whether every asset that reads a capture declares what it reads of it."""

    MAPPED = "MAPPED"
    UNKNOWN_PRESENT = "UNKNOWN_PRESENT"


ALLOWED_BY_REQUIREMENT = {
    CaptureRequirement.XY_ONLY: "anchor skip allowed; dataset_only allowed",
    CaptureRequirement.TRIAL_DYNAMICS: "full_replay; needs the anchor/trial log",
    CaptureRequirement.UNKNOWN: "full_replay (undeclared)",
}


class ConsumerMapRow(BaseModel):
    """One asset that reads a capture, and what it may read of it."""

    model_config = FROZEN

    asset: str = Field(default="", description="The asset that reads the capture.")
    diagnostic: str | None = Field(description="The diagnostic it declares it runs, if any.")
    requirement: CaptureRequirement
    declared: bool = Field(description="Whether the diagnostic is in the registry at all.")
    allowed: str = Field(description="What the asset may run on.")


class ConsumerMapFigures(BaseModel):
    """Counts of the consumer map."""

    model_config = FROZEN

    diagnostics: int = Field(description="Assets that read the capture.")
    xy_only: int
    trial_dynamics: int
    unknown: int
    xy_only_diagnostics: list[str]
    unknown_assets: list[str] = Field(default_factory=list)


class ConsumerMapReport(GateReport[ConsumerMapDecision, ConsumerMapFigures]):
    """The consumer map: its rows, figures, decision and reasons."""

    gate: str = CONSUMER_MAP_LABEL
    rows: list[ConsumerMapRow]

    def heading(self) -> str:
        """The report's title."""
        return f"{self.gate}: where the anchor skip and dataset_only are allowed"

    def tables(self) -> list[Table]:
        """The map: one row per asset that reads the capture."""
        header = ("asset", "diagnostic", "requirement", "may use")
        return [
            Table(
                header,
                [
                    (row.asset, row.diagnostic or "none declared", row.requirement, row.allowed)
                    for row in self.rows
                ],
            )
        ]


def _row(reader: CaptureReader, requirements: Mapping[str, CaptureRequirement]) -> ConsumerMapRow:
    requirement = reader.requirement(requirements)
    return ConsumerMapRow(
        asset=reader.asset,
        diagnostic=reader.diagnostic,
        requirement=requirement,
        declared=reader.diagnostic is not None and reader.diagnostic in requirements,
        allowed=ALLOWED_BY_REQUIREMENT[requirement],
    )


def _unknown_detail(rows: list[ConsumerMapRow]) -> str:
    """Why each unknown reader is unknown, grouped by cause."""
    causes = {
        "no diagnostic declared": [row.asset for row in rows if row.diagnostic is None],
        "diagnostic not registered": [
            f"{row.asset} ({row.diagnostic})"
            for row in rows
            if row.diagnostic is not None and not row.declared
        ],
        "registered as unknown": [
            f"{row.asset} ({row.diagnostic})"
            for row in rows
            if row.declared and row.requirement is CaptureRequirement.UNKNOWN
        ],
    }
    return "; ".join(f"{cause}: {', '.join(names)}" for cause, names in causes.items() if names)


def consumer_map_gate(
    readers: Iterable[CaptureReader], requirements: Mapping[str, CaptureRequirement]
) -> ConsumerMapReport:
    """Classify every asset that reads a capture; unknown readers need a full replay.

    Args:
        readers: Every asset downstream of the capture in the code location, with the
            diagnostic it declares (``None`` when it declares none).
        requirements: The consumer registry (``DIAGNOSTIC_CAPTURE_REQUIREMENTS``).

    Returns:
        The map: MAPPED when every reader runs a diagnostic registered ``xy_only`` or
        ``trial_dynamics``, else UNKNOWN_PRESENT, naming the other readers (they are served a
        full replay).
    """
    rows = [_row(reader, requirements) for reader in sorted(set(readers))]
    by_requirement = {
        requirement: [row for row in rows if row.requirement is requirement]
        for requirement in CaptureRequirement
    }
    unknown = by_requirement[CaptureRequirement.UNKNOWN]
    xy_only = sorted(
        {row.diagnostic or row.asset for row in by_requirement[CaptureRequirement.XY_ONLY]}
    )
    figures = ConsumerMapFigures(
        diagnostics=len(rows),
        xy_only=len(by_requirement[CaptureRequirement.XY_ONLY]),
        trial_dynamics=len(by_requirement[CaptureRequirement.TRIAL_DYNAMICS]),
        unknown=len(unknown),
        xy_only_diagnostics=xy_only,
        unknown_assets=[row.asset for row in unknown],
    )
    summary = (
        f"{len(rows)} assets read the capture: {figures.xy_only} xy_only "
        f"({', '.join(xy_only) or 'none'}), {figures.trial_dynamics} trial_dynamics, "
        f"{figures.unknown} unknown."
    )
    if unknown:
        return ConsumerMapReport(
            decision=ConsumerMapDecision.UNKNOWN_PRESENT,
            reasons=[
                f"{len(unknown)} assets read the capture without a known requirement "
                f"({_unknown_detail(rows)}): they are served a full replay, never run with "
                "the anchor skipped nor on dataset_only.",
                summary,
            ],
            figures=figures,
            rows=rows,
        )
    return ConsumerMapReport(
        decision=ConsumerMapDecision.MAPPED,
        reasons=[
            f"Every asset that reads the capture declares a registered diagnostic. {summary}"
            if rows
            else "No asset of this code location reads the capture."
        ],
        figures=figures,
        rows=rows,
    )
