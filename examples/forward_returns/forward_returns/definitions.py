"""The team's Dagster code location: every audit under ``defs/``.

``dagster dev -m forward_returns.definitions`` serves it; each ``defs.yaml`` below ``defs/``
is one audit of the diag-harness audit component.
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """The audits of the defs folder."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
