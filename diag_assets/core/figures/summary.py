"""The audit summary's picture: every cell of the universe, symbol x fold, coloured by status.

A release owner sees at a glance which cells need attention: green is CERTIFIED, amber
DOWNGRADED, orange INCONCLUSIVE_TOOLING, red FAILED, purple REFUSED (a cold capture waits for
an operator's approval) and pale NOT_AUDITED. The number in a cell is how many findings its
report has. The legend counts the cells of each status.
"""

from matplotlib.patches import Rectangle
from matplotlib.text import Text

from diag_assets.core.audit.summary import CellStatus, SummaryGrid
from diag_assets.core.figures.render import PALETTE, new_figure, png

STATUS_COLOURS = {
    CellStatus.CERTIFIED: PALETTE["certified"],
    CellStatus.DOWNGRADED: PALETTE["downgraded"],
    CellStatus.INCONCLUSIVE_TOOLING: PALETTE["attention"],
    CellStatus.FAILED: PALETTE["error"],
    CellStatus.REFUSED: PALETTE["secondary"],
    CellStatus.NOT_AUDITED: PALETTE["empty"],
}
# Statuses drawn on a dark colour get white numbers.
_DARK = {
    CellStatus.CERTIFIED,
    CellStatus.FAILED,
    CellStatus.REFUSED,
    CellStatus.INCONCLUSIVE_TOOLING,
}
_NO_CELL = "#ffffff"

# Inches: a row per symbol and a column per fold, readable at 100 dpi; the margins hold the
# symbol labels, the fold labels, the title and the legend.
ROW_IN = 0.22
COLUMN_IN = 0.7
MARGIN_W_IN = 1.9
MARGIN_H_IN = 1.6
MIN_WIDTH_IN = 5.6
LABEL_PT = 8


def summary_grid_png(grid: SummaryGrid) -> bytes:
    """The grid of ``grid``'s cells as a PNG within the metadata budget."""
    n_rows, n_columns = len(grid.symbols), len(grid.folds)
    figure = new_figure(
        max(MIN_WIDTH_IN, MARGIN_W_IN + COLUMN_IN * n_columns),
        MARGIN_H_IN + ROW_IN * max(n_rows, 1),
    )
    axes = figure.add_subplot()
    counts = {status: 0 for status in CellStatus}
    for row, line in enumerate(grid.cells):
        for column, cell in enumerate(line):
            colour = STATUS_COLOURS[cell.status] if cell is not None else _NO_CELL
            axes.add_patch(_rectangle(column, row, colour))
            if cell is None:
                continue
            counts[cell.status] += 1
            if cell.finding_codes:
                axes.text(
                    column + 0.5,
                    row + 0.5,
                    str(len(cell.finding_codes)),
                    ha="center",
                    va="center",
                    fontsize=LABEL_PT,
                    color="white" if cell.status in _DARK else "black",
                )
    if not n_rows or not n_columns:
        axes.text(0.5, 0.5, "no registered cells", ha="center", va="center", fontsize=10)
    axes.set_xlim(0, max(n_columns, 1))
    axes.set_ylim(max(n_rows, 1), 0)  # the first symbol on top
    axes.set_xticks([k + 0.5 for k in range(n_columns)], [f"fold-{f}" for f in grid.folds])
    axes.set_yticks([k + 0.5 for k in range(n_rows)], grid.symbols)
    axes.tick_params(labelsize=LABEL_PT, length=0)
    axes.xaxis.tick_top()
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.set_title(
        "Audit status by symbol x fold (number: findings of the cell's report)", fontsize=9
    )
    figure.legend(
        handles=[
            _rectangle(0, 0, STATUS_COLOURS[s], label=f"{s.value} {counts[s]}") for s in counts
        ],
        loc="outside lower center",
        ncols=3,
        fontsize=LABEL_PT,
        frameon=False,
    )
    # Crisp text: a few hundred antialiased labels would cost more bytes than the budget allows
    # at a readable resolution.
    for text in figure.findobj(Text):
        text.set_antialiased(False)
    return png(figure)


def _rectangle(column: float, row: float, colour: str, label: str | None = None) -> Rectangle:
    return Rectangle(
        (column, row),
        1,
        1,
        facecolor=colour,
        edgecolor="white",
        linewidth=1,
        antialiased=False,
        label=label,
    )
