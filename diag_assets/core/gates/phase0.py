"""Phase-0 gates: the recorded numbers and decisions that order the three levers.

Every gate reads plain data (the audit history of :mod:`diag_assets.core.gates.history`, the
consumer registry, the catalog's bytes per capture) and returns a frozen report with the
figures it computed, a decision and the sentences that explain it. Thresholds live in frozen
settings models so the Dagster layer can expose them as run config. Too little data is never
turned into a verdict: it is ``INSUFFICIENT_DATA``, with the count and the minimum.

The gates follow the plan's round-12 rules:

- **G-B7** (cost of the s22a1 anchor, Lever #2's value gate): GO when p50 *or* p95 materially
  affects the s40 wall time; GO_LIMITED when only the tail (p95) or an unexplained variance is
  large; DEFER only when both p50 and p95 are negligible.
- **G-A1** (re-audit reuse): HIGH or LOW reuse; with LOW reuse and an expensive cold capture
  the induced-demand note is attached (a cross-check, never an automatic no-go).
- **G-C0** (consumer map): what each diagnostic may use; undeclared means full_replay.
- **Lever #1 entry gates**: Gate 2 (drift rate, resolves the default ``check_drift`` policy,
  D11) and Gate 3 (bytes per capture against a budget).
- **Phase-0 exit** (:func:`phase0_exit`): Lever #2 first when G-B7 says so, then Lever #1 on
  HIGH reuse, Lever #3 when its correctness gates (G-C0, G-C4, G-C4b) pass.

Percentiles interpolate linearly between closest ranks (numpy's default), so the p95 of a
handful of events lies between the two largest of them.
"""

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from diag_assets.core.diagnostics.consumers import CaptureRequirement
from diag_assets.core.errors import DiagInputError
from diag_assets.core.gates.history import (
    ANCHOR_EVENT,
    AUDIT_EVENT,
    CAPTURE_EVENT,
    DRIFT_EVENT,
    HistoryEvent,
)
from diag_assets.core.storage.catalog.model import CaptureStatus, CatalogEntry

GATE_B7 = "G-B7"
GATE_A1 = "G-A1"
GATE_C0 = "G-C0"
GATE_C4 = "G-C4"
GATE_C4B = "G-C4b"
GATE_DRIFT = "L1-G2"
GATE_SIZE = "L1-G3"
PHASE0_EXIT = "PHASE0-EXIT"

LEVER_CAPTURE_CACHE = "lever1"
LEVER_SKIP_ANCHOR = "lever2"
LEVER_CAPTURE_MODES = "lever3"
LEVER_NAMES = {
    LEVER_CAPTURE_CACHE: "Lever #1 (capture cache)",
    LEVER_SKIP_ANCHOR: "Lever #2 (optional s22a1 anchor)",
    LEVER_CAPTURE_MODES: "Lever #3 (dataset_only capture)",
}

GIB = 1024**3

_FROZEN = ConfigDict(frozen=True, extra="forbid")


# --- shared helpers -----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation; None for no values.

    Args:
        values: The sample, in any order.
        q: The percentile, between 0 and 100.

    Returns:
        The interpolated percentile, or None when ``values`` is empty.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q={q} is outside [0, 100].")
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _utc(moment: datetime) -> datetime:
    # Same convention as history.parse_timestamp: a naive time is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _window(now: datetime, days: int) -> tuple[datetime, datetime]:
    end = _utc(now)
    return end - timedelta(days=days), end


def _in_window(
    events: Iterable[HistoryEvent], name: str, start: datetime, end: datetime
) -> list[HistoryEvent]:
    # Events stamped after `now` are excluded too: a gate dated `now` cannot have seen them.
    return [e for e in events if e.event == name and start <= _utc(e.timestamp) <= end]


def _elapsed(event: HistoryEvent) -> float | None:
    value = event.elapsed_s
    if value is None:
        return None
    if not math.isfinite(value) or value < 0:
        raise DiagInputError(
            f"{event.event} of {event.cell_ref} at {event.timestamp.isoformat()} has "
            f"elapsed_s={value!r}.",
            "elapsed_s must be a finite number of seconds >= 0, or null when unknown.",
        )
    return value


def _timed(events: Iterable[HistoryEvent]) -> list[tuple[HistoryEvent, float]]:
    pairs = []
    for event in events:
        elapsed = _elapsed(event)
        if elapsed is not None:
            pairs.append((event, elapsed))
    return pairs


def _positive_number(value: Any) -> float | None:
    # bool is an int subclass; `rows: true` is a malformed export, not one row.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _ratio(values: Sequence[float]) -> float | None:
    if len(values) < 2 or min(values) <= 0:
        return None
    return max(values) / min(values)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(item) for item in value) if value else "none"
    return str(value)


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def _cell(value: Any) -> str:
    return _fmt(value).replace("|", "\\|")


def _section(
    title: str,
    decision: StrEnum,
    figures: Mapping[str, Any],
    reasons: Sequence[str],
    window: tuple[datetime, datetime] | None = None,
) -> str:
    lines = [f"### {title}", "", f"**Decision: {decision.value}**", ""]
    if window is not None:
        lines += [f"Window: {window[0].isoformat()} to {window[1].isoformat()}", ""]
    lines += ["| figure | value |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in figures.items()]
    lines.append("")
    lines += [f"- {reason}" for reason in reasons]
    return "\n".join(lines) + "\n"


# --- G-B7: the cost of the s22a1 anchor -------------------------------------------------------


class B7Decision(StrEnum):
    """Whether Lever #2 (skipping the anchor) is worth wiring."""

    GO = "GO"
    GO_LIMITED = "GO_LIMITED"
    DEFER = "DEFER"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class B7Settings(BaseModel):
    """Thresholds of G-B7 (plan round-12: p95/tail matters as much as p50)."""

    model_config = _FROZEN

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


class B7Figures(BaseModel):
    """What G-B7 measured: the anchor's cost, how much data size explains, and s40's time."""

    model_config = _FROZEN

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


class B7Report(BaseModel):
    """G-B7's figures, decision and reasons."""

    model_config = _FROZEN

    gate: str = GATE_B7
    decision: B7Decision
    reasons: list[str]
    figures: B7Figures
    window_start: datetime
    window_end: datetime
    settings: B7Settings

    def markdown(self) -> str:
        """A short Markdown section: title, decision, figures table, reasons."""
        return _section(
            f"{self.gate}: cost of the s22a1 anchor (Lever #2 value gate)",
            self.decision,
            self.figures.model_dump(),
            self.reasons,
            (self.window_start, self.window_end),
        )


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


def gate_b7(events: list[HistoryEvent], settings: B7Settings, *, now: datetime) -> B7Report:
    """G-B7: is the s22a1 anchor costly enough that skipping it (Lever #2) is worth wiring?

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
    start, end = _window(now, settings.window_days)
    anchors = _in_window(events, ANCHOR_EVENT, start, end)
    timed = _timed(anchors)
    elapsed = [seconds for _, seconds in timed]
    sized = [
        (rows, seconds)
        for event, seconds in timed
        if (rows := _positive_number(event.fields.get("rows"))) is not None
    ]
    intercept, slope, r = _least_squares([x for x, _ in sized], [y for _, y in sized])
    s40 = [seconds for _, seconds in _timed(_in_window(events, AUDIT_EVENT, start, end))]

    p50, p95 = percentile(elapsed, 50), percentile(elapsed, 95)
    s40_p50, s40_p95 = percentile(s40, 50), percentile(s40, 95)
    figures = B7Figures(
        n=len(elapsed),
        untimed=len(anchors) - len(elapsed),
        p50_s=p50,
        p95_s=p95,
        min_s=min(elapsed) if elapsed else None,
        max_s=max(elapsed) if elapsed else None,
        mean_s=sum(elapsed) / len(elapsed) if elapsed else None,
        variance_ratio=_ratio(elapsed),
        rows_n=len(sized),
        fit_intercept_s=intercept,
        fit_slope_s_per_row=slope,
        fit_r=r,
        fit_r2=None if r is None else r * r,
        size_normalized_ratio=_ratio([seconds / rows for rows, seconds in sized]),
        s40_n=len(s40),
        s40_p50_s=s40_p50,
        s40_p95_s=s40_p95,
        anchor_share_p50=_share(p50, s40_p50),
        anchor_share_p95=_share(p95, s40_p95),
    )
    decision, reasons = _decide_b7(figures, settings)
    return B7Report(
        decision=decision,
        reasons=reasons,
        figures=figures,
        window_start=start,
        window_end=end,
        settings=settings,
    )


def _decide_b7(f: B7Figures, s: B7Settings) -> tuple[B7Decision, list[str]]:
    if f.n < s.min_events or f.p50_s is None or f.p95_s is None:
        return B7Decision.INSUFFICIENT_DATA, [
            f"Only {f.n} timed s22a1_anchor events in the {s.window_days}-day window, fewer "
            f"than min_events {s.min_events}: the anchor's cost cannot be judged yet."
        ]

    context = _b7_context(f, s)
    material = []
    if f.p50_s >= s.material_p50_s:
        material.append(
            f"The anchor's p50 is {_s(f.p50_s)} >= material_p50_s {_s(s.material_p50_s)} "
            "(rule: material p50 -> GO)."
        )
    if f.anchor_share_p50 is not None and f.anchor_share_p50 >= s.material_share:
        material.append(
            f"At p50 the anchor is {f.anchor_share_p50:.2f} of the anchor + s40 wall time "
            f"({_s(f.p50_s)} vs s40 {_s(f.s40_p50_s)}) >= material_share "
            f"{s.material_share:.2f} (rule: material p50 share -> GO)."
        )
    if f.p95_s >= s.material_p95_s:
        material.append(
            f"The anchor's p95 is {_s(f.p95_s)} >= material_p95_s {_s(s.material_p95_s)} "
            "(rule: material p95 -> GO; a low p50 alone does not defer the lever)."
        )
    if f.anchor_share_p95 is not None and f.anchor_share_p95 >= s.material_share:
        material.append(
            f"At p95 the anchor is {f.anchor_share_p95:.2f} of the anchor + s40 wall time "
            f"({_s(f.p95_s)} vs s40 {_s(f.s40_p95_s)}) >= material_share "
            f"{s.material_share:.2f} (rule: material p95 share -> GO)."
        )
    if material:
        return B7Decision.GO, [*material, *context]

    ratio, ratio_name = _b7_variance(f)
    limited = []
    if f.p95_s > s.tail_p95_s:
        limited.append(
            f"p50 {_s(f.p50_s)} is not material, but p95 {_s(f.p95_s)} > tail_p95_s "
            f"{_s(s.tail_p95_s)}: GO with a limited rollout, the skip stabilizes the tail "
            "(rule: tail p95 -> GO_LIMITED)."
        )
    if ratio is not None and ratio >= s.unexplained_ratio:
        limited.append(
            f"The {ratio_name} is {ratio:.1f}x >= unexplained_ratio {s.unexplained_ratio:.0f}x: "
            "unexplained variance makes the anchor's latency unpredictable "
            "(rule: unexplained variance -> GO_LIMITED)."
        )
    if limited:
        return B7Decision.GO_LIMITED, [*limited, *context]

    ratio_text = (
        f"the {ratio_name} is {ratio:.1f}x < {s.unexplained_ratio:.0f}x"
        if ratio is not None
        else f"the {ratio_name} is undefined (a zero elapsed_s or fewer than 2 events)"
    )
    return B7Decision.DEFER, [
        f"Both p50 {_s(f.p50_s)} (< material_p50_s {_s(s.material_p50_s)}) and p95 "
        f"{_s(f.p95_s)} (< material_p95_s {_s(s.material_p95_s)}, <= tail_p95_s "
        f"{_s(s.tail_p95_s)}) are negligible, no share reaches {s.material_share:.2f}, and "
        f"{ratio_text}: DEFER (round-12 defers only when both p50 and p95 are negligible).",
        *context,
    ]


def _b7_variance(f: B7Figures) -> tuple[float | None, str]:
    """The variance ratio the decision uses, and its name for the reasons."""
    if f.rows_n == f.n and f.size_normalized_ratio is not None:
        return f.size_normalized_ratio, "size-normalized variance ratio (max/min of elapsed_s/rows)"
    return (
        f.variance_ratio,
        f"raw max/min variance ratio (rows on {f.rows_n} of {f.n} events, so data size "
        "cannot be factored out)",
    )


def _b7_context(f: B7Figures, s: B7Settings) -> list[str]:
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
            f"raw max/min ratio {_fmt(f.variance_ratio)}x, size-normalized "
            f"{_fmt(f.size_normalized_ratio)}x."
        )
    else:
        context.append(
            f"Data size cannot be examined: {f.rows_n} of {f.n} events carry rows, and a fit "
            "needs at least 2 with different row counts and elapsed times."
        )
    if f.untimed:
        context.append(f"{f.untimed} s22a1_anchor events without elapsed_s were ignored.")
    return context


# --- G-A1: re-audit reuse ---------------------------------------------------------------------


class A1Decision(StrEnum):
    """How often the same cells are re-audited."""

    HIGH = "HIGH"
    LOW = "LOW"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class A1Settings(BaseModel):
    """Thresholds of G-A1."""

    model_config = _FROZEN

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


class A1Figures(BaseModel):
    """What G-A1 measured."""

    model_config = _FROZEN

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


class A1Report(BaseModel):
    """G-A1's figures, decision and reasons."""

    model_config = _FROZEN

    gate: str = GATE_A1
    decision: A1Decision
    reasons: list[str]
    figures: A1Figures
    window_start: datetime
    window_end: datetime
    induced_demand_note: bool = False
    settings: A1Settings

    def markdown(self) -> str:
        """A short Markdown section: title, decision, figures table, reasons."""
        return _section(
            f"{self.gate}: re-audit reuse (Lever #1 value, Lever #3 priority)",
            self.decision,
            self.figures.model_dump(),
            self.reasons,
            (self.window_start, self.window_end),
        )


def gate_a1(events: list[HistoryEvent], settings: A1Settings, *, now: datetime) -> A1Report:
    """G-A1: how much are the same cells re-audited?

    Args:
        events: The audit history; ``s40_verdict`` (audits) and ``capture`` (cold cost)
            events are read.
        settings: The thresholds.
        now: The end of the window (a naive time is UTC).

    Returns:
        The report: HIGH or LOW reuse, or INSUFFICIENT_DATA below ``settings.min_audits``.
        LOW reuse with an expensive cold capture sets ``induced_demand_note``.
    """
    start, end = _window(now, settings.window_days)
    audits = _in_window(events, AUDIT_EVENT, start, end)
    by_cell: dict[str, list[datetime]] = defaultdict(list)
    for audit in audits:
        by_cell[audit.cell_ref].append(_utc(audit.timestamp))
    reruns = [len(times) - 1 for times in by_cell.values()]
    gaps = []
    for times in by_cell.values():
        ordered = sorted(times)
        gaps += [(b - a).total_seconds() / 3600 for a, b in zip(ordered, ordered[1:], strict=False)]
    cold = [seconds for _, seconds in _timed(_in_window(events, CAPTURE_EVENT, start, end))]
    n, distinct = len(audits), len(by_cell)
    figures = A1Figures(
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
        decision = A1Decision.INSUFFICIENT_DATA
        reasons = [
            f"Only {n} s40_verdict audits in the {settings.window_days}-day window, fewer than "
            f"min_audits {settings.min_audits}: reuse cannot be measured yet."
        ]
    elif figures.reuse_pct >= settings.high_reuse_pct:
        decision = A1Decision.HIGH
        reasons = [
            f"Reuse is {figures.reuse_pct:.1f}% ({n} audits of {distinct} distinct cells, "
            f"{n - distinct} re-runs) >= high_reuse_pct {settings.high_reuse_pct:.0f}%: HIGH "
            "reuse, the re-audits are where a capture cache (Lever #1) wins."
        ]
    else:
        decision = A1Decision.LOW
        reasons = [
            f"Reuse is {figures.reuse_pct:.1f}% ({n} audits of {distinct} distinct cells, "
            f"{n - distinct} re-runs) < high_reuse_pct {settings.high_reuse_pct:.0f}%: LOW "
            "reuse, a capture cache (Lever #1) has little to serve."
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
                f"Induced-demand note: a cold capture costs p50 {_s(cold_p50)} "
                f"({cold_p50 / 3600:.2f} h) >= expensive_cold_s {_s(settings.expensive_cold_s)}, "
                "so the low reuse may be caused by the cost of a re-audit itself. This is the "
                "plan's qualitative cross-check, not an automatic no-go."
            )
    if figures.gap_hours_median is not None:
        reasons.append(
            f"{figures.reaudited_cells} cells were re-audited (re-runs per cell: mean "
            f"{_fmt(figures.reruns_per_cell_mean)}, max {figures.reruns_per_cell_max}); gap "
            f"between audits of a cell: median {figures.gap_hours_median:.1f} h, p75 "
            f"{_fmt(figures.gap_hours_p75)} h, p90 {_fmt(figures.gap_hours_p90)} h."
        )
    elif n:
        reasons.append("No cell was audited twice in the window: there are no gaps to measure.")
    return A1Report(
        decision=decision,
        reasons=reasons,
        figures=figures,
        window_start=start,
        window_end=end,
        induced_demand_note=note,
        settings=settings,
    )


# --- G-C0: the consumer map -------------------------------------------------------------------


class C0Decision(StrEnum):
    """Whether every diagnostic declares what it reads of a capture."""

    MAPPED = "MAPPED"
    UNKNOWN_PRESENT = "UNKNOWN_PRESENT"


ALLOWED_BY_REQUIREMENT = {
    CaptureRequirement.XY_ONLY: "anchor skip allowed; dataset_only allowed",
    CaptureRequirement.TRIAL_DYNAMICS: "full_replay; needs the anchor/trial log",
    CaptureRequirement.UNKNOWN: "full_replay (undeclared)",
}


class C0Row(BaseModel):
    """One diagnostic of the consumer map."""

    model_config = _FROZEN

    diagnostic: str
    requirement: CaptureRequirement
    declared: bool = Field(description="Whether the diagnostic is in the registry at all.")
    allowed: str = Field(description="What the diagnostic may run on.")


class C0Figures(BaseModel):
    """Counts of the consumer map."""

    model_config = _FROZEN

    diagnostics: int
    xy_only: int
    trial_dynamics: int
    unknown: int
    xy_only_diagnostics: list[str]


class C0Report(BaseModel):
    """G-C0's map, figures, decision and reasons."""

    model_config = _FROZEN

    gate: str = GATE_C0
    decision: C0Decision
    reasons: list[str]
    figures: C0Figures
    rows: list[C0Row]

    def markdown(self) -> str:
        """A short Markdown section: title, decision, figures, the map, reasons."""
        section = _section(
            f"{self.gate}: consumer map (where the skip and dataset_only are allowed)",
            self.decision,
            self.figures.model_dump(),
            self.reasons,
        )
        table = ["| diagnostic | requirement | may use |", "|---|---|---|"]
        table += [
            f"| {_cell(row.diagnostic)} | {row.requirement.value} | {row.allowed} |"
            for row in self.rows
        ]
        return section + "\n" + "\n".join(table) + "\n"


def gate_c0(
    requirements: Mapping[str, CaptureRequirement], known_diagnostics: Iterable[str]
) -> C0Report:
    """G-C0: classify every diagnostic consumer; undeclared ones need a full replay.

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
            C0Row(
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
    figures = C0Figures(
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
        return C0Report(
            decision=C0Decision.UNKNOWN_PRESENT,
            reasons=[
                f"{len(unknown)} diagnostics have no known requirement ({'; '.join(detail)}): "
                "they are treated as full_replay, never skipped nor run on dataset_only.",
                summary,
            ],
            figures=figures,
            rows=rows,
        )
    return C0Report(
        decision=C0Decision.MAPPED,
        reasons=[f"Every diagnostic declares what it reads. {summary}"],
        figures=figures,
        rows=rows,
    )


# --- Lever #1 Gate 2: drift rate ----------------------------------------------------------


class DriftDecision(StrEnum):
    """The default ``check_drift`` policy the measured drift rate supports (D11)."""

    KEEP_OFF = "KEEP_OFF"
    SAMPLED = "SAMPLED"
    ON_READ = "ON_READ"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class DriftRateSettings(BaseModel):
    """Thresholds of Lever #1's Gate 2."""

    model_config = _FROZEN

    window_days: int = Field(
        default=45, ge=1, le=366, description="Days of drift checks read (as G-A1)."
    )
    min_checks: int = Field(
        default=20, ge=1, description="Fewer readable drift checks than this: no decision."
    )
    low_rate: float = Field(
        default=0.01, ge=0, le=1, description="A drift rate at or below this keeps the check off."
    )
    high_rate: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="A drift rate at or below this (above low_rate) samples; above, on_read.",
    )
    sample_p: float = Field(
        default=0.1, ge=0.001, le=1, description="P of the recommended 'sampled:P' policy."
    )

    @model_validator(mode="after")
    def _rates_ordered(self) -> Self:
        if self.low_rate > self.high_rate:
            raise ValueError(f"low_rate {self.low_rate} is above high_rate {self.high_rate}.")
        return self


class DriftRateFigures(BaseModel):
    """What Gate 2 measured."""

    model_config = _FROZEN

    checks: int = Field(description="Drift checks with a boolean `drifted` in the window.")
    drifted: int
    rate: float | None
    unreadable: int = Field(description="Drift checks without a boolean `drifted` (ignored).")


class DriftRateReport(BaseModel):
    """Gate 2's figures, decision, recommended policy and reasons."""

    model_config = _FROZEN

    gate: str = GATE_DRIFT
    decision: DriftDecision
    reasons: list[str]
    figures: DriftRateFigures
    recommended_policy: str | None = Field(
        description="The check_drift value to default to ('off', 'sampled:P', 'on_read')."
    )
    window_start: datetime
    window_end: datetime
    settings: DriftRateSettings

    def markdown(self) -> str:
        """A short Markdown section: title, decision, figures table, reasons."""
        figures = {**self.figures.model_dump(), "recommended_policy": self.recommended_policy}
        return _section(
            f"{self.gate}: drift rate (Lever #1 Gate 2, default check_drift policy)",
            self.decision,
            figures,
            self.reasons,
            (self.window_start, self.window_end),
        )


def _policy_rate(p: float) -> str:
    # DriftPolicy.parse accepts only plain decimals ('0.1', '1'), never '1e-03'.
    return f"{p:.6f}".rstrip("0").rstrip(".")


def gate_drift(
    events: list[HistoryEvent], settings: DriftRateSettings, *, now: datetime
) -> DriftRateReport:
    """Lever #1 Gate 2: how often a warm read finds the market data drifted (resolves D11).

    Args:
        events: The audit history; ``capture_drift_checked`` events are read.
        settings: The thresholds.
        now: The end of the window (a naive time is UTC).

    Returns:
        The report: KEEP_OFF, SAMPLED or ON_READ as the default ``check_drift`` policy, or
        INSUFFICIENT_DATA below ``settings.min_checks``.
    """
    start, end = _window(now, settings.window_days)
    checks = _in_window(events, DRIFT_EVENT, start, end)
    readable = [e.fields["drifted"] for e in checks if isinstance(e.fields.get("drifted"), bool)]
    n, drifted = len(readable), sum(readable)
    figures = DriftRateFigures(
        checks=n,
        drifted=drifted,
        rate=drifted / n if n else None,
        unreadable=len(checks) - n,
    )
    d11 = "D11 (the default --check-drift policy) is resolved by this drift rate"
    policy: str | None
    if n < settings.min_checks or figures.rate is None:
        decision, policy = DriftDecision.INSUFFICIENT_DATA, None
        reasons = [
            f"Only {n} drift checks in the {settings.window_days}-day window, fewer than "
            f"min_checks {settings.min_checks}: {d11} once there are enough."
        ]
    elif figures.rate <= settings.low_rate:
        decision, policy = DriftDecision.KEEP_OFF, "off"
        reasons = [
            f"{drifted} of {n} drift checks found drift (rate {figures.rate:.3f} <= low_rate "
            f"{settings.low_rate:.3f}): keep check_drift off by default; {d11}, and its "
            "committee waiver stands."
        ]
    elif figures.rate <= settings.high_rate:
        decision, policy = DriftDecision.SAMPLED, f"sampled:{_policy_rate(settings.sample_p)}"
        reasons = [
            f"{drifted} of {n} drift checks found drift (rate {figures.rate:.3f} in "
            f"({settings.low_rate:.3f}, {settings.high_rate:.3f}]): default check_drift to "
            f"{policy}; {d11}, and a default-on check reopens its committee waiver."
        ]
    else:
        decision, policy = DriftDecision.ON_READ, "on_read"
        reasons = [
            f"{drifted} of {n} drift checks found drift (rate {figures.rate:.3f} > high_rate "
            f"{settings.high_rate:.3f}): default check_drift to on_read; {d11}, and a "
            "default-on check reopens its committee waiver."
        ]
    if figures.unreadable:
        reasons.append(
            f"{figures.unreadable} capture_drift_checked events had no boolean `drifted` and "
            "were ignored."
        )
    return DriftRateReport(
        decision=decision,
        reasons=reasons,
        figures=figures,
        recommended_policy=policy,
        window_start=start,
        window_end=end,
        settings=settings,
    )


# --- Lever #1 Gate 3: size --------------------------------------------------------------------


class SizeDecision(StrEnum):
    """Whether captures fit the storage budget."""

    WITHIN_BUDGET = "WITHIN_BUDGET"
    OVER_BUDGET = "OVER_BUDGET"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class SizeSettings(BaseModel):
    """Threshold of Lever #1's Gate 3."""

    model_config = _FROZEN

    max_capture_bytes: int = Field(
        default=2 * GIB, gt=0, description="Budget for the p95 of bytes per capture."
    )


class SizeFigures(BaseModel):
    """What Gate 3 measured."""

    model_config = _FROZEN

    n: int
    p50_bytes: float | None
    p95_bytes: float | None
    max_bytes: int | None
    total_bytes: int


class SizeReport(BaseModel):
    """Gate 3's figures, decision and reasons."""

    model_config = _FROZEN

    gate: str = GATE_SIZE
    decision: SizeDecision
    reasons: list[str]
    figures: SizeFigures
    settings: SizeSettings

    def markdown(self) -> str:
        """A short Markdown section: title, decision, figures table, reasons."""
        return _section(
            f"{self.gate}: bytes per capture (Lever #1 Gate 3)",
            self.decision,
            self.figures.model_dump(),
            self.reasons,
        )


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


def gate_size(bytes_per_capture: list[int], settings: SizeSettings) -> SizeReport:
    """Lever #1 Gate 3: do captures fit the per-capture budget?

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
    figures = SizeFigures(
        n=n,
        p50_bytes=percentile(sizes, 50),
        p95_bytes=p95,
        max_bytes=largest if bytes_per_capture else None,
        total_bytes=sum(bytes_per_capture),
    )
    if p95 is None:
        decision = SizeDecision.INSUFFICIENT_DATA
        reasons = [
            "0 captures measured, fewer than the minimum 1: piggyback the size on the next "
            "cold audit."
        ]
    elif p95 <= budget:
        decision = SizeDecision.WITHIN_BUDGET
        reasons = [
            f"p95 of {n} captures is {p95 / GIB:.3f} GiB <= max_capture_bytes "
            f"{budget / GIB:.3f} GiB (largest {largest / GIB:.3f} GiB, total "
            f"{figures.total_bytes / GIB:.3f} GiB)."
        ]
    else:
        decision = SizeDecision.OVER_BUDGET
        reasons = [
            f"p95 of {n} captures is {p95 / GIB:.3f} GiB > max_capture_bytes "
            f"{budget / GIB:.3f} GiB (largest {largest / GIB:.3f} GiB): storage and "
            "the warm read time need a decision before Lever #1 caches captures this size."
        ]
    return SizeReport(decision=decision, reasons=reasons, figures=figures, settings=settings)


# --- Phase-0 exit -----------------------------------------------------------------------------


class ExitReport(BaseModel):
    """The consolidated Phase-0 report: which levers proceed, in what order, and why."""

    model_config = _FROZEN

    gate: str = PHASE0_EXIT
    order: list[str] = Field(description="Levers to implement, first first ('lever2', ...).")
    blocked: dict[str, str] = Field(
        description="Levers a gate stops (too little data, a failed or missing gate): why."
    )
    deferred: dict[str, str] = Field(description="Levers a gate judged not worth it now: why.")
    reasons: list[str]
    decisions: dict[str, str] = Field(description="Each gate's decision, by gate name.")
    b7: B7Report
    a1: A1Report
    c0: C0Report
    c4_passed: bool | None
    c4b_seam: bool | None
    drift: DriftRateReport | None = None
    size: SizeReport | None = None

    def markdown(self) -> str:
        """The consolidated report: order, every gate's decision, then every gate's section."""
        order = " -> ".join(LEVER_NAMES[lever] for lever in self.order) or "none"
        lines = [
            "## Phase 0 exit",
            "",
            f"**Lever order: {order}**",
            "",
            "| gate | decision |",
            "|---|---|",
            *(f"| {gate} | {decision} |" for gate, decision in self.decisions.items()),
            "",
        ]
        for title, levers in (("Blocked", self.blocked), ("Deferred", self.deferred)):
            if levers:
                lines += [f"{title}:", ""]
                lines += [f"- {LEVER_NAMES[lever]}: {why}" for lever, why in levers.items()]
                lines.append("")
        lines += ["Reasons:", "", *(f"- {reason}" for reason in self.reasons), ""]
        sections = [self.b7, self.a1, self.c0, self.drift, self.size]
        lines += [report.markdown() for report in sections if report is not None]
        return "\n".join(lines)

    def to_json(self) -> str:
        """The whole report, every gate's figures included, as indented JSON."""
        return self.model_dump_json(indent=2)


def _c4_decision(passed: bool | None) -> str:
    return "NOT_RUN" if passed is None else ("PASSED" if passed else "FAILED")


def _c4b_decision(seam: bool | None) -> str:
    return "NOT_RUN" if seam is None else ("SEAM" if seam else "NO_SEAM")


def _lever3_problems(c0: C0Report, c4_passed: bool | None, c4b_seam: bool | None) -> list[str]:
    """Why Lever #3's correctness gates do not pass; empty when they do."""
    problems = []
    if not c0.figures.xy_only_diagnostics:
        problems.append("G-C0 maps no xy_only consumer, so dataset_only would serve nobody")
    if c4_passed is None:
        problems.append("G-C4 (trial invariance) has not run")
    elif not c4_passed:
        problems.append(
            "G-C4 failed: X/y is not proven trial-invariant, so dataset_only is unsound "
            "(STOP: Lever #3 abandoned or re-scoped)"
        )
    if c4b_seam is None:
        problems.append("G-C4b (prep/train seam) has not run")
    elif not c4b_seam:
        problems.append(
            "G-C4b found no clean prep/train seam: dataset_only is unreachable; back to design "
            "review (not an automatic single_fit)"
        )
    return problems


def phase0_exit(
    b7: B7Report,
    a1: A1Report,
    c0: C0Report,
    c4_passed: bool | None,
    c4b_seam: bool | None,
    *,
    drift: DriftRateReport | None = None,
    size: SizeReport | None = None,
) -> ExitReport:
    """Order the levers by the plan's round-12 selection logic.

    Lever #2 comes first when G-B7 is GO or GO_LIMITED (DEFER defers it). Then G-A1 sets the
    priority: HIGH reuse puts Lever #1 next, and Lever #3 after it only when its correctness
    gates pass (the plan's measured order; with high reuse #3 is marginal, §C6); LOW reuse
    defers Lever #1 and puts Lever #3 next when its gates pass. Lever #3's gates are G-C0 (at
    least one xy_only consumer), G-C4 passed and G-C4b found a seam; a gate that has not run
    (None) or failed blocks it. INSUFFICIENT_DATA in G-B7 or G-A1 blocks that gate's lever.
    G-A1 sets priority only: with G-A1 short of data, Lever #3 still proceeds when its gates
    pass.

    Args:
        b7: The G-B7 report.
        a1: The G-A1 report.
        c0: The G-C0 report.
        c4_passed: Whether G-C4 proved X/y trial-invariant; None when it has not run.
        c4b_seam: Whether G-C4b found a clean prep/train seam; None when it has not run.
        drift: Lever #1's Gate 2, shown beside G-A1 (it sets a default, not the order).
        size: Lever #1's Gate 3, shown beside G-A1 (it informs, not orders).

    Returns:
        The exit report.
    """
    order: list[str] = []
    blocked: dict[str, str] = {}
    deferred: dict[str, str] = {}
    reasons: list[str] = []

    if b7.decision is B7Decision.INSUFFICIENT_DATA:
        blocked[LEVER_SKIP_ANCHOR] = f"G-B7 has too little data. {b7.reasons[0]}"
    elif b7.decision is B7Decision.DEFER:
        deferred[LEVER_SKIP_ANCHOR] = f"G-B7 is DEFER. {b7.reasons[0]}"
    else:
        order.append(LEVER_SKIP_ANCHOR)
        rollout = "a limited rollout" if b7.decision is B7Decision.GO_LIMITED else "a rollout"
        reasons.append(
            f"Lever #2 first: G-B7 is {b7.decision.value}, so skipping the anchor is worth "
            f"{rollout} (p50 {_s(b7.figures.p50_s)}, p95 {_s(b7.figures.p95_s)})."
        )

    problems = _lever3_problems(c0, c4_passed, c4b_seam)
    lever3_ok = not problems
    unknown_note = (
        f" Its {c0.figures.unknown} unknown consumers stay on full_replay."
        if c0.figures.unknown
        else ""
    )
    lever3_gates = (
        f"Lever #3's correctness gates pass (xy_only consumers: "
        f"{', '.join(c0.figures.xy_only_diagnostics)}; G-C4 passed; G-C4b found a seam)."
        f"{unknown_note}"
    )
    reuse = "n/a" if a1.figures.reuse_pct is None else f"{a1.figures.reuse_pct:.1f}"

    if a1.decision is A1Decision.INSUFFICIENT_DATA:
        blocked[LEVER_CAPTURE_CACHE] = f"G-A1 has too little data. {a1.reasons[0]}"
        if lever3_ok:
            order.append(LEVER_CAPTURE_MODES)
            reasons.append(
                f"{lever3_gates} G-A1 only sets priority, so Lever #3 proceeds; its rank "
                "against Lever #1 is open until G-A1 has data."
            )
    elif a1.decision is A1Decision.HIGH:
        order.append(LEVER_CAPTURE_CACHE)
        reasons.append(
            f"Lever #1 next: G-A1 reuse is HIGH ({reuse}%), and the capture cache removes the "
            "cold capture re-paid on every re-audit."
        )
        if lever3_ok:
            order.append(LEVER_CAPTURE_MODES)
            reasons.append(
                f"{lever3_gates} With HIGH reuse Lever #3 is marginal, so it comes after "
                "Lever #1 (the plan's measured order)."
            )
    else:
        demand = (
            " Induced-demand note: the low reuse may be caused by the cost of a cold capture "
            "itself; re-check G-A1 before parking Lever #1."
            if a1.induced_demand_note
            else ""
        )
        deferred[LEVER_CAPTURE_CACHE] = (
            f"G-A1 reuse is LOW ({reuse}%): a capture cache has little to serve.{demand}"
        )
        if lever3_ok:
            order.append(LEVER_CAPTURE_MODES)
            reasons.append(f"{lever3_gates} With LOW reuse Lever #3 leads: it cuts the cold path.")
    if not lever3_ok:
        blocked[LEVER_CAPTURE_MODES] = "; ".join(problems) + "."

    decisions = {
        GATE_B7: b7.decision.value,
        GATE_A1: a1.decision.value,
        GATE_C0: c0.decision.value,
        GATE_C4: _c4_decision(c4_passed),
        GATE_C4B: _c4b_decision(c4b_seam),
    }
    if drift is not None:
        decisions[GATE_DRIFT] = drift.decision.value
        reasons.append(
            f"Lever #1 Gate 2 (drift rate) is {drift.decision.value}: default check_drift "
            f"{drift.recommended_policy or 'undecided'} (D11)."
        )
    if size is not None:
        decisions[GATE_SIZE] = size.decision.value
        reasons.append(f"Lever #1 Gate 3 (size) is {size.decision.value}. {size.reasons[0]}")
    if not order:
        reasons.append("No lever proceeds yet: see blocked and deferred.")
    return ExitReport(
        order=order,
        blocked=blocked,
        deferred=deferred,
        reasons=reasons,
        decisions=decisions,
        b7=b7,
        a1=a1,
        c0=c0,
        c4_passed=c4_passed,
        c4b_seam=c4b_seam,
        drift=drift,
        size=size,
    )
