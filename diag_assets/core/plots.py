"""Plots as text: histograms and bar charts that render in Markdown metadata.

The UI shows Markdown, and a fixed-width bar chart says "most fits take seconds, a few take
minutes" faster than a table, without a plotting library in the code location.
"""

import math
from collections.abc import Mapping, Sequence

BAR = "█"


def text_histogram(
    values: Sequence[float], *, bins: int = 10, width: int = 40, unit: str = "s"
) -> str:
    """A histogram of ``values`` in equal-width bins, as a Markdown code block."""
    if not values:
        return "_no data_"
    low, high = min(values), max(values)
    span = high - low or 1.0
    counts = [0] * bins
    for value in values:
        counts[min(int((value - low) / span * bins), bins - 1)] += 1
    peak = max(counts)
    lines = []
    for index, count in enumerate(counts):
        start = low + span * index / bins
        end = low + span * (index + 1) / bins
        bar = BAR * math.ceil(count / peak * width) if count else ""
        lines.append(f"{start:>10.1f}-{end:<10.1f}{unit} | {bar} {count}")
    return "```\n" + "\n".join(lines) + "\n```"


def text_bars(items: Mapping[str, float], *, width: int = 40, limit: int = 30) -> str:
    """One bar per key (largest first, at most ``limit``), as a Markdown code block."""
    if not items:
        return "_no data_"
    ranked = sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    peak = max(value for _, value in ranked) or 1.0
    label_width = max(len(label) for label, _ in ranked)
    lines = [
        f"{label:<{label_width}} | {BAR * math.ceil(value / peak * width) if value else ''} "
        f"{value:g}"
        for label, value in ranked
    ]
    return "```\n" + "\n".join(lines) + "\n```"
