"""The diag-harness code location: small per-package Definitions, composed once."""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from diag_assets.audit import diagnostics, reports
from diag_assets.capture import assets as capture
from diag_assets.capture.readers import capture_readers, with_location_readers
from diag_assets.gates import fixture_set, phase0
from diag_assets.maintenance import gc
from diag_assets.market import assets as market
from resources.environment import resources_for_current_env
from sensors.reaudit import reaudit_requests
from sensors.symbols import register_symbols


def build_definitions(
    extra_assets: Sequence[dg.AssetsDefinition] = (), resources: Mapping[str, Any] | None = None
) -> dg.Definitions:
    """The code location: every package's Definitions, plus ``extra_assets``.

    ``resources`` replace the resource set of the profile ``DIAG_ENV`` selects. The readers of
    the captured fold are collected from the composed assets (``extra_assets`` included) and
    handed to the consumer map (``g_c0_consumers``) and to the capture, which serves them when
    a run materializes it alone.
    """
    parts = [
        market.defs,
        diagnostics.defs,
        gc.defs,
        reports.defs,
        phase0.defs,
        fixture_set.defs,
        dg.Definitions(assets=list(extra_assets)),
    ]
    readers = capture_readers(asset for part in parts for asset in part.assets or [])
    capture_assets = [
        asset for asset in capture.defs.assets or [] if isinstance(asset, dg.AssetsDefinition)
    ]
    return dg.Definitions.merge(
        *parts,
        dg.Definitions(
            assets=[
                *with_location_readers(capture_assets, readers),
                phase0.consumer_map_asset(readers),
            ],
            sensors=[register_symbols, reaudit_requests],
            resources=dict(resources or resources_for_current_env()),
        ),
    )


defs = build_definitions()
