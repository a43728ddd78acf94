"""Which cells need a person's attention, and how urgently: the rule behind the report's check.

A release owner scanning many cells wants one signal per cell that separates "nothing to do"
from "read this" from "this audit cannot be trusted yet". The rule reads only the cell's
report:

- CERTIFIED with no findings: **clean**, nothing to act on;
- CERTIFIED with findings: a **warning**; the findings are facts about the model or its
  data (NO_SIGNAL, DATA_GAP, ...) to act on before release;
- DOWNGRADED: a **warning**; the audit ran without part of what certifies it (the s22a1
  anchor skipped, a single_fit capture), so re-run what its headline names before trusting it;
- INCONCLUSIVE_TOOLING: an **error**; an input was missing or could not be verified, so the
  audit says nothing about the model until it is re-run on proven inputs.
"""

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from diag_assets.core.audit.report import AuditReport
from diag_assets.core.diagnostics.certification import Certification

# What the check means to a release owner (the UI shows it beside the check).
ATTENTION_RULE = (
    "Passes when the cell's audit is complete (CERTIFIED) and found nothing. Warns when the "
    "audit is CERTIFIED with findings (facts about the model or its data to act on before "
    "release) or DOWNGRADED (it ran without the s22a1 anchor or on a single_fit capture: "
    "re-run what the headline names before trusting it). Fails as an error when the audit is "
    "INCONCLUSIVE_TOOLING (an input was missing or unverifiable: the audit says nothing about "
    "the model until it is re-run). The description of each result gives the cell's reason."
)

_MARKDOWN_EMPHASIS = re.compile(r"\*\*(.*?)\*\*")


class Urgency(StrEnum):
    """How urgently a cell needs attention."""

    CLEAN = "CLEAN"
    WARN = "WARN"
    ERROR = "ERROR"


class CellAttention(BaseModel):
    """The rule's outcome for one cell's report, with what the result shows."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    urgency: Urgency
    reason: str
    certification: Certification
    finding_codes: list[str]
    headline: str

    @property
    def passed(self) -> bool:
        """Whether nothing needs attention."""
        return self.urgency is Urgency.CLEAN


def plain(text: str) -> str:
    """``text`` without its Markdown bold (a headline read outside Markdown)."""
    return _MARKDOWN_EMPHASIS.sub(r"\1", text)


def attention(report: AuditReport) -> CellAttention:
    """How urgently ``report``'s cell needs attention, and why (see the module docstring)."""
    codes = report.finding_codes
    found = f"{len(codes)} finding{'s' if len(codes) != 1 else ''} ({', '.join(codes)})"
    why = " ".join(report.reasons) or plain(report.headline)
    if report.certification is Certification.INCONCLUSIVE_TOOLING:
        urgency = Urgency.ERROR
        reason = (
            f"INCONCLUSIVE_TOOLING: {why} The audit says nothing about the model until it is "
            "re-run on proven inputs."
        )
    elif report.certification is Certification.DOWNGRADED:
        urgency = Urgency.WARN
        reason = (
            f"DOWNGRADED{f' with {found}' if codes else ''}: {why} Re-run what the report "
            "names before trusting it."
        )
    elif codes:
        urgency = Urgency.WARN
        reason = (
            f"CERTIFIED with {found}: act on them as facts about the model or its data. "
            + " ".join(f"{f.code}: {f.detail}" for f in report.findings)
        )
    else:
        urgency = Urgency.CLEAN
        reason = "CERTIFIED with no findings: nothing to act on."
    return CellAttention(
        cell_ref=report.cell_ref,
        urgency=urgency,
        reason=reason.strip(),
        certification=report.certification,
        finding_codes=codes,
        headline=report.headline,
    )
