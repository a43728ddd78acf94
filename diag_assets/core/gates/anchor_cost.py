"""The anchor's cost: is the s22a1 anchor costly enough that the anchor skip is worth wiring?

GO when p50 *or* p95 materially affects the s40 wall time; GO_LIMITED when only the tail
(p95) or an unexplained variance is large; DEFER only when both p50 and p95 are negligible;
INSUFFICIENT_DATA below the minimum count of timed anchor fits.
"""

import math
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from diag_assets.core.gates.history import (
    ANCHOR_EVENT,
    AUDIT_EVENT,
    HistoryEvent,
)
from diag_assets.core.gates.measures import (
    in_window,
    max_min_ratio,
    percentile,
    positive_number,
    timed,
    window_ending,
)
from diag_assets.core.gates.report import (
    FROZEN,
    HistoryGateReport,
    fmt_s,
    fmt_value,
)

ANCHOR_COST_LABEL = "anchor cost gate"


class AnchorCostDecision(StrEnum):
    """Whether the anchor skip is worth wiring."""

    GO = "GO"
    GO_LIMITED = "GO_LIMITED"
    DEFER = "DEFER"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class AnchorCostSettings(BaseModel):
    """Thresholds of the anchor's cost gate (the p95 tail matters as much as the p50)."""

    model_config = FROZEN

    window_days: int = Field(
        default=30, ge=1, le=366, description="Days of history before `now` that are read."
    )
    min_events: int = Field(
        default=5, ge=1, description="Fewer timed s22a1_anchor events than this: no decision."
    )
    material_p50_s: float = Field(
        default=60.0, gt=0, description="A p50 of the anchor's elapsed_s at or above this is GO."
    )
    material_p95_s: float = Field(
        default=300.0, gt=0, description="A p95 of the anchor's elapsed_s at or above this is GO."
    )
    material_share: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="Anchor / (anchor + s40) wall-time share at or above which p50 or p95 is GO.",
    )
    tail_p95_s: float = Field(
        default=90.0,
        ge=60,
        le=120,
        description="A p95 above this (plan: ~60-120 s) is GO_LIMITED when p50 is not material.",
    )
    unexplained_ratio: float = Field(
        default=100.0,
        gt=1,
        description="A max/min variance ratio at or above this (size-normalized when every "
        "event has rows) is GO_LIMITED: unpredictable latency.",
    )


class AnchorCostFigures(BaseModel):
    """What the gate measured: the anchor's cost, how much data size explains, s40's time."""

    model_config = FROZEN

    n: int = Field(description="Timed s22a1_anchor events in the window.")
    untimed: int = Field(description="s22a1_anchor events in the window without elapsed_s.")
    p50_s: float | None
    p95_s: float | None
    min_s: float | None
    max_s: float | None
    mean_s: float | None
    variance_ratio: float | None = Field(description="max_s / min_s (None when min_s is 0).")
    rows_n: int = Field(description="Timed events that carry a positive `rows`.")
    fit_intercept_s: float | None = Field(description="a in elapsed = a + b*rows.")
    fit_slope_s_per_row: float | None = Field(description="b in elapsed = a + b*rows.")
    fit_r: float | None = Field(description="Pearson r between rows and elapsed_s.")
    fit_r2: float | None = Field(description="Share of elapsed_s variance explained by rows.")
    size_normalized_ratio: float | None = Field(description="max/min of elapsed_s / rows.")
    s40_n: int = Field(description="Timed s40_verdict events in the window.")
    s40_p50_s: float | None
    s40_p95_s: float | None
    anchor_share_p50: float | None = Field(description="p50_s / (p50_s + s40_p50_s).")
    anchor_share_p95: float | None = Field(description="p95_s / (p95_s + s40_p95_s).")


class AnchorCostReport(HistoryGateReport[AnchorCostDecision, AnchorCostFigures]):
    """The anchor's cost gate: figures, decision and reasons."""

    gate: str = ANCHOR_COST_LABEL
    settings: AnchorCostSettings

    def heading(self) -> str:
        """The report's title."""
        return f"{self.gate}: cost of the s22a1 anchor (the value of the anchor skip)"


def _least_squares(
    xs: Sequence[float], ys: Sequence[float]
) -> tuple[float | None, float | None, float | None]:
    """Intercept, slope and Pearson r of y = a + b*x; None where the data cannot say."""
    if len(xs) < 2:
        return None, None, None
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    syy = sum((y - mean_y) ** 2 for y in ys)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    if sxx == 0:
        # Every event has the same size: size cannot explain anything about elapsed.
        return None, None, None
    slope = sxy / sxx
    r = sxy / math.sqrt(sxx * syy) if syy > 0 else None
    # Rounding can push |r| a hair past 1 for a perfect fit.
    r = None if r is None else max(-1.0, min(1.0, r))
    return mean_y - slope * mean_x, slope, r


def _share(anchor: float | None, s40: float | None) -> float | None:
    if anchor is None or s40 is None or anchor + s40 <= 0:
        return None
    return anchor / (anchor + s40)


def anchor_cost_gate(
    events: list[HistoryEvent], settings: AnchorCostSettings, *, now: datetime
) -> AnchorCostReport:
    """Is the s22a1 anchor costly enough that skipping it (the anchor skip) is worth wiring?

    Args:
        events: The audit history; ``s22a1_anchor`` and ``s40_verdict`` events are read.
        settings: The thresholds.
        now: The end of the window (a naive time is UTC).

    Returns:
        The report. GO when p50 or p95 is material (absolute, or as a share of the anchor +
        s40 wall time); GO_LIMITED when only the tail p95 or the unexplained variance is
        large; DEFER when both p50 and p95 are negligible; INSUFFICIENT_DATA below
        ``settings.min_events``.
    """
    start, end = window_ending(now, settings.window_days)
    anchors = in_window(events, ANCHOR_EVENT, start, end)
    timed_anchors = timed(anchors)
    elapsed = [seconds for _, seconds in timed_anchors]
    sized = [
        (rows, seconds)
        for event, seconds in timed_anchors
        if (rows := positive_number(event.fields.get("rows"))) is not None
    ]
    intercept, slope, r = _least_squares([x for x, _ in sized], [y for _, y in sized])
    s40 = [seconds for _, seconds in timed(in_window(events, AUDIT_EVENT, start, end))]

    p50, p95 = percentile(elapsed, 50), percentile(elapsed, 95)
    s40_p50, s40_p95 = percentile(s40, 50), percentile(s40, 95)
    figures = AnchorCostFigures(
        n=len(elapsed),
        untimed=len(anchors) - len(elapsed),
        p50_s=p50,
        p95_s=p95,
        min_s=min(elapsed) if elapsed else None,
        max_s=max(elapsed) if elapsed else None,
        mean_s=sum(elapsed) / len(elapsed) if elapsed else None,
        variance_ratio=max_min_ratio(elapsed),
        rows_n=len(sized),
        fit_intercept_s=intercept,
        fit_slope_s_per_row=slope,
        fit_r=r,
        fit_r2=None if r is None else r * r,
        size_normalized_ratio=max_min_ratio([seconds / rows for rows, seconds in sized]),
        s40_n=len(s40),
        s40_p50_s=s40_p50,
        s40_p95_s=s40_p95,
        anchor_share_p50=_share(p50, s40_p50),
        anchor_share_p95=_share(p95, s40_p95),
    )
    decision, reasons = _decide(figures, settings)
    return AnchorCostReport(
        decision=decision,
        reasons=reasons,
        figures=figures,
        window_start=start,
        window_end=end,
        settings=settings,
    )


def _decide(f: AnchorCostFigures, s: AnchorCostSettings) -> tuple[AnchorCostDecision, list[str]]:
    if f.n < s.min_events or f.p50_s is None or f.p95_s is None:
        return AnchorCostDecision.INSUFFICIENT_DATA, [
            f"Only {f.n} timed s22a1_anchor events in the {s.window_days}-day window, fewer "
            f"than min_events {s.min_events}: the anchor's cost cannot be judged yet."
        ]

    context = _context(f, s)
    material = []
    if f.p50_s >= s.material_p50_s:
        material.append(
            f"The anchor's p50 is {fmt_s(f.p50_s)} >= material_p50_s {fmt_s(s.material_p50_s)} "
            "(rule: material p50 -> GO)."
        )
    if f.anchor_share_p50 is not None and f.anchor_share_p50 >= s.material_share:
        material.append(
            f"At p50 the anchor is {f.anchor_share_p50:.2f} of the anchor + s40 wall time "
            f"({fmt_s(f.p50_s)} vs s40 {fmt_s(f.s40_p50_s)}) >= material_share "
            f"{s.material_share:.2f} (rule: material p50 share -> GO)."
        )
    if f.p95_s >= s.material_p95_s:
        material.append(
            f"The anchor's p95 is {fmt_s(f.p95_s)} >= material_p95_s {fmt_s(s.material_p95_s)} "
            "(rule: material p95 -> GO; a low p50 alone does not defer the anchor skip)."
        )
    if f.anchor_share_p95 is not None and f.anchor_share_p95 >= s.material_share:
        material.append(
            f"At p95 the anchor is {f.anchor_share_p95:.2f} of the anchor + s40 wall time "
            f"({fmt_s(f.p95_s)} vs s40 {fmt_s(f.s40_p95_s)}) >= material_share "
            f"{s.material_share:.2f} (rule: material p95 share -> GO)."
        )
    if material:
        return AnchorCostDecision.GO, [*material, *context]

    ratio, ratio_name = _variance(f)
    limited = []
    if f.p95_s > s.tail_p95_s:
        limited.append(
            f"p50 {fmt_s(f.p50_s)} is not material, but p95 {fmt_s(f.p95_s)} > tail_p95_s "
            f"{fmt_s(s.tail_p95_s)}: GO with a limited rollout, the skip stabilizes the tail "
            "(rule: tail p95 -> GO_LIMITED)."
        )
    if ratio is not None and ratio >= s.unexplained_ratio:
        limited.append(
            f"The {ratio_name} is {ratio:.1f}x >= unexplained_ratio {s.unexplained_ratio:.0f}x: "
            "unexplained variance makes the anchor's latency unpredictable "
            "(rule: unexplained variance -> GO_LIMITED)."
        )
    if limited:
        return AnchorCostDecision.GO_LIMITED, [*limited, *context]

    ratio_text = (
        f"the {ratio_name} is {ratio:.1f}x < {s.unexplained_ratio:.0f}x"
        if ratio is not None
        else f"the {ratio_name} is undefined (a zero elapsed_s or fewer than 2 events)"
    )
    return AnchorCostDecision.DEFER, [
        f"Both p50 {fmt_s(f.p50_s)} (< material_p50_s {fmt_s(s.material_p50_s)}) and p95 "
        f"{fmt_s(f.p95_s)} (< material_p95_s {fmt_s(s.material_p95_s)}, <= tail_p95_s "
        f"{fmt_s(s.tail_p95_s)}) are negligible, no share reaches {s.material_share:.2f}, and "
        f"{ratio_text}: DEFER (the rule defers only when both p50 and p95 are negligible).",
        *context,
    ]


def _variance(f: AnchorCostFigures) -> tuple[float | None, str]:
    """The variance ratio the decision uses, and its name for the reasons."""
    if f.rows_n == f.n and f.size_normalized_ratio is not None:
        return f.size_normalized_ratio, "size-normalized variance ratio (max/min of elapsed_s/rows)"
    return (
        f.variance_ratio,
        f"raw max/min variance ratio (rows on {f.rows_n} of {f.n} events, so data size "
        "cannot be factored out)",
    )


def _context(f: AnchorCostFigures, s: AnchorCostSettings) -> list[str]:
    context = []
    if f.s40_n == 0:
        context.append(
            "No timed s40_verdict event in the window: the anchor's share of the s40 wall time "
            "is unknown, so p50 and p95 are judged against the absolute thresholds only."
        )
    if f.fit_r2 is not None:
        context.append(
            f"Data size explains r^2 = {f.fit_r2:.2f} of the anchor's elapsed_s "
            f"(least squares elapsed = a + b*rows over {f.rows_n} events, r = {f.fit_r:.2f}); "
            f"raw max/min ratio {fmt_value(f.variance_ratio)}x, size-normalized "
            f"{fmt_value(f.size_normalized_ratio)}x."
        )
    else:
        context.append(
            f"Data size cannot be examined: {f.rows_n} of {f.n} events carry rows, and a fit "
            "needs at least 2 with different row counts and elapsed times."
        )
    if f.untimed:
        context.append(f"{f.untimed} s22a1_anchor events without elapsed_s were ignored.")
    return context
