"""Figures an operator reads in the UI, rendered headless to small PNGs.

Each figure is drawn with matplotlib's object-oriented API on the Agg canvas (no pyplot, no
display, no global state shared between threads) from the same data the verdict or gate used,
and travels as a PNG inside Markdown metadata (:func:`markdown_image`), which the Dagster UI
shows as a picture. :func:`png` keeps every image under :data:`MAX_FIGURE_BYTES`.
"""

from diag_assets.core.figures.render import (
    MAX_FIGURE_BYTES,
    PALETTE,
    markdown_image,
    new_figure,
    png,
)

__all__ = ["MAX_FIGURE_BYTES", "PALETTE", "markdown_image", "new_figure", "png"]
