"""Findings: what an audit found, in a fixed vocabulary, beside what it may claim.

Certification answers "did the audit run in full on verified inputs"; a finding answers
"what did it find". A CERTIFIED cell can hold findings (no signal, a model that is not
calibrated, a gap in its history), and a report shows both. Every finding has a code from a
fixed vocabulary, so the summary can count them and a release owner can gate on them:

========================= =========================================================
``NO_SIGNAL``              s40: the permutation probe found no signal of X about y.
``ANCHOR_INCONSISTENT``    s40: the probe and the s22a1 anchor disagree on whether the
                           fold is learnable.
``TRAIN_VALIDATION_SHIFT`` s23: a classifier tells validation rows from training rows
                           (STRONG drift).
``MISCALIBRATED``          s27: the anchor model's probabilities are not calibrated.
``BEST_TRIAL_NOT_DISTINCT`` s22a2: the best trial is within the spread of the others.
``DATA_GAP``               the fold's window holds gaps in the market data (every
                           verdict on the capture lists them).
========================= =========================================================

A plug-in diagnostic may add codes of its own by declaring them
(``Diagnostic.finding_codes``); a code nobody declared is refused, so the vocabulary of an
audit is known before it runs.
"""

import re
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.capture.manifest import CaptureManifest

FINDING_CODE_PATTERN = r"[A-Z][A-Z0-9_]{2,40}"
_CODE = re.compile(FINDING_CODE_PATTERN)


class FindingCode(StrEnum):
    """The built-in findings (see the module docstring)."""

    NO_SIGNAL = "NO_SIGNAL"
    ANCHOR_INCONSISTENT = "ANCHOR_INCONSISTENT"
    TRAIN_VALIDATION_SHIFT = "TRAIN_VALIDATION_SHIFT"
    MISCALIBRATED = "MISCALIBRATED"
    BEST_TRIAL_NOT_DISTINCT = "BEST_TRIAL_NOT_DISTINCT"
    DATA_GAP = "DATA_GAP"


class Finding(BaseModel):
    """One thing an audit found: its code, who found it, and a sentence with the figures."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(pattern=rf"^{FINDING_CODE_PATTERN}$")
    diagnostic: str
    detail: str


def check_codes(findings: Iterable[Finding], allowed: Iterable[str], *, who: str) -> None:
    """Refuse a finding whose code is not in the audit's vocabulary.

    Raises:
        TypeError: a finding's code is neither built in nor declared by ``who``.
    """
    vocabulary = {*FindingCode, *allowed}
    for finding in findings:
        if finding.code not in vocabulary:
            raise TypeError(
                f"Diagnostic {who!r} reported finding {finding.code!r}, which is neither a "
                f"built-in finding ({', '.join(FindingCode)}) nor one it declares: add it to "
                "the class's finding_codes."
            )


def valid_code(code: object) -> bool:
    """Whether ``code`` is spelled as a finding code (upper case, digits and ``_``)."""
    return isinstance(code, str) and _CODE.fullmatch(code) is not None


def merged(findings: Iterable[Finding]) -> list[tuple[Finding, list[str]]]:
    """Equal findings (same code and detail) reported by several diagnostics, once each.

    Returns ``(finding, diagnostics that reported it)`` in first-seen order: the gaps of a
    fold's window, which every verdict on the capture lists, become one DATA_GAP line.
    """
    seen: dict[tuple[str, str], tuple[Finding, list[str]]] = {}
    for finding in findings:
        entry = seen.setdefault((finding.code, finding.detail), (finding, []))
        if finding.diagnostic not in entry[1]:
            entry[1].append(finding.diagnostic)
    return list(seen.values())


MAX_LISTED_GAPS = 5


def gap_findings(manifest: CaptureManifest, diagnostic: str) -> list[Finding]:
    """``DATA_GAP`` when the capture's window holds gaps, with their dates and row costs.

    Every verdict on the capture lists them: a verdict is only as good as the bars it saw,
    and a gap the fold layout tolerated still shortens the time its windows cover.
    """
    gaps = manifest.gaps
    if not gaps:
        return []
    longest = sorted(gaps, key=lambda gap: -gap.missing_seconds)[:MAX_LISTED_GAPS]
    listed = "; ".join(gap.describe() for gap in longest)
    more = f"; and {len(gaps) - MAX_LISTED_GAPS} more" if len(gaps) > MAX_LISTED_GAPS else ""
    return [
        Finding(
            code=FindingCode.DATA_GAP,
            diagnostic=diagnostic,
            detail=f"{len(gaps)} gap(s) in the fold's window, {manifest.gap_rows_dropped} "
            f"row(s) dropped; longest first: {listed}{more}.",
        )
    ]
