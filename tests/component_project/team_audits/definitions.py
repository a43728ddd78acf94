"""The team's code location: every component under ``defs/``."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """The audits of the defs folder."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
