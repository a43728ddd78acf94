"""The canvas, the colours and the PNG budget every figure shares."""

import base64
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# An image in metadata is stored in the event log with every materialization: keep it small.
MAX_FIGURE_BYTES = 100_000
DEFAULT_DPI = 100
MIN_DPI = 40

# One meaning per colour across every figure and the summary grid.
PALETTE = {
    "certified": "#2e7d32",
    "downgraded": "#f9a825",
    "attention": "#ef6c00",
    "error": "#c62828",
    "neutral": "#9e9e9e",
    "empty": "#eeeeee",
    "primary": "#1565c0",
    "secondary": "#6a1b9a",
}


def new_figure(width_in: float = 6.0, height_in: float = 3.2) -> Figure:
    """A figure on its own Agg canvas (safe in any thread; nothing global is touched)."""
    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png(figure: Figure, *, dpi: int = DEFAULT_DPI, max_bytes: int = MAX_FIGURE_BYTES) -> bytes:
    """``figure`` as PNG bytes, at the highest resolution (from ``dpi`` down) under ``max_bytes``.

    Raises:
        ValueError: even at the lowest resolution the image is over ``max_bytes``.
    """
    resolution = dpi
    while True:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=resolution, metadata={"Software": None})
        data = buffer.getvalue()
        if len(data) <= max_bytes:
            return data
        if resolution <= MIN_DPI:
            raise ValueError(
                f"The figure is {len(data)} bytes as a PNG at {resolution} dpi, over the "
                f"{max_bytes}-byte budget of an image in metadata: draw fewer elements."
            )
        resolution = max(MIN_DPI, int(resolution * 0.75))


def markdown_image(data: bytes, alt: str) -> str:
    """PNG bytes as a Markdown image the Dagster UI shows inline (a data URI)."""
    encoded = base64.b64encode(data).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"
