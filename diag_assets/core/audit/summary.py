"""The audit summary: every registered cell of a universe, counted, with its findings.

A cell's row says where its audit stands, one of :class:`CellStatus`:

- CERTIFIED, DOWNGRADED or INCONCLUSIVE_TOOLING: the certification of its latest report;
- REFUSED: its latest audit stopped because a cold capture was needed and not approved;
- FAILED: its latest audit stopped on an error (the row shows the error's first line);
- NOT_AUDITED: no audit of it has run.

"Latest" compares the report's time with the time of the last failure the harness recorded
(:class:`AuditFailure`), so a cell that failed after an earlier report shows the failure, and
one re-audited since shows the new report. The counts add up to the number of cells, and only
CERTIFIED cells count as complete; each row lists the findings of its report beside its status.
Each cell is also a :class:`SummaryCell` (the same facts, typed), laid out by symbol x fold in
:class:`SummaryGrid` for the summary's picture.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from diag_assets.core.audit.report import AuditReport
from diag_assets.core.capture.outcomes import ColdCaptureRequiresOperator
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import clipped

ERROR_LINE_CHARS = 240
NEVER_AUDITED = "no audit of this cell has run."


class CellStatus(StrEnum):
    """Where a cell's audit stands (see the module docstring)."""

    CERTIFIED = "CERTIFIED"
    DOWNGRADED = "DOWNGRADED"
    INCONCLUSIVE_TOOLING = "INCONCLUSIVE_TOOLING"
    REFUSED = "REFUSED"
    FAILED = "FAILED"
    NOT_AUDITED = "NOT_AUDITED"


class AuditFailure(BaseModel):
    """What the harness records when a step of a cell's audit stops on an error."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    status: CellStatus
    step: str
    error: str
    run_id: str
    failed_at: str


def first_line(text: str) -> str:
    """The first line of an error message, clipped: what a summary row shows of it."""
    lines = text.strip().splitlines()
    return clipped(lines[0] if lines else "(no message)", ERROR_LINE_CHARS)


def audit_failure(
    cell_ref: str,
    step: str,
    message: str,
    error_classes: Iterable[str] = (),
    *,
    run_id: str,
    at: datetime | None = None,
) -> AuditFailure:
    """The record of a failed step: REFUSED when a cold capture was not approved, else FAILED.

    ``error_classes`` are the class names along the error's chain; the refusal is found
    anywhere in it (the Dagster layer re-raises it as a step failure that names the fix).
    """
    refused = ColdCaptureRequiresOperator.__name__ in set(error_classes)
    return AuditFailure(
        cell_ref=cell_ref,
        status=CellStatus.REFUSED if refused else CellStatus.FAILED,
        step=step,
        error=first_line(message),
        run_id=run_id,
        failed_at=(at or datetime.now(UTC)).isoformat(),
    )


class SummaryCell(BaseModel):
    """One cell of the summary: its status, what its shown report says, and why."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    status: CellStatus
    certification: str | None
    """The certification of the report the row shows; ``None`` when it shows none."""
    finding_codes: list[str]
    why: str
    """The report's reasons, or the failure (step, run and error), or why it has none."""
    run_id: str | None
    """The run whose failure the row shows, if it shows one."""

    @property
    def cell(self) -> CellRef:
        """The cell itself."""
        return CellRef.parse(self.cell_ref)


class SummaryGrid(BaseModel):
    """The cells laid out by symbol (rows, in order) x fold (columns, ascending).

    ``cells[i][j]`` is the cell of ``symbols[i]`` and ``folds[j]``, or ``None`` when the summary
    has no such cell. A symbol is labelled ``universe/SYMBOL`` when the summary spans several
    universes.
    """

    model_config = ConfigDict(frozen=True)

    symbols: list[str]
    folds: list[int]
    cells: list[list[SummaryCell | None]]


class AuditSummary(BaseModel):
    """Every cell's status and findings, with counts that add up to the number of cells."""

    model_config = ConfigDict(frozen=True)

    cells: int
    counts: dict[str, int]
    finding_counts: dict[str, int]
    rows: list[dict[str, str]]
    markdown: str
    entries: list[SummaryCell]
    """The rows as typed cells, in row order."""

    @property
    def grid(self) -> SummaryGrid:
        """The entries by symbol x fold."""
        parsed = [(entry.cell, entry) for entry in self.entries]
        several = len({cell.universe for cell, _ in parsed}) > 1

        def label(cell: CellRef) -> str:
            return f"{cell.universe}/{cell.symbol}" if several else cell.symbol

        symbols = sorted({label(cell) for cell, _ in parsed})
        folds = sorted({cell.fold for cell, _ in parsed})
        at = {(label(cell), cell.fold): entry for cell, entry in parsed}
        return SummaryGrid(
            symbols=symbols,
            folds=folds,
            cells=[[at.get((symbol, fold)) for fold in folds] for symbol in symbols],
        )

    @property
    def complete(self) -> int:
        """CERTIFIED cells: the only complete ones."""
        return self.counts[CellStatus.CERTIFIED]

    def cells_with(self, status: CellStatus) -> list[str]:
        """The cell refs of one status, in row order."""
        return [row["cell_ref"] for row in self.rows if row["status"] == status]


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def shown_report(report: AuditReport | None, failure: AuditFailure | None) -> bool:
    """Whether the cell's row shows its report: there is one, and no failure came after it."""
    if report is None:
        return False
    return failure is None or _when(failure.failed_at) < _when(report.generated_at)


def _entry(cell_ref: str, report: AuditReport | None, failure: AuditFailure | None) -> SummaryCell:
    if failure is not None and not shown_report(report, failure):
        return SummaryCell(
            cell_ref=cell_ref,
            status=failure.status,
            certification=None,
            finding_codes=[],
            why=_failure_why(report, failure),
            run_id=failure.run_id,
        )
    if report is None:
        return SummaryCell(
            cell_ref=cell_ref,
            status=CellStatus.NOT_AUDITED,
            certification=None,
            finding_codes=[],
            why=NEVER_AUDITED,
            run_id=None,
        )
    return SummaryCell(
        cell_ref=cell_ref,
        status=CellStatus(report.certification.value),
        certification=report.certification.value,
        finding_codes=report.finding_codes,
        why=" ".join(report.reasons) or "-",
        run_id=None,
    )


def _failure_why(report: AuditReport | None, failure: AuditFailure) -> str:
    verb = "refused" if failure.status is CellStatus.REFUSED else "failed"
    earlier = f" (its earlier report: {report.certification.value})" if report is not None else ""
    return f"{failure.step} {verb} in run {failure.run_id[:8]}: {failure.error}{earlier}"


def _row(
    cell_ref: str,
    report: AuditReport | None,
    failure: AuditFailure | None,
    diagnostics: Sequence[str],
) -> dict[str, str]:
    if failure is not None and not shown_report(report, failure):
        return {
            "cell_ref": cell_ref,
            "status": failure.status.value,
            "findings": "-",
            **{name: "-" for name in diagnostics},
            "why": _failure_why(report, failure),
        }
    if report is None:
        return {
            "cell_ref": cell_ref,
            "status": CellStatus.NOT_AUDITED.value,
            "findings": "-",
            **{name: "-" for name in diagnostics},
            "why": NEVER_AUDITED,
        }
    lines = {line.name: line for line in report.diagnostics}
    return {
        "cell_ref": cell_ref,
        "status": report.certification.value,
        "findings": ", ".join(report.finding_codes) or "none",
        **{
            name: (lines[name].claim if name in lines and lines[name].present else "not run")
            for name in diagnostics
        },
        "why": " ".join(report.reasons) or "-",
    }


def summarize(
    reports: Iterable[AuditReport],
    diagnostics: Sequence[str] = (),
    *,
    cells: Iterable[str] = (),
    failures: Iterable[AuditFailure] = (),
) -> AuditSummary:
    """One row per cell: the registered ``cells`` and every cell with a report or a failure.

    ``diagnostics`` name a column each (the audit's diagnostics, in order), showing what that
    diagnostic's verdict claims for the cell.
    """
    by_report = {report.cell_ref: report for report in reports}
    by_failure = {failure.cell_ref: failure for failure in failures}
    refs = sorted({*cells, *by_report, *by_failure})
    rows = [_row(ref, by_report.get(ref), by_failure.get(ref), diagnostics) for ref in refs]
    counts = {status.value: 0 for status in CellStatus}
    counts.update(Counter(row["status"] for row in rows))
    finding_counts = dict(
        Counter(
            code
            for ref, report in by_report.items()
            if shown_report(report, by_failure.get(ref))
            for code in report.finding_codes
        )
    )
    return AuditSummary(
        cells=len(rows),
        counts=counts,
        finding_counts=finding_counts,
        rows=rows,
        markdown=_markdown(rows, counts, finding_counts, diagnostics),
        entries=[_entry(ref, by_report.get(ref), by_failure.get(ref)) for ref in refs],
    )


def headline(counts: dict[str, int], finding_counts: dict[str, int]) -> str:
    """``**3 of 7 cells complete (CERTIFIED)**; 1 DOWNGRADED; ...; findings: NO_SIGNAL 2``."""
    total = sum(counts.values())
    others = "; ".join(
        f"{counts[status]} {status.value}"
        for status in CellStatus
        if status is not CellStatus.CERTIFIED
    )
    found = (
        ", ".join(f"{code} {n}" for code, n in sorted(finding_counts.items()))
        if finding_counts
        else "none"
    )
    return (
        f"**{counts[CellStatus.CERTIFIED]} of {total} cells complete (CERTIFIED)**; {others}. "
        f"Findings (cells): {found}."
    )


def _markdown(
    rows: list[dict[str, str]],
    counts: dict[str, int],
    finding_counts: dict[str, int],
    diagnostics: Sequence[str],
) -> str:
    columns = "".join(f" {name} |" for name in diagnostics)
    rule = "---|" * len(diagnostics)
    table = "\n".join(
        f"| {row['cell_ref']} | {row['status']} | {row['findings']} |"
        + "".join(f" {row[name]} |" for name in diagnostics)
        + f" {row['why']} |"
        for row in rows
    )
    return (
        f"{headline(counts, finding_counts)}\n\n"
        f"| cell | status | findings |{columns} why |\n|---|---|---|{rule}---|\n{table}\n"
    )
