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
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from diag_assets.core.errors import DiagInputError
from resources.capture_cache import (
    CaptureCacheResource,
    FileLeaseResource,
    PostgresCatalogResource,
    PostgresLeaseResource,
    SqliteCatalogResource,
)
from resources.market_data import DirectoryMarketDataResource, SyntheticMarketDataResource
from resources.requests import AuditRequestsResource
from resources.storage import LocalArtifactStore, S3ArtifactStore

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


def local_resources() -> dict[str, Any]:
    """The embedded profile: artifacts, SQLite catalog and file locks under DIAG_STORAGE_DIR."""
    root = Path(os.environ.get("DIAG_STORAGE_DIR", DEFAULT_STORAGE_DIR)).resolve()
    artifacts = LocalArtifactStore(root=str(root))
    return {
        "market_data": market_data_resource(),
        "artifacts": artifacts,
        "capture_cache": CaptureCacheResource(
            artifacts=artifacts,
            catalog=SqliteCatalogResource(path=str(root / "catalog.sqlite")),
            lease=FileLeaseResource(root=str(root / "leases")),
            check_drift=os.environ.get("DIAG_CHECK_DRIFT", "off"),
        ),
        "audit_requests": AuditRequestsResource(
            directory=os.environ.get("DIAG_REQUESTS_DIR", str(root.parent / "requests"))
        ),
    }


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
    artifacts = S3ArtifactStore(
        s3=S3Resource(
            endpoint_url=os.environ.get("DIAG_S3_ENDPOINT_URL") or None,
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
            max_attempts=3,
        ),
        bucket=dg.EnvVar("DIAG_S3_BUCKET"),
        prefix=os.environ.get("DIAG_S3_PREFIX", "diag-harness"),
    )
    return {
        "market_data": market_data_resource(),
        "artifacts": artifacts,
        "capture_cache": CaptureCacheResource(
            artifacts=artifacts,
            catalog=PostgresCatalogResource(dsn=dg.EnvVar("DIAG_PG_DSN")),
            lease=PostgresLeaseResource(dsn=dg.EnvVar("DIAG_PG_DSN")),
            check_drift=os.environ.get("DIAG_CHECK_DRIFT", "off"),
        ),
        "audit_requests": AuditRequestsResource(
            directory=os.environ.get("DIAG_REQUESTS_DIR", "/var/lib/diag-harness/requests")
        ),
    }


resources_by_env: dict[Environment, Callable[[], dict[str, Any]]] = {
    Environment.LOCAL: local_resources,
    Environment.PRODUCTION: production_resources,
}


def resources_for_current_env() -> dict[str, Any]:
    """The resource set of the profile ``DIAG_ENV`` selects."""
    return resources_by_env[get_env()]()
