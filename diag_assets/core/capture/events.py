"""Capture events: every hit, miss, wait, lease change, verification failure, drift, fence.

Nothing about a capture happens silently. The core emits :class:`CaptureEvent` values to an
:data:`EventSink`; the Dagster layer turns them into run-log lines (one JSON object each,
greppable) and into the materialization's metadata, so the same facts are in the UI and in
the event log.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

CAPTURE_HIT = "capture_hit"
CAPTURE_MISS = "capture_miss"
CAPTURE_WAITED = "capture_waited"
CAPTURE_COLD_REFUSED = "capture_cold_refused"
CAPTURE_STARTED = "capture_started"
CAPTURE_COMPLETED = "capture_completed"
CAPTURE_FAILED = "capture_failed"
CAPTURE_VERIFY_FAILED = "capture_verify_failed"
CAPTURE_DRIFT_CHECKED = "capture_drift_checked"
CAPTURE_DRIFT_DETECTED = "capture_drift_detected"
CAPTURE_LEASE_ACQUIRED = "capture_lease_acquired"
CAPTURE_LEASE_WAITING = "capture_lease_waiting"
CAPTURE_LEASE_RELEASED = "capture_lease_released"
CAPTURE_LEASE_TAKEN_OVER = "capture_lease_taken_over"
CAPTURE_LEASE_LOST = "capture_lease_lost"
CAPTURE_FENCED = "capture_fenced"
CAPTURE_GC_DELETED = "capture_gc_deleted"
CAPTURE_GC_LEFTOVERS_DELETED = "capture_gc_leftovers_deleted"
CAPTURE_PARITY_CHECKED = "capture_parity_checked"
CAPTURE_PARITY_FAILED = "capture_parity_failed"


@dataclass(frozen=True)
class CaptureEvent:
    """One thing that happened to a capture."""

    name: str
    capture_key: str
    cell_ref: str
    fields: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> str:
        """One line of JSON: ``{"event": ..., "capture_key": ..., "cell_ref": ..., ...}``."""
        return json.dumps(
            {
                "event": self.name,
                "capture_key": self.capture_key,
                "cell_ref": self.cell_ref,
                "at": self.at,
                **self.fields,
            },
            sort_keys=True,
            default=str,
        )


EventSink = Callable[[CaptureEvent], None]


class EventRecorder:
    """An event sink that keeps what it saw and forwards each event to other sinks."""

    def __init__(self, *forward: EventSink) -> None:
        self.events: list[CaptureEvent] = []
        self._forward = forward

    def __call__(self, event: CaptureEvent) -> None:
        """Record ``event`` and pass it on."""
        self.events.append(event)
        for sink in self._forward:
            sink(event)

    def names(self) -> list[str]:
        """Names of the events seen, in order."""
        return [event.name for event in self.events]
