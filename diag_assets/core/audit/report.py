"""Audit reports: what a person reads about a cell, and about many cells at once.

A report's certification is the weakest of its anchor-dependent verdicts (s40, s27):
INCONCLUSIVE_TOOLING < DOWNGRADED < CERTIFIED. Its Markdown opens with that certification,
so a downgraded audit reads as downgraded in its first line, and the summary counts only
CERTIFIED cells as complete.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.diagnostics.verdicts import Certification, S40Verdict

CERTIFICATION_ORDER = {
    Certification.INCONCLUSIVE_TOOLING: 0,
    Certification.DOWNGRADED: 1,
    Certification.CERTIFIED: 2,
}


class DiagnosticLine(BaseModel):
    """One diagnostic as the report shows it."""

    model_config = ConfigDict(frozen=True)

    name: str
    present: bool
    certification: Certification | None
    finding: str
    stale: bool = False


class AuditReport(BaseModel):
    """A cell's audit, ready to read."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    certification: Certification
    headline: str
    capture_content_hash: str | None
    diagnostics: list[DiagnosticLine]
    markdown: str
    generated_at: str


class AuditSummary(BaseModel):
    """Many cells' audits: counts by certification and one row per cell."""

    model_config = ConfigDict(frozen=True)

    cells: int
    complete: int
    certified: int
    downgraded: int
    inconclusive: int
    rows: list[dict[str, str]]
    markdown: str


def weakest(certifications: list[Certification]) -> Certification:
    """The least a set of verdicts can claim."""
    return min(certifications, key=CERTIFICATION_ORDER.__getitem__)


def _headline(certification: Certification, s40: S40Verdict | None) -> str:
    if certification is Certification.DOWNGRADED:
        return (
            "**DOWNGRADED** - the s22a1 anchor was skipped: the s40 probe was not "
            "cross-referenced, so this audit is NOT complete."
        )
    if certification is Certification.INCONCLUSIVE_TOOLING:
        reason = s40.certification_reason if s40 is not None else "no s40 verdict for this cell"
        return f"**INCONCLUSIVE_TOOLING** - an input was missing or unverifiable: {reason}"
    return "**CERTIFIED** - every input verified and the anchor cross-reference ran."


class Verdict(Protocol):
    """What every diagnostic verdict carries."""

    certification: Certification
    certification_reason: str
    capture_content_hash: str


def build_audit_report(
    cell_ref: str,
    manifest: CaptureManifest | None,
    verdicts: Mapping[str, Verdict | None],
    *,
    anchor_consumers: tuple[str, ...] = ("s40", "s27"),
) -> AuditReport:
    """Assemble a cell's report from its latest verdicts (``None`` = never run).

    A verdict computed from another capture than the cell's current one is shown as stale
    and cannot support a CERTIFIED report.
    """
    current = manifest.content_hash if manifest is not None else None
    lines = []
    counted: list[Certification] = []
    for name, verdict in verdicts.items():
        if verdict is None:
            lines.append(
                DiagnosticLine(name=name, present=False, certification=None, finding="not run")
            )
            if name in anchor_consumers:
                counted.append(Certification.INCONCLUSIVE_TOOLING)
            continue
        certification = Certification(verdict.certification)
        verdict_capture = verdict.capture_content_hash
        stale = current is not None and verdict_capture not in (None, "", current)
        lines.append(
            DiagnosticLine(
                name=name,
                present=True,
                certification=certification,
                finding=_finding(name, verdict),
                stale=stale,
            )
        )
        if name in anchor_consumers:
            counted.append(Certification.INCONCLUSIVE_TOOLING if stale else certification)
    certification = weakest(counted) if counted else Certification.INCONCLUSIVE_TOOLING
    s40 = verdicts.get("s40")
    headline = _headline(certification, s40 if isinstance(s40, S40Verdict) else None)
    markdown = _markdown(cell_ref, headline, manifest, lines)
    return AuditReport(
        cell_ref=cell_ref,
        certification=certification,
        headline=headline,
        capture_content_hash=current,
        diagnostics=lines,
        markdown=markdown,
        generated_at=datetime.now(UTC).isoformat(),
    )


def _finding(name: str, verdict: Verdict) -> str:
    if isinstance(verdict, S40Verdict):
        signal = verdict.signal.value if verdict.signal else "NOT_RUN"
        p_value = f", p={verdict.probe.p_value:.3f}" if verdict.probe else ""
        return f"{signal}{p_value}; crossref {verdict.s22a1_crossref_status.value}"
    for field in ("status", "drift", "calibration"):
        value = getattr(verdict, field, None)
        if value is not None:
            return str(value)
    return verdict.certification_reason


def _markdown(
    cell_ref: str, headline: str, manifest: CaptureManifest | None, lines: list[DiagnosticLine]
) -> str:
    rows = "\n".join(
        f"| {line.name} | {line.certification.value if line.certification else '-'} | "
        f"{line.finding}{' (stale: computed on another capture)' if line.stale else ''} |"
        for line in lines
    )
    capture = (
        f"captured fold `{manifest.content_hash}` ({manifest.mode}, {manifest.rows} rows, "
        f"{manifest.n_trials} trials)"
        if manifest is not None
        else "no captured fold"
    )
    return (
        f"{headline}\n\n# Audit of {cell_ref}\n\n{capture}\n\n"
        f"| diagnostic | certification | finding |\n|---|---|---|\n{rows}\n"
    )


def summarize(reports: list[AuditReport]) -> AuditSummary:
    """Counts by certification; only CERTIFIED cells count as complete."""
    by = {c: [r for r in reports if r.certification is c] for c in Certification}
    rows = [
        {
            "cell_ref": r.cell_ref,
            "certification": r.certification.value,
            "complete": "yes" if r.certification is Certification.CERTIFIED else "NO",
            "headline": r.headline,
        }
        for r in sorted(reports, key=lambda r: r.cell_ref)
    ]
    table = "\n".join(
        f"| {row['cell_ref']} | {row['certification']} | {row['complete']} |" for row in rows
    )
    certified = len(by[Certification.CERTIFIED])
    downgraded = len(by[Certification.DOWNGRADED])
    inconclusive = len(by[Certification.INCONCLUSIVE_TOOLING])
    markdown = (
        f"**{certified} of {len(reports)} cells complete (CERTIFIED)**; {downgraded} "
        f"DOWNGRADED (anchor skipped, not complete); {inconclusive} INCONCLUSIVE_TOOLING.\n\n"
        f"| cell | certification | complete |\n|---|---|---|\n{table}\n"
    )
    return AuditSummary(
        cells=len(reports),
        complete=certified,
        certified=certified,
        downgraded=downgraded,
        inconclusive=inconclusive,
        rows=rows,
        markdown=markdown,
    )
