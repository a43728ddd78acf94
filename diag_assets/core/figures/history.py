"""The pictures of the audit history the Phase-0 gates read: anchor cost and re-audits."""

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from diag_assets.core.figures.render import PALETTE, new_figure

MAX_ELAPSED_BINS = 12
# More cells than this are summed into one bar, so the names stay readable.
MAX_CELL_BARS = 25
OTHER_CELLS = "other cells"
NO_DATA = "no data in the window"
# The ids of the bars that carry the history's numbers.
ELAPSED_GID = "elapsed_bins"
CELLS_GID = "cells"


def elapsed_edges(values: Sequence[float]) -> np.ndarray:
    """Equal-width bin edges over ``values`` (numpy's rule, at most 12 bins)."""
    data = np.asarray(values, np.float64)
    edges = np.histogram_bin_edges(data, bins="auto")
    if len(edges) - 1 > MAX_ELAPSED_BINS:
        edges = np.histogram_bin_edges(data, bins=MAX_ELAPSED_BINS)
    return edges


def bin_labels(edges: Sequence[float] | np.ndarray, unit: str) -> list[str]:
    """One label per bin, ``0.05-0.10 s``, with the fewest decimals that tell every edge apart.

    At most 6 decimals: edges closer than a microsecond keep that precision.
    """
    values = [float(edge) for edge in edges]
    digits = next(
        (d for d in range(6) if len({f"{value:.{d}f}" for value in values}) == len(values)), 6
    )
    texts = [f"{value:.{digits}f}" for value in values]
    return [f"{texts[i]}-{texts[i + 1]} {unit}" for i in range(len(texts) - 1)]


def _no_data(title: str, xlabel: str, ylabel: str) -> Figure:
    figure = new_figure()
    ax = figure.add_subplot()
    ax.text(0.5, 0.5, NO_DATA, ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks([])
    ax.set_yticks([])
    return figure


def elapsed_histogram(values: Sequence[float], *, what: str = "s22a1 anchor") -> Figure:
    """A histogram of fit times in seconds: one bar per bin, each labelled with its range."""
    title = f"{what} elapsed time ({len(values)} timed fits)"
    xlabel, ylabel = "elapsed time per fit (s)", "fits"
    if not values:
        return _no_data(title, xlabel, ylabel)
    edges = elapsed_edges(values)
    counts, _ = np.histogram(np.asarray(values, np.float64), bins=edges)
    figure = new_figure()
    ax = figure.add_subplot()
    positions = np.arange(len(counts))
    ax.bar(positions, counts, width=0.9, color=PALETTE["primary"], gid=ELAPSED_GID)
    ax.set_xticks(positions, bin_labels(edges, "s"), rotation=40, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, axis="y")
    return figure


def ranked_cells(per_cell: Mapping[str, int], limit: int = MAX_CELL_BARS) -> list[tuple[str, int]]:
    """Cells by audits, most first (ties by name); beyond ``limit`` the rest are one bar."""
    ranked = sorted(per_cell.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) <= limit:
        return ranked
    head, tail = ranked[: limit - 1], ranked[limit - 1 :]
    return [*head, (f"{OTHER_CELLS} ({len(tail)})", sum(count for _, count in tail))]


def audits_per_cell(per_cell: Mapping[str, int]) -> Figure:
    """One horizontal bar per cell: how many s40 audits it had in the window."""
    title = f"Audits per cell ({sum(per_cell.values())} audits, {len(per_cell)} cells)"
    xlabel, ylabel = "audits (s40 verdicts)", "cell"
    if not per_cell:
        return _no_data(title, xlabel, ylabel)
    ranked = ranked_cells(per_cell)
    height = min(8.0, max(2.4, 0.9 + 0.24 * len(ranked)))
    figure = new_figure(6.0, height)
    ax = figure.add_subplot()
    positions = np.arange(len(ranked))
    ax.barh(positions, [count for _, count in ranked], color=PALETTE["secondary"], gid=CELLS_GID)
    ax.set_yticks(positions, [cell for cell, _ in ranked], fontsize=8)
    ax.invert_yaxis()  # most audited on top
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, axis="x")
    return figure
