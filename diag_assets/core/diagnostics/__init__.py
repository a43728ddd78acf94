"""The diagnostics of a captured fold, one module each, and what they may claim.

Importing this package (which importing any of its modules does first) registers every
diagnostic in the consumer registry, so the registry is complete whichever module is
imported first.
"""

from diag_assets.core.diagnostics import (  # noqa: F401 - each module registers its diagnostic
    anchor,
    calibration,
    drift,
    probe,
    spread,
)
