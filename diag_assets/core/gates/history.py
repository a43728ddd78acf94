"""Audit history: the events the Phase-0 gates compute from.

A gate reads a list of :class:`HistoryEvent`, whatever produced it: the Dagster instance's
event log (see ``diag_assets.gates.phase0``) or an imported JSONL export from another log system.

JSONL format, one JSON object per line::

    {"event": "s22a1_anchor", "cell_ref": "defi_top5/UNIUSDC/fold-3",
     "timestamp": "2026-05-25T10:00:00Z", "elapsed_s": 234.0, "rows": 13061, "best_iter": 1}

``event``, ``cell_ref`` and ``timestamp`` (ISO 8601; a naive time is UTC) are required;
``elapsed_s`` may be null; every other key is kept in ``fields``. The events the gates read:

| event | meaning | fields used |
|---|---|---|
| ``s22a1_anchor`` | an anchor fit | ``elapsed_s``, ``rows`` |
| ``s40_verdict`` | an s40 audit of the cell | ``elapsed_s`` |
| ``capture`` | a cold capture (replay) | ``elapsed_s``, ``bytes`` |
| ``capture_drift_checked`` | a drift check on a warm read | ``drifted`` (bool) |
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from diag_assets.core.capture.events import CAPTURE_DRIFT_CHECKED
from diag_assets.core.capture.outcomes import CaptureOutcome
from diag_assets.core.errors import DiagInputError
from diag_assets.core.metadata import AnchorMetadata, CaptureMetadata
from diag_assets.core.names import (
    CAPTURED_FOLD,
    CERTIFICATION_KEY,
    ELAPSED_S_KEY,
    S22A1_ANCHOR,
    S40_VERDICT,
    VERDICT_KEY,
)

ANCHOR_EVENT = S22A1_ANCHOR
AUDIT_EVENT = S40_VERDICT
CAPTURE_EVENT = "capture"
DRIFT_EVENT = CAPTURE_DRIFT_CHECKED


@dataclass(frozen=True)
class HistoryEvent:
    """One thing that happened to a cell."""

    event: str
    cell_ref: str
    timestamp: datetime
    elapsed_s: float | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def parse_timestamp(value: str, *, where: str) -> datetime:
    """ISO 8601 to an aware UTC datetime (a naive time is taken as UTC)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError) as error:
        raise DiagInputError(
            f"{where}: timestamp {value!r} is not ISO 8601.",
            "write timestamps like 2026-05-25T10:00:00Z.",
        ) from error
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_jsonl(path: str | Path) -> list[HistoryEvent]:
    """Read a JSONL export; a bad line fails naming the file, the line and the fix."""
    path = Path(path)
    if not path.is_file():
        raise DiagInputError(
            f"History file {path} does not exist.", "point the gate at an existing JSONL export."
        )
    events = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DiagInputError(
                f"{where} is not JSON: {error.msg}.", "write one JSON object per line."
            ) from error
        if not isinstance(record, dict):
            raise DiagInputError(f"{where} is not a JSON object.", "write one object per line.")
        missing = [key for key in ("event", "cell_ref", "timestamp") if key not in record]
        if missing:
            raise DiagInputError(
                f"{where} lacks {', '.join(missing)}.",
                "give every line event, cell_ref and timestamp.",
            )
        elapsed = record.pop("elapsed_s", None)
        if elapsed is not None and not isinstance(elapsed, int | float):
            raise DiagInputError(
                f"{where}: elapsed_s={elapsed!r} is not a number.",
                "write elapsed_s in seconds, or null.",
            )
        events.append(
            HistoryEvent(
                event=str(record.pop("event")),
                cell_ref=str(record.pop("cell_ref")),
                timestamp=parse_timestamp(str(record.pop("timestamp")), where=where),
                elapsed_s=None if elapsed is None else float(elapsed),
                fields=record,
            )
        )
    return events


def events_from_materialization(
    asset: str, timestamp: datetime, metadata: dict[str, Any]
) -> list[HistoryEvent]:
    """The history events one materialization of the audit graph stands for.

    ``s22a1_anchor`` and ``s40_verdict`` are one event each; a ``captured_fold`` served cold
    (``cache=MISS``) is a ``capture``, and every drift check in its capture events is a
    ``capture_drift_checked``. Other materializations, and those that name no cell, stand for
    nothing the gates read. The anchor's and the capture's metadata are read through their
    contract (:mod:`diag_assets.core.metadata`): a key an older materialization lacks is
    ``None``.
    """
    if asset == ANCHOR_EVENT:
        anchor = AnchorMetadata.parse(metadata)
        if anchor is None:
            return []
        fields = {"rows": anchor.rows, "best_iter": anchor.best_iter}
        return [HistoryEvent(ANCHOR_EVENT, anchor.cell_ref, timestamp, anchor.elapsed_s, fields)]
    if asset == AUDIT_EVENT:
        cell_ref = (metadata.get(VERDICT_KEY) or {}).get("cell_ref")
        if not cell_ref:
            return []
        fields = {"certification": metadata.get(CERTIFICATION_KEY)}
        elapsed = metadata.get(ELAPSED_S_KEY)
        return [HistoryEvent(AUDIT_EVENT, cell_ref, timestamp, elapsed, fields)]
    if asset == CAPTURED_FOLD:
        capture = CaptureMetadata.parse(metadata)
        if capture is None:
            return []
        events = []
        if capture.cache is CaptureOutcome.MISS:
            fields = {"bytes": capture.bytes}
            events.append(
                HistoryEvent(
                    CAPTURE_EVENT, capture.cell_ref, timestamp, capture.capture_elapsed_s, fields
                )
            )
        for event in capture.capture_events or []:
            if event.get("event") == DRIFT_EVENT:
                fields = {"drifted": bool(event.get("drifted"))}
                events.append(HistoryEvent(DRIFT_EVENT, capture.cell_ref, timestamp, None, fields))
        return events
    return []
