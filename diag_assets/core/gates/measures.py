"""How the history gates measure: windows over the audit history, elapsed times, percentiles.

Percentiles interpolate linearly between closest ranks (numpy's default), so the p95 of a
handful of events lies between the two largest of them.
"""

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from diag_assets.core.errors import DiagInputError
from diag_assets.core.gates.history import HistoryEvent


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


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC time."""
    # Same convention as history.parse_timestamp: a naive time is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def window_ending(now: datetime, days: int) -> tuple[datetime, datetime]:
    """The ``days``-day window that ends at ``now`` (UTC), as (start, end)."""
    end = utc(now)
    return end - timedelta(days=days), end


def in_window(
    events: Iterable[HistoryEvent], name: str, start: datetime, end: datetime
) -> list[HistoryEvent]:
    """The ``name`` events stamped within [start, end]."""
    # Events stamped after `now` are excluded too: a gate dated `now` cannot have seen them.
    return [e for e in events if e.event == name and start <= utc(e.timestamp) <= end]


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


def timed(events: Iterable[HistoryEvent]) -> list[tuple[HistoryEvent, float]]:
    """Each event that carries ``elapsed_s``, with it; a negative or infinite one is refused."""
    pairs = []
    for event in events:
        elapsed = _elapsed(event)
        if elapsed is not None:
            pairs.append((event, elapsed))
    return pairs


def positive_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite number > 0, else None."""
    # bool is an int subclass; `rows: true` is a malformed export, not one row.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def max_min_ratio(values: Sequence[float]) -> float | None:
    """Max / min of ``values``; None for fewer than 2 values or a minimum <= 0."""
    if len(values) < 2 or min(values) <= 0:
        return None
    return max(values) / min(values)
