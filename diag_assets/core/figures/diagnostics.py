"""The pictures of the built-in diagnostics' results, drawn from the numbers they stored.

Each function takes what the verdict (or the anchor's result) keeps, so the picture shows
exactly the data the verdict was decided on: the anchor's whole validation curve and its
``best_iter``, the probe's permutation statistics and observed statistic, the calibration's
reliability bins.
"""

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from diag_assets.core.figures.render import PALETTE, new_figure

# A null of at most a few hundred statistics reads best in about 20 bins.
MAX_NULL_BINS = 20
# The ids of the drawn elements that carry the verdict's data (what a reader can check).
BEST_ITER_GID = "best_iter"
NULL_GID = "permutation_null"
OBSERVED_GID = "observed"
RELIABILITY_GID = "reliability"
COUNTS_GID = "bin_counts"


def learning_curve(curve: Sequence[float], best_iter: int, *, cell_ref: str) -> Figure:
    """The anchor's validation loss per boosting round, with ``best_iter`` (1-based) marked.

    Raises:
        ValueError: the curve is empty or ``best_iter`` is not one of its rounds.
    """
    if not curve or not 1 <= best_iter <= len(curve):
        raise ValueError(
            f"best_iter {best_iter} is not a round of the {len(curve)}-round curve of "
            f"{cell_ref}: the anchor's result is inconsistent."
        )
    rounds = np.arange(1, len(curve) + 1)
    figure = new_figure()
    ax = figure.add_subplot()
    ax.plot(rounds, curve, color=PALETTE["primary"], linewidth=1.5, label="validation loss")
    best = curve[best_iter - 1]
    ax.axvline(best_iter, color=PALETTE["neutral"], linestyle=":", linewidth=1)
    ax.plot(
        [best_iter],
        [best],
        marker="o",
        color=PALETTE["attention"],
        linestyle="none",
        label=f"best_iter {best_iter}: {best:.4g}",
        gid=BEST_ITER_GID,
    )
    ax.set_title(f"s22a1 anchor learning curve, {cell_ref}", fontsize=10)
    ax.set_xlabel("boosting round")
    ax.set_ylabel("validation loss (lower is better)")
    ax.set_xlim(0, len(curve) + 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return figure


def null_edges(null: Sequence[float]) -> np.ndarray:
    """Equal-width bin edges over the null statistics (numpy's rule, at most 20 bins)."""
    values = np.asarray(null, np.float64)
    edges = np.histogram_bin_edges(values, bins="auto")
    if len(edges) - 1 > MAX_NULL_BINS:
        edges = np.histogram_bin_edges(values, bins=MAX_NULL_BINS)
    return edges


def permutation_null(
    null: Sequence[float],
    observed: float,
    *,
    statistic: str,
    p_value: float,
    cell_ref: str,
) -> Figure:
    """A histogram of the probe's statistic on shuffled labels, the real labels' one marked.

    Raises:
        ValueError: ``null`` is empty.
    """
    if len(null) == 0:
        raise ValueError(f"The s40 probe of {cell_ref} stored no permutation statistics.")
    edges = null_edges(null)
    counts, _ = np.histogram(np.asarray(null, np.float64), bins=edges)
    figure = new_figure()
    ax = figure.add_subplot()
    ax.bar(
        edges[:-1],
        counts,
        width=np.diff(edges),
        align="edge",
        color=PALETTE["neutral"],
        edgecolor="white",
        label=f"{len(null)} shuffled labels",
        gid=NULL_GID,
    )
    ax.axvline(
        observed,
        color=PALETTE["primary"],
        linewidth=2,
        label=f"real labels {observed:.4g}",
        gid=OBSERVED_GID,
    )
    low, high = min(edges[0], observed), max(edges[-1], observed)
    margin = (high - low) * 0.05 or 0.01
    ax.set_xlim(low - margin, high + margin)
    ax.set_title(f"s40 permutation null, {cell_ref}: p = {p_value:.3g}", fontsize=10)
    ax.set_xlabel(f"{statistic} (score, no unit)")
    ax.set_ylabel("permutations")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="best")
    return figure


def reliability_diagram(
    lowers: Sequence[float],
    uppers: Sequence[float],
    counts: Sequence[int],
    mean_predicted: Sequence[float | None],
    observed: Sequence[float | None],
    *,
    ece: float,
    cell_ref: str,
) -> Figure:
    """Observed frequency against mean predicted probability per bin, and the bins' counts.

    Empty bins (``None`` means) have no point; the lower panel shows every bin's row count.

    Raises:
        ValueError: the sequences differ in length or are empty.
    """
    n = len(counts)
    if n == 0 or not len(lowers) == len(uppers) == len(mean_predicted) == len(observed) == n:
        raise ValueError(f"The reliability bins of {cell_ref} are empty or ragged.")
    filled = [i for i in range(n) if mean_predicted[i] is not None and observed[i] is not None]
    figure = new_figure(6.0, 4.4)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot([0, 1], [0, 1], color=PALETTE["neutral"], linestyle="--", label="perfect calibration")
    top.plot(
        [mean_predicted[i] for i in filled],
        [observed[i] for i in filled],
        marker="o",
        color=PALETTE["primary"],
        label="observed frequency",
        gid=RELIABILITY_GID,
    )
    top.set_xlim(0, 1)
    top.set_ylim(-0.03, 1.03)
    top.set_ylabel("observed frequency of class 1")
    top.set_title(f"s27 reliability, {cell_ref}: ECE {ece:.4f}", fontsize=10)
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    widths = [uppers[i] - lowers[i] for i in range(n)]
    bottom.bar(
        list(lowers),
        list(counts),
        width=widths,
        align="edge",
        color=PALETTE["secondary"],
        edgecolor="white",
        gid=COUNTS_GID,
    )
    bottom.set_xlabel("predicted probability of class 1 (bin)")
    bottom.set_ylabel("rows")
    bottom.grid(alpha=0.3, axis="y")
    return figure
