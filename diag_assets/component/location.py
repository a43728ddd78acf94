"""A code location of audits: each audit's definitions, composed with the shared resources.

:func:`build_location` is what an :class:`~diag_assets.component.AuditComponent` returns and
what the packaged code location (:mod:`diag_assets.definitions`) is made of.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from diag_assets.audit.approval import refuse_automated_approval
from diag_assets.audit.diagnostics import build_diagnostics
from diag_assets.audit.reports import build_reports
from diag_assets.capture.assets import build_capture
from diag_assets.capture.readers import capture_readers, with_location_readers
from diag_assets.component.audit import Audit, unique_prefixes
from diag_assets.component.automation import automation_sensor, refuse_automated_capture
from diag_assets.core.names import CAPTURED_FOLD
from diag_assets.gates.fixture_set import build_fixture_gates
from diag_assets.gates.phase0 import build_phase0, consumer_map_asset
from diag_assets.maintenance.gc import build_gc
from diag_assets.market.assets import build_market
from resources.environment import location_resources
from resources.market_data import MarketDataResource, bind_market_data
from sensors.reaudit import build_reaudit_requests
from sensors.symbols import build_register_symbols


@dataclass(frozen=True)
class AuditDefinitions:
    """One audit's definitions, before the code location hands its capture the readers."""

    audit: Audit
    defs: dg.Definitions

    def asset(self, name: str) -> dg.AssetsDefinition:
        """The audit's assets definition that holds the asset ``name`` (unprefixed)."""
        key = self.audit.key(name)
        for asset in self.defs.assets or []:
            if isinstance(asset, dg.AssetsDefinition) and key in asset.keys:
                return asset
        raise KeyError(f"The audit {self.audit.label} has no asset {name}.")


def build_audit(audit: Audit) -> AuditDefinitions:
    """Everything one audit defines, except the consumer map (see :func:`build_location`)."""
    return AuditDefinitions(
        audit,
        dg.Definitions.merge(
            build_market(audit),
            build_capture(audit),
            build_diagnostics(audit),
            build_reports(audit),
            build_phase0(audit),
            build_fixture_gates(audit),
            build_gc(audit),
            dg.Definitions(sensors=[build_register_symbols(audit), build_reaudit_requests(audit)]),
        ),
    )


def build_location(
    audits: Sequence[tuple[Audit, MarketDataResource]],
    extra_assets: Sequence[dg.AssetsDefinition] = (),
    resources: Mapping[str, Any] | None = None,
) -> dg.Definitions:
    """A code location of ``audits``, each with its market data, plus ``extra_assets``.

    ``resources`` replace the shared resource set of the profile ``DIAG_ENV`` selects (and may
    replace an audit's market data, by its resource key). Each market data resource is bound
    (:func:`~resources.market_data.bind_market_data`): no run can override its settings. The
    readers of each audit's captured fold are collected from every composed asset
    (``extra_assets`` included) and handed to its consumer map and to the capture itself.

    Each audit gets its automation-condition sensor, and the location refuses an automation
    condition that could request a capture (:mod:`diag_assets.component.automation`).

    Raises:
        DiagInputError: two audits share a prefix, a sensor or schedule would launch a job
            that approves cold captures, or an automation condition could request an asset
            that replays a fine-tune.
    """
    unique_prefixes([audit for audit, _ in audits])
    built = [build_audit(audit) for audit, _ in audits]
    every_asset = [
        asset
        for part in built
        for asset in part.defs.assets or []
        if isinstance(asset, dg.AssetsDefinition)
    ] + list(extra_assets)
    parts = []
    for part in built:
        capture = part.audit.key(CAPTURED_FOLD)
        readers = capture_readers(every_asset, capture)
        own = [a for a in part.defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
        composed = [
            *with_location_readers(own, readers, capture),
            consumer_map_asset(part.audit, readers),
        ]
        keys = [key for asset in composed for key in asset.keys]
        parts.append(
            dg.Definitions(
                assets=composed,
                jobs=part.defs.jobs,
                sensors=[*(part.defs.sensors or []), automation_sensor(part.audit, keys)],
                schedules=part.defs.schedules,
            )
        )
    shared = {**location_resources(), **{a.market_data_key: md for a, md in audits}}
    every_resource = {
        key: bind_market_data(resource) if isinstance(resource, MarketDataResource) else resource
        for key, resource in {**shared, **(resources or {})}.items()
    }
    location = dg.Definitions.merge(
        *parts, dg.Definitions(assets=list(extra_assets), resources=every_resource)
    )
    refuse_automated_approval(location)
    return refuse_automated_capture(location)
