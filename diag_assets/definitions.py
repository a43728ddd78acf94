"""The diag-harness code location: small per-package Definitions, composed once."""

import dagster as dg

from diag_assets.audit import diagnostics, reports
from diag_assets.capture import assets as capture
from diag_assets.gates import fixture_set, phase0
from diag_assets.maintenance import gc
from diag_assets.market import assets as market
from resources.environment import resources_for_current_env
from sensors.reaudit import reaudit_requests
from sensors.symbols import register_symbols

defs = dg.Definitions.merge(
    market.defs,
    capture.defs,
    diagnostics.defs,
    gc.defs,
    reports.defs,
    phase0.defs,
    fixture_set.defs,
    dg.Definitions(
        sensors=[register_symbols, reaudit_requests], resources=resources_for_current_env()
    ),
)
