"""A team asset beside the audits that reads a capture without declaring a diagnostic.

The consumer map finds it and classifies it unknown, so the capture it reads is served as a
full replay.
"""

import dagster as dg


@dg.asset(deps=[dg.AssetKey(["small", "captured_fold"])], group_name="team")
def capture_dashboard() -> None:
    """A team's dashboard over the small audit's captured folds."""
