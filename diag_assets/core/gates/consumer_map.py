"""The consumer map: what each diagnostic may read of a capture.

An undeclared diagnostic is ``unknown`` and is served a full replay.
"""

from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import BaseModel, Field

from diag_assets.core.diagnostics.consumers import CaptureRequirement
from diag_assets.core.gates.report import (
    FROZEN,
    GateReport,
    Table,
)

CONSUMER_MAP_LABEL = "consumer map"


class ConsumerMapDecision(StrEnum):
    """Whether every diagnostic declares what it reads of a capture."""

    MAPPED = "MAPPED"
    UNKNOWN_PRESENT = "UNKNOWN_PRESENT"


ALLOWED_BY_REQUIREMENT = {
    CaptureRequirement.XY_ONLY: "anchor skip allowed; dataset_only allowed",
    CaptureRequirement.TRIAL_DYNAMICS: "full_replay; needs the anchor/trial log",
    CaptureRequirement.UNKNOWN: "full_replay (undeclared)",
}


class ConsumerMapRow(BaseModel):
    """One diagnostic of the consumer map."""

    model_config = FROZEN

    diagnostic: str
    requirement: CaptureRequirement
    declared: bool = Field(description="Whether the diagnostic is in the registry at all.")
    allowed: str = Field(description="What the diagnostic may run on.")


class ConsumerMapFigures(BaseModel):
    """Counts of the consumer map."""

    model_config = FROZEN

    diagnostics: int
    xy_only: int
    trial_dynamics: int
    unknown: int
    xy_only_diagnostics: list[str]


class ConsumerMapReport(GateReport[ConsumerMapDecision, ConsumerMapFigures]):
    """The consumer map: its rows, figures, decision and reasons."""

    gate: str = CONSUMER_MAP_LABEL
    rows: list[ConsumerMapRow]

    def heading(self) -> str:
        """The report's title."""
        return f"{self.gate}: where the anchor skip and dataset_only are allowed"

    def tables(self) -> list[Table]:
        """The map: one row per diagnostic."""
        header = ("diagnostic", "requirement", "may use")
        return [
            Table(header, [(row.diagnostic, row.requirement, row.allowed) for row in self.rows])
        ]


def consumer_map_gate(
    requirements: Mapping[str, CaptureRequirement], known_diagnostics: Iterable[str]
) -> ConsumerMapReport:
    """Classify every diagnostic consumer; undeclared ones need a full replay.

    Args:
        requirements: The consumer registry (``DIAGNOSTIC_CAPTURE_REQUIREMENTS``).
        known_diagnostics: Every diagnostic that exists, registered or not.

    Returns:
        The map: MAPPED when every diagnostic declares ``xy_only`` or ``trial_dynamics``,
        else UNKNOWN_PRESENT, naming the rest (they are treated as full_replay).
    """
    names = sorted(set(known_diagnostics) | set(requirements))
    rows = []
    for name in names:
        declared = name in requirements
        requirement = (
            CaptureRequirement(requirements[name]) if declared else CaptureRequirement.UNKNOWN
        )
        rows.append(
            ConsumerMapRow(
                diagnostic=name,
                requirement=requirement,
                declared=declared,
                allowed=ALLOWED_BY_REQUIREMENT[requirement],
            )
        )
    by_requirement = {
        requirement: [row.diagnostic for row in rows if row.requirement is requirement]
        for requirement in CaptureRequirement
    }
    unknown = by_requirement[CaptureRequirement.UNKNOWN]
    xy_only = by_requirement[CaptureRequirement.XY_ONLY]
    figures = ConsumerMapFigures(
        diagnostics=len(rows),
        xy_only=len(xy_only),
        trial_dynamics=len(by_requirement[CaptureRequirement.TRIAL_DYNAMICS]),
        unknown=len(unknown),
        xy_only_diagnostics=xy_only,
    )
    summary = (
        f"{len(rows)} diagnostics: {figures.xy_only} xy_only "
        f"({', '.join(xy_only) or 'none'}), {figures.trial_dynamics} trial_dynamics, "
        f"{figures.unknown} unknown."
    )
    if unknown:
        undeclared = [name for name in unknown if name not in requirements]
        registered_unknown = [name for name in unknown if name in requirements]
        detail = []
        if undeclared:
            detail.append(f"undeclared: {', '.join(undeclared)}")
        if registered_unknown:
            detail.append(f"registered as unknown: {', '.join(registered_unknown)}")
        return ConsumerMapReport(
            decision=ConsumerMapDecision.UNKNOWN_PRESENT,
            reasons=[
                f"{len(unknown)} diagnostics have no known requirement ({'; '.join(detail)}): "
                "they are treated as full_replay, never skipped nor run on dataset_only.",
                summary,
            ],
            figures=figures,
            rows=rows,
        )
    return ConsumerMapReport(
        decision=ConsumerMapDecision.MAPPED,
        reasons=[f"Every diagnostic declares what it reads. {summary}"],
        figures=figures,
        rows=rows,
    )
