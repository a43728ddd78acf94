"""Re-audit reuse: how often the same cells are re-audited (the value of the capture cache).

HIGH or LOW reuse; with LOW reuse and an expensive cold capture the induced-demand note is
attached (a cross-check, never an automatic no-go).
"""

from collections import defaultdict
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from diag_assets.core.gates.history import AUDIT_EVENT, CAPTURE_EVENT, HistoryEvent
from diag_assets.core.gates.measures import in_window, percentile, timed, utc, window_ending
from diag_assets.core.gates.report import (
    FROZEN,
    HistoryGateReport,
    fmt_s,
    fmt_value,
)

REUSE_LABEL = "re-audit reuse gate"


class ReuseDecision(StrEnum):
    """How often the same cells are re-audited."""

    HIGH = "HIGH"
    LOW = "LOW"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class ReuseSettings(BaseModel):
    """Thresholds of the re-audit reuse gate."""

    model_config = FROZEN

    window_days: int = Field(
        default=45, ge=30, le=60, description="Days of audits read (the plan says 30-60)."
    )
    min_audits: int = Field(
        default=5, ge=1, description="Fewer s40_verdict audits than this: no decision."
    )
    high_reuse_pct: float = Field(
        default=30.0, gt=0, le=100, description="Reuse % at or above which reuse is HIGH."
    )
    expensive_cold_s: float = Field(
        default=1800.0,
        gt=0,
        description="A cold capture p50 at or above this attaches the induced-demand note to "
        "LOW reuse.",
    )


class ReuseFigures(BaseModel):
    """What the re-audit reuse gate measured."""

    model_config = FROZEN

    audits: int = Field(description="s40_verdict events in the window.")
    distinct_cells: int
    reaudited_cells: int = Field(description="Cells audited more than once.")
    reruns_per_cell_mean: float | None = Field(description="Mean of (audits - 1) per cell.")
    reruns_per_cell_max: int | None
    gap_hours_median: float | None = Field(description="Hours between audits of one cell.")
    gap_hours_p75: float | None
    gap_hours_p90: float | None
    reuse_pct: float | None = Field(description="(audits - distinct) / audits * 100.")
    cold_captures: int = Field(description="Timed capture events in the window.")
    cold_cost_p50_s: float | None


class ReuseReport(HistoryGateReport[ReuseDecision, ReuseFigures]):
    """The re-audit reuse gate: figures, decision and reasons."""

    gate: str = REUSE_LABEL
    induced_demand_note: bool = False
    settings: ReuseSettings

    def heading(self) -> str:
        """The report's title."""
        return f"{self.gate}: the value of the capture cache, the priority of the capture modes"


def reuse_gate(
    events: list[HistoryEvent], settings: ReuseSettings, *, now: datetime
) -> ReuseReport:
    """How much are the same cells re-audited?

    Args:
        events: The audit history; ``s40_verdict`` (audits) and ``capture`` (cold cost)
            events are read.
        settings: The thresholds.
        now: The end of the window (a naive time is UTC).

    Returns:
        The report: HIGH or LOW reuse, or INSUFFICIENT_DATA below ``settings.min_audits``.
        LOW reuse with an expensive cold capture sets ``induced_demand_note``.
    """
    start, end = window_ending(now, settings.window_days)
    audits = in_window(events, AUDIT_EVENT, start, end)
    by_cell: dict[str, list[datetime]] = defaultdict(list)
    for audit in audits:
        by_cell[audit.cell_ref].append(utc(audit.timestamp))
    reruns = [len(times) - 1 for times in by_cell.values()]
    gaps = []
    for times in by_cell.values():
        ordered = sorted(times)
        gaps += [(b - a).total_seconds() / 3600 for a, b in zip(ordered, ordered[1:], strict=False)]
    cold = [seconds for _, seconds in timed(in_window(events, CAPTURE_EVENT, start, end))]
    n, distinct = len(audits), len(by_cell)
    figures = ReuseFigures(
        audits=n,
        distinct_cells=distinct,
        reaudited_cells=sum(1 for count in reruns if count > 0),
        reruns_per_cell_mean=sum(reruns) / len(reruns) if reruns else None,
        reruns_per_cell_max=max(reruns) if reruns else None,
        gap_hours_median=percentile(gaps, 50),
        gap_hours_p75=percentile(gaps, 75),
        gap_hours_p90=percentile(gaps, 90),
        reuse_pct=(n - distinct) * 100 / n if n else None,
        cold_captures=len(cold),
        cold_cost_p50_s=percentile(cold, 50),
    )

    note = False
    if n < settings.min_audits or figures.reuse_pct is None:
        decision = ReuseDecision.INSUFFICIENT_DATA
        reasons = [
            f"Only {n} s40_verdict audits in the {settings.window_days}-day window, fewer than "
            f"min_audits {settings.min_audits}: reuse cannot be measured yet."
        ]
    elif figures.reuse_pct >= settings.high_reuse_pct:
        decision = ReuseDecision.HIGH
        reasons = [
            f"Reuse is {figures.reuse_pct:.1f}% ({n} audits of {distinct} distinct cells, "
            f"{n - distinct} re-runs) >= high_reuse_pct {settings.high_reuse_pct:.0f}%: HIGH "
            "reuse, the re-audits are where a capture cache wins."
        ]
    else:
        decision = ReuseDecision.LOW
        reasons = [
            f"Reuse is {figures.reuse_pct:.1f}% ({n} audits of {distinct} distinct cells, "
            f"{n - distinct} re-runs) < high_reuse_pct {settings.high_reuse_pct:.0f}%: LOW "
            "reuse, a capture cache has little to serve."
        ]
        cold_p50 = figures.cold_cost_p50_s
        if cold_p50 is None:
            reasons.append(
                "No timed capture event in the window: the induced-demand cross-check (is a "
                "re-audit avoided because a cold capture is expensive?) cannot be made."
            )
        elif cold_p50 >= settings.expensive_cold_s:
            note = True
            reasons.append(
                f"Induced-demand note: a cold capture costs p50 {fmt_s(cold_p50)} "
                f"({cold_p50 / 3600:.2f} h) >= expensive_cold_s "
                f"{fmt_s(settings.expensive_cold_s)}, "
                "so the low reuse may be caused by the cost of a re-audit itself. This is the "
                "plan's qualitative cross-check, not an automatic no-go."
            )
    if figures.gap_hours_median is not None:
        reasons.append(
            f"{figures.reaudited_cells} cells were re-audited (re-runs per cell: mean "
            f"{fmt_value(figures.reruns_per_cell_mean)}, max {figures.reruns_per_cell_max}); gap "
            f"between audits of a cell: median {figures.gap_hours_median:.1f} h, p75 "
            f"{fmt_value(figures.gap_hours_p75)} h, p90 {fmt_value(figures.gap_hours_p90)} h."
        )
    elif n:
        reasons.append("No cell was audited twice in the window: there are no gaps to measure.")
    return ReuseReport(
        decision=decision,
        reasons=reasons,
        figures=figures,
        window_start=start,
        window_end=end,
        induced_demand_note=note,
        settings=settings,
    )
