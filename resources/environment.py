"""The one environment switch: ``DIAG_ENV`` picks the resource set; assets never branch on it.

``local`` (the default) is the embedded profile: SQLite instance storage under the project's
``DAGSTER_HOME``; artifacts, the SQLite capture catalog and file-lock leases in a local folder.
``production``: the capture catalog and leases in PostgreSQL, the artifacts in S3 (the
instance itself is configured by ``deploy/dagster.production.yaml``).

Market data is the synthetic ``defi_top5`` universe unless ``DIAG_MARKET_DATA_DIR`` names a
folder of real candles (then ``DIAG_UNIVERSE`` names that universe, default ``real``).
"""

import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from diag_assets.core.errors import DiagInputError
from diag_assets.core.storage.blob import STORAGE_DIR_ENV
from resources.capture_cache import (
    CaptureCacheResource,
    FileLeaseResource,
    PostgresCatalogResource,
    PostgresLeaseResource,
    SqliteCatalogResource,
    drift_fields,
)
from resources.market_data import (
    DirectoryMarketDataResource,
    MarketDataResource,
    SyntheticMarketDataResource,
)
from resources.requests import AuditRequestsResource
from resources.storage import ArtifactStoreResource, LocalArtifactStore

if TYPE_CHECKING:
    from resources.s3_storage import S3ArtifactStore

DEFAULT_STORAGE_DIR = ".diag/artifacts"


class Environment(StrEnum):
    """Deployment profiles."""

    LOCAL = "local"
    PRODUCTION = "production"


def get_env() -> Environment:
    """The profile named by ``DIAG_ENV`` (default ``local``)."""
    value = os.environ.get("DIAG_ENV", Environment.LOCAL.value)
    try:
        return Environment(value)
    except ValueError:
        valid = ", ".join(e.value for e in Environment)
        raise DiagInputError(
            f"DIAG_ENV={value!r} is not a known profile.", f"set DIAG_ENV to one of: {valid}."
        ) from None


def market_data_resource() -> SyntheticMarketDataResource | DirectoryMarketDataResource:
    """Synthetic defi_top5 by default; a folder of real candles when DIAG_MARKET_DATA_DIR is set."""
    directory = os.environ.get("DIAG_MARKET_DATA_DIR")
    if not directory:
        return SyntheticMarketDataResource()
    return DirectoryMarketDataResource(
        directory=directory,
        universe=os.environ.get("DIAG_UNIVERSE", "real"),
        timeframe=os.environ.get("DIAG_TIMEFRAME", "1h"),
    )


DEFAULT_LEASE_WAIT_S = 3_600.0


def embedded_capture_cache(
    artifacts: ArtifactStoreResource,
    root: Path,
    *,
    check_drift: str = "off",
    lease_wait_s: float = DEFAULT_LEASE_WAIT_S,
    parity_check_rate: float | None = None,
) -> CaptureCacheResource:
    """The embedded profile's capture cache: SQLite catalog and file locks under ``root``."""
    return CaptureCacheResource(
        artifacts=artifacts,
        catalog=SqliteCatalogResource(path=str(root / "catalog.sqlite")),
        lease=FileLeaseResource(root=str(root / "leases")),
        lease_wait_s=lease_wait_s,
        parity_check_rate=parity_check_rate,
        **drift_fields(check_drift),
    )


def postgres_capture_cache(
    artifacts: ArtifactStoreResource,
    dsn: str | dg.EnvVar,
    *,
    check_drift: str = "off",
    lease_wait_s: float = DEFAULT_LEASE_WAIT_S,
) -> CaptureCacheResource:
    """The production profile's capture cache: catalog and leases in PostgreSQL."""
    return CaptureCacheResource(
        artifacts=artifacts,
        catalog=PostgresCatalogResource(dsn=dsn),
        lease=PostgresLeaseResource(dsn=dsn),
        lease_wait_s=lease_wait_s,
        **drift_fields(check_drift),
    )


def build_local_resources(
    root: Path,
    *,
    market_data: MarketDataResource | None = None,
    check_drift: str = "off",
    lease_wait_s: float = DEFAULT_LEASE_WAIT_S,
    artifacts_dir: Path | None = None,
    requests_dir: Path | None = None,
) -> dict[str, Any]:
    """The embedded profile's resource set: catalog and leases under ``root``.

    Artifacts go to ``artifacts_dir`` (default ``root/artifacts``), request files are read
    from ``requests_dir`` (default ``root/requests``). Tests and benchmarks build their
    resources here too, so they run what the code location runs.
    """
    artifacts = LocalArtifactStore(root=str(artifacts_dir or root / "artifacts"))
    return {
        "market_data": market_data or SyntheticMarketDataResource(),
        "artifacts": artifacts,
        "capture_cache": embedded_capture_cache(
            artifacts, root, check_drift=check_drift, lease_wait_s=lease_wait_s
        ),
        "audit_requests": AuditRequestsResource(directory=str(requests_dir or root / "requests")),
    }


def build_production_resources(
    artifacts: "S3ArtifactStore",
    dsn: str | dg.EnvVar,
    *,
    requests_dir: Path,
    market_data: MarketDataResource | None = None,
    check_drift: str = "off",
    lease_wait_s: float = DEFAULT_LEASE_WAIT_S,
) -> dict[str, Any]:
    """The production profile's resource set: catalog and leases at ``dsn``, artifacts in S3."""
    return {
        "market_data": market_data or SyntheticMarketDataResource(),
        "artifacts": artifacts,
        "capture_cache": postgres_capture_cache(
            artifacts, dsn, check_drift=check_drift, lease_wait_s=lease_wait_s
        ),
        "audit_requests": AuditRequestsResource(directory=str(requests_dir)),
    }


def local_resources() -> dict[str, Any]:
    """The embedded profile: artifacts, SQLite catalog and file locks under DIAG_STORAGE_DIR.

    The artifacts live in the storage folder itself (not in an ``artifacts/`` below it), as
    they always have, so existing captures stay where they are.
    """
    root = Path(os.environ.get(STORAGE_DIR_ENV, DEFAULT_STORAGE_DIR)).resolve()
    return build_local_resources(
        root,
        market_data=market_data_resource(),
        check_drift=os.environ.get("DIAG_CHECK_DRIFT", "off"),
        artifacts_dir=root,
        requests_dir=Path(os.environ.get("DIAG_REQUESTS_DIR", str(root.parent / "requests"))),
    )


PRODUCTION_REQUIRED = ("DIAG_PG_DSN", "DIAG_S3_BUCKET")


def production_resources() -> dict[str, Any]:
    """The production profile: catalog and leases in PostgreSQL, artifacts in S3.

    Secrets stay in the environment (``dg.EnvVar``), so the UI never shows them. S3
    credentials come from boto3's usual chain (environment, profile or instance role).
    """
    missing = [name for name in PRODUCTION_REQUIRED if not os.environ.get(name)]
    if missing:
        raise DiagInputError(
            f"DIAG_ENV=production needs {' and '.join(missing)}, not set in this environment.",
            "set DIAG_PG_DSN (libpq DSN of the catalog database) and DIAG_S3_BUCKET (the "
            "artifact bucket); see OPERATIONS.md.",
        )
    # Imported with the profile: the local one loads without boto3 and dagster-aws.
    from dagster_aws.s3 import S3Resource

    from resources.s3_storage import S3ArtifactStore

    artifacts = S3ArtifactStore(
        s3=S3Resource(
            endpoint_url=os.environ.get("DIAG_S3_ENDPOINT_URL") or None,
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
            max_attempts=3,
        ),
        bucket=dg.EnvVar("DIAG_S3_BUCKET"),
        prefix=os.environ.get("DIAG_S3_PREFIX", "diag-harness"),
    )
    return build_production_resources(
        artifacts,
        dg.EnvVar("DIAG_PG_DSN"),
        market_data=market_data_resource(),
        check_drift=os.environ.get("DIAG_CHECK_DRIFT", "off"),
        requests_dir=Path(os.environ.get("DIAG_REQUESTS_DIR", "/var/lib/diag-harness/requests")),
    )


resources_by_env: dict[Environment, Callable[[], dict[str, Any]]] = {
    Environment.LOCAL: local_resources,
    Environment.PRODUCTION: production_resources,
}


def resources_for_current_env() -> dict[str, Any]:
    """The resource set of the profile ``DIAG_ENV`` selects."""
    return resources_by_env[get_env()]()


# Keyed by the environment the profiles read (every DIAG_* and AWS_* variable).
_SHARED: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}


def location_resources() -> dict[str, Any]:
    """The resources every audit of the code location shares: artifacts, cache, requests.

    The same objects for every caller while the environment is the same, so the audits of one
    code location, each built by its own component, merge into one resource set (Dagster
    merges definitions whose resources under one key are the same object).
    """
    signature = tuple(
        sorted((k, v) for k, v in os.environ.items() if k.startswith(("DIAG_", "AWS_")))
    )
    shared = _SHARED.get(signature)
    if shared is None:
        every = resources_for_current_env()
        shared = _SHARED[signature] = {k: v for k, v in every.items() if k != "market_data"}
    return shared
