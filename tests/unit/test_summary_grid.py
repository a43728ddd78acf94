"""The summary's cells, typed and laid out by symbol x fold, and the picture drawn from them."""

import io

from PIL import Image

from diag_assets.core.audit.report import build_audit_report
from diag_assets.core.audit.summary import (
    AuditSummary,
    CellStatus,
    SummaryCell,
    audit_failure,
    summarize,
)
from diag_assets.core.figures import MAX_FIGURE_BYTES, PALETTE
from diag_assets.core.figures.summary import summary_grid_png

SYMBOLS = ("UNIUSDC", "AAVEUSDC")


def _cell(symbol: str, fold: int) -> str:
    return f"defi_top5/{symbol}/fold-{fold}"


def _summary(statuses: dict[str, CellStatus]) -> AuditSummary:
    entries = [
        SummaryCell(
            cell_ref=ref,
            status=status,
            certification=None,
            finding_codes=["NO_SIGNAL"] if status is CellStatus.CERTIFIED else [],
            why="-",
            run_id=None,
        )
        for ref, status in statuses.items()
    ]
    return AuditSummary(
        cells=len(entries), counts={}, finding_counts={}, rows=[], markdown="", entries=entries
    )


def test_every_cell_is_an_entry_and_sits_at_its_symbol_and_fold():
    cells = [_cell(symbol, fold) for symbol in SYMBOLS for fold in range(3)]
    inconclusive = build_audit_report(cells[0], None, {})  # no captured fold
    failed = audit_failure(cells[1], "captured_fold", "boom\ntrace", run_id="run-failed-1")
    summary = summarize([inconclusive], cells=cells, failures=[failed])

    by_ref = {entry.cell_ref: entry for entry in summary.entries}
    assert list(by_ref) == [row["cell_ref"] for row in summary.rows]
    assert set(by_ref) == set(cells)
    assert by_ref[cells[0]].status is CellStatus.INCONCLUSIVE_TOOLING
    assert by_ref[cells[0]].certification == "INCONCLUSIVE_TOOLING"
    assert "no captured fold" in by_ref[cells[0]].why
    assert by_ref[cells[1]].status is CellStatus.FAILED
    assert by_ref[cells[1]].run_id == "run-failed-1" and by_ref[cells[1]].certification is None
    assert by_ref[cells[1]].why == "captured_fold failed in run run-fail: boom"
    never = [ref for ref in cells if by_ref[ref].status is CellStatus.NOT_AUDITED]
    assert len(never) == 4 and all(
        by_ref[ref].why == "no audit of this cell has run." for ref in never
    )

    grid = summary.grid
    assert grid.symbols == ["AAVEUSDC", "UNIUSDC"] and grid.folds == [0, 1, 2]
    uni = grid.symbols.index("UNIUSDC")
    assert [entry.cell_ref if entry else None for entry in grid.cells[uni]] == cells[:3]


def _pixels(data: bytes, colour: str) -> int:
    rgb = tuple(int(colour[k : k + 2], 16) for k in (1, 3, 5))
    counts = Image.open(io.BytesIO(data)).convert("RGB").getcolors(maxcolors=1 << 24) or []
    return sum(count for count, pixel in counts if pixel == rgb)


def test_fifty_symbols_by_five_folds_is_a_readable_png_under_budget():
    symbols = [f"SYM{k:02d}USDC" for k in range(50)]
    statuses = list(CellStatus)
    grid = _summary(
        {
            _cell(symbol, fold): statuses[(row + fold) % len(statuses)]
            for row, symbol in enumerate(symbols)
            for fold in range(5)
        }
    ).grid
    data = summary_grid_png(grid)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) < MAX_FIGURE_BYTES
    width, height = Image.open(io.BytesIO(data)).size
    # Drawn at full resolution: about 22 pixels a symbol, and room for the labels and legend.
    assert height >= 22 * len(symbols) and width >= 500


def test_cells_are_coloured_by_their_status():
    cells = [_cell(f"SYM{k:02d}USDC", fold) for k in range(20) for fold in range(5)]
    mostly_certified = summary_grid_png(
        _summary(
            {
                ref: CellStatus.FAILED if k == 0 else CellStatus.CERTIFIED
                for k, ref in enumerate(cells)
            }
        ).grid
    )
    mostly_failed = summary_grid_png(
        _summary(
            {
                ref: CellStatus.CERTIFIED if k == 0 else CellStatus.FAILED
                for k, ref in enumerate(cells)
            }
        ).grid
    )
    green, red = PALETTE["certified"], PALETTE["error"]
    assert _pixels(mostly_certified, green) > 20 * _pixels(mostly_certified, red)
    assert _pixels(mostly_failed, red) > 20 * _pixels(mostly_failed, green)


def test_a_universe_without_registered_cells_still_draws():
    data = summary_grid_png(_summary({}).grid)
    assert data.startswith(b"\x89PNG") and len(data) < MAX_FIGURE_BYTES
