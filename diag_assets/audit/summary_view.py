"""What ``audit_summary`` shows besides its counts: a table, a picture and links per cell.

- The cell table (``cell_table``): every registered cell a row, never-audited ones too, with
  its status, certification, findings and the run or failure reason where there is one.
- The status grid (``status_grid``): symbol x fold, each cell coloured by status (a PNG
  drawn by :mod:`diag_assets.core.figures.summary`).
- The report links (``report_links``): symbol x fold again, each cell a link to its page of
  ``audit_report`` in the Dagster UI, where its report and its ``audit_clean`` check are.
"""

from urllib.parse import quote

import dagster as dg

from diag_assets.component.audit import Audit
from diag_assets.core.audit.summary import AuditSummary, CellStatus
from diag_assets.core.cells import CellRef
from diag_assets.core.figures import markdown_image
from diag_assets.core.figures.summary import summary_grid_png
from diag_assets.core.names import AUDIT_REPORT
from diag_assets.partitions import cell_partition_key

CELL_TABLE_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("cell", "string", description="The cell: universe/SYMBOL/fold-K."),
        dg.TableColumn("symbol", "string"),
        dg.TableColumn("fold", "int"),
        dg.TableColumn(
            "status",
            "string",
            description="CERTIFIED, DOWNGRADED, INCONCLUSIVE_TOOLING, REFUSED, FAILED or "
            "NOT_AUDITED.",
        ),
        dg.TableColumn(
            "certification", "string", description="Of the report the row shows; - if none."
        ),
        dg.TableColumn("findings", "int", description="How many findings its report has."),
        dg.TableColumn("finding_codes", "string"),
        dg.TableColumn(
            "reason",
            "string",
            description="The report's reasons, or the failed step, its run and error.",
        ),
        dg.TableColumn("run_id", "string", description="The failed or refused run; - if none."),
        dg.TableColumn("report_page", "string", description="The cell's report in the UI."),
    ]
)


def report_page(audit: Audit, cell: CellRef) -> str:
    """The Dagster UI's page of ``cell``'s report: the asset's partitions view on the cell.

    ``/assets/audit_report?view=partitions&partition=fold-3%7CUNIUSDC`` (the asset path is
    ``btc_eth/audit_report`` for a prefixed audit), relative to the UI's root.
    """
    path = "/".join(quote(part, safe="") for part in audit.key(AUDIT_REPORT).path)
    partition = quote(str(cell_partition_key(cell)), safe="")
    return f"/assets/{path}?view=partitions&partition={partition}"


def cell_table(audit: Audit, summary: AuditSummary) -> dg.TableMetadataValue:
    """Every cell of ``summary`` as a row of the UI's table."""
    records = []
    for entry in summary.entries:
        cell = entry.cell
        records.append(
            dg.TableRecord(
                {
                    "cell": entry.cell_ref,
                    "symbol": cell.symbol,
                    "fold": cell.fold,
                    "status": entry.status.value,
                    "certification": entry.certification or "-",
                    "findings": len(entry.finding_codes),
                    "finding_codes": ", ".join(entry.finding_codes) or "-",
                    "reason": entry.why,
                    "run_id": entry.run_id or "-",
                    "report_page": report_page(audit, cell),
                }
            )
        )
    return dg.MetadataValue.table(records, schema=CELL_TABLE_SCHEMA)


def status_grid(summary: AuditSummary) -> dg.MarkdownMetadataValue:
    """The symbol x fold picture, or why there is none (the table still lists every cell)."""
    try:
        picture = summary_grid_png(summary.grid)
    except ValueError as error:  # too many cells for the metadata budget
        return dg.MetadataValue.md(f"No status grid: {error} The cell table lists every cell.")
    return dg.MetadataValue.md(markdown_image(picture, "audit status by symbol x fold"))


def report_links(audit: Audit, summary: AuditSummary) -> dg.MarkdownMetadataValue:
    """Symbol x fold, each cell a link to its report page, labelled with its status."""
    grid = summary.grid
    if not grid.symbols:
        return dg.MetadataValue.md("No registered cells.")
    header = "| symbol |" + "".join(f" fold-{fold} |" for fold in grid.folds)
    rule = "|---|" + "---|" * len(grid.folds)
    lines = []
    for symbol, row in zip(grid.symbols, grid.cells, strict=True):
        shown = []
        for entry in row:
            if entry is None:
                shown.append(" |")
                continue
            label = entry.status.value
            if n := len(entry.finding_codes):
                label += f" ({n} finding{'s' if n != 1 else ''})"
            if entry.status is CellStatus.NOT_AUDITED:
                label = "not audited"
            shown.append(f" [{label}]({report_page(audit, entry.cell)}) |")
        lines.append(f"| {symbol} |" + "".join(shown))
    return dg.MetadataValue.md("\n".join([header, rule, *lines]) + "\n")
