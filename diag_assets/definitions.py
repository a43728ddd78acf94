"""The diag-harness code location: small per-module Definitions, composed once."""

import dagster as dg

from diag_assets import capture, diagnostics, gates, maintenance, market, replay_gates, reports
from resources.environment import resources_for_current_env
from sensors.reaudit import reaudit_requests
from sensors.symbols import register_symbols

defs = dg.Definitions.merge(
    market.defs,
    capture.defs,
    diagnostics.defs,
    maintenance.defs,
    reports.defs,
    gates.defs,
    replay_gates.defs,
    dg.Definitions(
        sensors=[register_symbols, reaudit_requests], resources=resources_for_current_env()
    ),
)
