"""Audit reports: what a person reads about a cell.

A report answers two questions and shows both in its first line. Its certification says
whether the audit ran in full on verified inputs: the weakest of its verdicts
(INCONCLUSIVE_TOOLING < DOWNGRADED < CERTIFIED); a verdict that never ran, or that was
computed on another capture than the cell's current one, counts as INCONCLUSIVE_TOOLING. The
reason is worded by :func:`~diag_assets.core.diagnostics.certification.certify` from the
cell's facts: the capture's mode, the verdicts that went without the s22a1 anchor, the inputs
that were missing. Its findings say what the audit found, in the fixed vocabulary of
:mod:`~diag_assets.core.diagnostics.findings` (NO_SIGNAL, DATA_GAP, ...), so a CERTIFIED
cell with no signal reads "audit complete (CERTIFIED), 1 finding: NO_SIGNAL", never just
"complete". Summaries of many cells are built in :mod:`diag_assets.core.audit.summary`.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.diagnostics.certification import AnchorUse, Certification, certify
from diag_assets.core.diagnostics.findings import Finding, merged
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

    @property
    def claim(self) -> str:
        """What the line claims: its certification, NOT_APPLICABLE, or ``-`` (nothing)."""
        if not self.applicable:
            return NOT_APPLICABLE
        return self.certification.value if self.certification else "-"


class ReportFinding(BaseModel):
    """One finding of a cell's audit, with every diagnostic that reported it."""

    model_config = ConfigDict(frozen=True)

    code: str
    detail: str
    diagnostics: list[str]


class AuditReport(BaseModel):
    """A cell's audit, ready to read: certification, findings, and a line per diagnostic."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    certification: Certification
    headline: str
    reasons: list[str] = []
    findings: list[ReportFinding] = []
    capture_content_hash: str | None
    diagnostics: list[DiagnosticLine]
    markdown: str
    generated_at: str

    @property
    def finding_codes(self) -> list[str]:
        """The codes of the findings, each once, in report order."""
        return list(dict.fromkeys(finding.code for finding in self.findings))


def weakest(certifications: list[Certification]) -> Certification:
    """The least a set of verdicts can claim."""
    return min(certifications, key=CERTIFICATION_ORDER.__getitem__)


class Verdict(Protocol):
    """What every diagnostic verdict carries."""

    certification: Certification
    certification_reason: str
    capture_content_hash: str
    findings: list[Finding]

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
    findings: list[Finding] = field(default_factory=list)

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
        facts.findings.extend(verdict.findings)
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
    labels = _cause_labels(facts, manifest)
    claimed = weakest([certification, *(claim for claim, _ in facts.claims.values())])
    if claimed is not certification:
        # A stored verdict claims less than the cell's facts explain (one written by an older
        # release, say): the report claims no more, for that verdict's reason.
        certification = claimed
        reasons = [
            f"{name}: {why}" for name, (claim, why) in facts.claims.items() if claim is claimed
        ]
        reason = " ".join(reasons)
        labels = [", ".join(name for name, (c, _) in facts.claims.items() if c is claimed)]
    found = [
        ReportFinding(code=finding.code, detail=finding.detail, diagnostics=names)
        for finding, names in merged(facts.findings)
    ]
    headline = _headline(certification, labels, found, reason)
    return AuditReport(
        cell_ref=cell_ref,
        certification=certification,
        headline=headline,
        reasons=reasons,
        findings=found,
        capture_content_hash=current,
        diagnostics=facts.lines,
        markdown=_markdown(cell_ref, headline, manifest, facts.lines, found, capture_problem),
        generated_at=datetime.now(UTC).isoformat(),
    )


def _cause_labels(facts: _CellFacts, manifest: CaptureManifest | None) -> list[str]:
    """What keeps the audit from CERTIFIED, in a few words each (the headline's parenthesis)."""
    if manifest is None or facts.problems:
        return ["input missing or unverifiable"]  # nothing else matters (certify's rule)
    labels = []
    if facts.anchor is AnchorUse.SKIPPED:
        labels.append("anchor skipped")
    if manifest.mode is CaptureMode.SINGLE_FIT:
        labels.append("single_fit capture")
    return labels


def _headline(
    certification: Certification, labels: list[str], found: list[ReportFinding], reason: str
) -> str:
    """``audit complete (CERTIFIED), 2 findings: NO_SIGNAL, DATA_GAP. <reason>``.

    Certification and findings, in that order, in every headline: a complete audit is never
    shown without what it found, and an incomplete one says so before anything else.
    """
    codes = list(dict.fromkeys(finding.code for finding in found))
    findings = (
        f"{len(codes)} finding{'s' if len(codes) != 1 else ''}: {', '.join(codes)}"
        if codes
        else "no findings"
    )
    if certification is Certification.CERTIFIED:
        return f"**audit complete (CERTIFIED)**, {findings}. {reason}"
    why = f" ({', '.join(labels)})" if labels else ""
    return f"**audit {certification.value}**{why}, {findings}. This audit is NOT complete: {reason}"


def _markdown(
    cell_ref: str,
    headline: str,
    manifest: CaptureManifest | None,
    lines: list[DiagnosticLine],
    found: list[ReportFinding],
    capture_problem: str | None = None,
) -> str:
    findings = (
        "| finding | reported by | detail |\n|---|---|---|\n"
        + "\n".join(f"| {f.code} | {', '.join(f.diagnostics)} | {f.detail} |" for f in found)
        + "\n\n"
        if found
        else "No findings.\n\n"
    )
    rows = "\n".join(
        f"| {line.name} | {line.claim} | "
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
        f"{headline}\n\n# Audit of {cell_ref}\n\n{capture}\n\n{findings}"
        f"| diagnostic | certification | finding |\n|---|---|---|\n{rows}\n"
    )
