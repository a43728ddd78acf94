"""Audit reports: what a person reads about a cell, and about many cells at once.

A report's certification is the weakest of its verdicts (INCONCLUSIVE_TOOLING < DOWNGRADED <
CERTIFIED); a verdict that never ran, or that was computed on another capture than the
cell's current one, counts as INCONCLUSIVE_TOOLING. The reason is worded by
:func:`~diag_assets.core.diagnostics.certification.certify` from the cell's facts: the
capture's mode, the verdicts that went without the s22a1 anchor, the inputs that were missing.
The report's Markdown opens with the certification and that reason, so a downgraded audit
reads as downgraded in its first line and says why (a single_fit capture, the anchor skipped,
or both); the summary counts only CERTIFIED cells as complete.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.diagnostics.certification import AnchorUse, Certification, certify
from diag_assets.core.diagnostics.plugin import NOT_APPLICABLE, NotApplicable

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
    applicable: bool = True


class AuditReport(BaseModel):
    """A cell's audit, ready to read."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    certification: Certification
    headline: str
    reasons: list[str] = []
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


class Verdict(Protocol):
    """What every diagnostic verdict carries."""

    certification: Certification
    certification_reason: str
    capture_content_hash: str

    @property
    def anchor_use(self) -> AnchorUse:
        """What the s22a1 anchor was to the verdict."""
        ...


@dataclass
class _CellFacts:
    """What a cell's latest verdicts say about its audit, gathered for :func:`certify`."""

    lines: list[DiagnosticLine] = field(default_factory=list)
    claims: dict[str, tuple[Certification, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    anchor_used_by: list[str] = field(default_factory=list)
    anchor_skipped_by: list[str] = field(default_factory=list)

    @property
    def anchor(self) -> AnchorUse:
        if self.anchor_skipped_by:
            return AnchorUse.SKIPPED
        return AnchorUse.USED if self.anchor_used_by else AnchorUse.NOT_NEEDED


def _gather(
    current: str | None,
    verdicts: Mapping[str, Verdict | NotApplicable | None],
    findings: Mapping[str, str],
) -> _CellFacts:
    facts = _CellFacts(problems=[] if verdicts else ["no diagnostic ran."])
    for name, verdict in verdicts.items():
        if verdict is None:
            facts.lines.append(
                DiagnosticLine(name=name, present=False, certification=None, finding="not run")
            )
            facts.problems.append(f"{name} did not run.")
            continue
        if isinstance(verdict, NotApplicable):
            # It claims nothing, so it neither supports nor weakens the cell's certification.
            facts.lines.append(
                DiagnosticLine(
                    name=name,
                    present=True,
                    certification=None,
                    finding=f"{NOT_APPLICABLE}: {verdict.reason}",
                    stale=current is not None and verdict.capture_content_hash != current,
                    applicable=False,
                )
            )
            continue
        certification = Certification(verdict.certification)
        verdict_capture = verdict.capture_content_hash
        stale = current is not None and verdict_capture not in (None, "", current)
        facts.lines.append(
            DiagnosticLine(
                name=name,
                present=True,
                certification=certification,
                finding=findings.get(name) or verdict.certification_reason,
                stale=stale,
            )
        )
        if stale:
            facts.problems.append(f"{name} was computed on another capture.")
            continue
        facts.claims[name] = (certification, verdict.certification_reason)
        if certification is Certification.INCONCLUSIVE_TOOLING:
            facts.problems.append(f"{name}: {verdict.certification_reason}")
        if verdict.anchor_use is AnchorUse.SKIPPED:
            facts.anchor_skipped_by.append(name)
        elif verdict.anchor_use is AnchorUse.USED:
            facts.anchor_used_by.append(name)
    return facts


def build_audit_report(
    cell_ref: str,
    manifest: CaptureManifest | None,
    verdicts: Mapping[str, Verdict | NotApplicable | None],
    findings: Mapping[str, str] | None = None,
    *,
    capture_problem: str | None = None,
) -> AuditReport:
    """Assemble a cell's report from its latest verdicts (``None`` = never run).

    ``findings`` are each diagnostic's one-line finding (its plug-in's ``finding``); a
    verdict without one shows its certification reason. A verdict computed from another
    capture than the cell's current one is shown as stale and cannot support a CERTIFIED
    report; neither can a cell without a captured fold. A NOT_APPLICABLE diagnostic is shown
    and claims nothing. ``capture_problem`` says why the cell's capture could not be
    established (``manifest`` is then ``None``); the report shows it instead of a capture.
    """
    current = manifest.content_hash if manifest is not None else None
    facts = _gather(current, verdicts, findings or {})
    if manifest is None:
        facts.problems.insert(0, capture_problem or "the cell has no captured fold.")
    problems = " ".join(facts.problems)
    decision = certify(
        capture_mode=manifest.mode if manifest is not None else None,
        anchor=facts.anchor,
        problem=f"an input was missing or unverifiable: {problems}" if problems else None,
        without_anchor=f"{' and '.join(facts.anchor_skipped_by)} ran without it",
    )
    certification, reason, reasons = decision.certification, decision.reason, list(decision.causes)
    claimed = weakest([certification, *(claim for claim, _ in facts.claims.values())])
    if claimed is not certification:
        # A stored verdict claims less than the cell's facts explain (one written by an older
        # release, say): the report claims no more, for that verdict's reason.
        certification = claimed
        reasons = [
            f"{name}: {why}" for name, (claim, why) in facts.claims.items() if claim is claimed
        ]
        reason = " ".join(reasons)
    tail = "" if certification is Certification.CERTIFIED else " This audit is NOT complete."
    headline = f"**{certification.value}** - {reason}{tail}"
    return AuditReport(
        cell_ref=cell_ref,
        certification=certification,
        headline=headline,
        reasons=reasons,
        capture_content_hash=current,
        diagnostics=facts.lines,
        markdown=_markdown(cell_ref, headline, manifest, facts.lines, capture_problem),
        generated_at=datetime.now(UTC).isoformat(),
    )


def _markdown(
    cell_ref: str,
    headline: str,
    manifest: CaptureManifest | None,
    lines: list[DiagnosticLine],
    capture_problem: str | None = None,
) -> str:
    rows = "\n".join(
        f"| {line.name} | {_claim(line)} | "
        f"{line.finding}{' (stale: computed on another capture)' if line.stale else ''} |"
        for line in lines
    )
    capture = (
        f"captured fold `{manifest.content_hash}` ({manifest.mode}, {manifest.rows} rows, "
        f"{manifest.n_trials} trials)"
        if manifest is not None
        else f"captured fold not established: {capture_problem}"
        if capture_problem
        else "no captured fold"
    )
    return (
        f"{headline}\n\n# Audit of {cell_ref}\n\n{capture}\n\n"
        f"| diagnostic | certification | finding |\n|---|---|---|\n{rows}\n"
    )


def _claim(line: DiagnosticLine) -> str:
    if not line.applicable:
        return NOT_APPLICABLE
    return line.certification.value if line.certification else "-"


def _column(report: AuditReport, name: str) -> str:
    line = next((line for line in report.diagnostics if line.name == name), None)
    if line is None or not line.present:
        return "not run"
    return _claim(line)


def summarize(reports: list[AuditReport], diagnostics: Sequence[str] = ()) -> AuditSummary:
    """Counts by certification, each cell's reasons, and a column per diagnostic.

    ``diagnostics`` name the columns (the audit's diagnostics, in order); each shows what
    that diagnostic's verdict claims for the cell. Only CERTIFIED cells are complete.
    """
    by = {c: [r for r in reports if r.certification is c] for c in Certification}
    rows = [
        {
            "cell_ref": r.cell_ref,
            "certification": r.certification.value,
            "complete": "yes" if r.certification is Certification.CERTIFIED else "NO",
            **{name: _column(r, name) for name in diagnostics},
            "headline": r.headline,
            "why": " ".join(r.reasons) or "-",
        }
        for r in sorted(reports, key=lambda r: r.cell_ref)
    ]
    columns = "".join(f" {name} |" for name in diagnostics)
    rule = "---|" * len(diagnostics)
    table = "\n".join(
        f"| {row['cell_ref']} | {row['certification']} | {row['complete']} |"
        + "".join(f" {row[name]} |" for name in diagnostics)
        + f" {row['why']} |"
        for row in rows
    )
    certified = len(by[Certification.CERTIFIED])
    downgraded = len(by[Certification.DOWNGRADED])
    inconclusive = len(by[Certification.INCONCLUSIVE_TOOLING])
    markdown = (
        f"**{certified} of {len(reports)} cells complete (CERTIFIED)**; {downgraded} "
        f"DOWNGRADED (not complete); {inconclusive} INCONCLUSIVE_TOOLING.\n\n"
        f"| cell | certification | complete |{columns} why |\n|---|---|---|{rule}---|\n{table}\n"
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
