"""The diag-harness code location: its audits, composed once with the shared resources.

The packaged code location is one :class:`~diag_assets.component.AuditComponent`: the
reference recipe on the synthetic ``defi_top5`` universe (or on a folder of real candles,
``DIAG_MARKET_DATA_DIR``), without a prefix, so its asset keys and job names are the
released ones. A team's Dagster project gets the same audit graph from a ``defs.yaml``.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from diag_assets.component.audit import Audit
from diag_assets.component.component import AuditComponent
from diag_assets.component.location import AuditDefinitions, build_audit, build_location
from resources.environment import market_data_resource
from resources.market_data import MarketDataResource

__all__ = [
    "REFERENCE_AUDIT",
    "REFERENCE_MARKET_DATA",
    "AuditDefinitions",
    "build_audit",
    "build_definitions",
    "build_location",
    "defs",
]


def packaged_audit() -> tuple[Audit, MarketDataResource]:
    """The packaged audit: the reference recipe on defi_top5 (or ``DIAG_MARKET_DATA_DIR``)."""
    audit, _ = AuditComponent().resolve()
    return audit, market_data_resource()


REFERENCE_AUDIT, REFERENCE_MARKET_DATA = packaged_audit()


def build_definitions(
    extra_assets: Sequence[dg.AssetsDefinition] = (), resources: Mapping[str, Any] | None = None
) -> dg.Definitions:
    """The packaged code location: the reference audit, plus ``extra_assets``."""
    return build_location(
        [(REFERENCE_AUDIT, REFERENCE_MARKET_DATA)], extra_assets=extra_assets, resources=resources
    )


defs = build_definitions()
