"""The capture cache resource: artifact store + catalog + single-flight lease + drift policy.

Embedded profile: SQLite catalog and file locks beside the artifacts. Production: the catalog
and the leases in PostgreSQL (the leases on dedicated, session-pinned connections), the
artifacts in S3.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from diag_assets.core.capture.cache import CaptureService
from diag_assets.core.capture.source_drift import DriftMode, DriftPolicy
from diag_assets.core.storage.catalog.catalog import CaptureCatalog, PostgresCatalog, SqliteCatalog
from diag_assets.core.storage.lease.base import Lease
from diag_assets.core.storage.lease.file import FileLease
from diag_assets.core.storage.lease.postgres import PostgresLease
from diag_assets.launchpad import DriftModeChoice
from resources.storage import ArtifactStoreResource


class CatalogResource(dg.ConfigurableResource, ABC):
    """Where the DIAGNOSTIC_CAPTURE catalog lives."""

    @abstractmethod
    def catalog(self) -> CaptureCatalog:
        """An open catalog, migrated to the current schema. Close it when done."""


class SqliteCatalogResource(CatalogResource):
    """A SQLite file (the embedded profile)."""

    path: str = Field(description="SQLite database file of the catalog.")

    def catalog(self) -> CaptureCatalog:
        """Open (and migrate) the SQLite catalog."""
        return SqliteCatalog(self.path)


class PostgresCatalogResource(CatalogResource):
    """A PostgreSQL database (the production profile)."""

    dsn: str = Field(description="libpq DSN of the catalog database; set it with an EnvVar.")

    def catalog(self) -> CaptureCatalog:
        """Open (and migrate) the PostgreSQL catalog."""
        return PostgresCatalog(self.dsn)


class LeaseResource(dg.ConfigurableResource, ABC):
    """How concurrent captures of one cell are made single-flight."""

    @abstractmethod
    def lease(self) -> Lease:
        """A lease manager."""


class FileLeaseResource(LeaseResource):
    """OS file locks in a folder: one machine (the embedded profile)."""

    root: str = Field(description="Folder of the lock files.")

    def lease(self) -> Lease:
        """File locks under ``root``."""
        Path(self.root).mkdir(parents=True, exist_ok=True)
        return FileLease(self.root)


class PostgresLeaseResource(LeaseResource):
    """PostgreSQL advisory locks: any number of machines (the production profile).

    Connect directly or through a session-mode pool: PgBouncer in transaction mode breaks
    session-level advisory locks.
    """

    dsn: str = Field(description="libpq DSN for the lease connections; set it with an EnvVar.")

    def lease(self) -> Lease:
        """Advisory locks on dedicated connections."""
        return PostgresLease(self.dsn)


def drift_fields(check_drift: str) -> dict[str, Any]:
    """The resource fields of a drift policy written as text (``off``, ``on_read``, ``sampled:P``).

    The text form is what ``DIAG_CHECK_DRIFT`` and the drift-rate gate's recommendation use;
    :meth:`DriftPolicy.parse` reads it.

    Raises:
        DiagInputError: the text is not a drift policy.
    """
    policy = DriftPolicy.parse(check_drift)
    return {
        "check_drift": DriftModeChoice(policy.mode),
        "drift_sample_rate": policy.sample_rate,
    }


class CaptureCacheResource(dg.ConfigurableResource):
    """Captured folds as memoized, single-flight, drift-checked artifacts."""

    artifacts: ArtifactStoreResource
    catalog: CatalogResource
    lease: LeaseResource
    lease_wait_s: float = Field(
        default=3_600.0,
        ge=0,
        description="How long a run waits for another run's capture of the same cell.",
    )
    check_drift: DriftModeChoice = Field(
        default=DriftModeChoice(DriftMode.OFF),
        description="When a warm read re-hashes the market data to prove the capture still "
        "matches it: off, on_read (every read) or sampled (a share of reads, "
        "drift_sample_rate). The environment's DIAG_CHECK_DRIFT ('sampled:P') sets both.",
    )
    drift_sample_rate: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Share of warm reads that re-hash the market data when check_drift is "
        "sampled (required then); unset for off and on_read.",
    )
    parity_check_rate: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Share of dataset_only captures that also replay one trial in full and "
        "assert X/y parity. Unset: the capture mode policy's rate.",
    )

    def drift_policy(self) -> DriftPolicy:
        """The drift policy of ``check_drift`` and ``drift_sample_rate``.

        Raises:
            DiagInputError: sampled without a rate, or a rate beside off or on_read.
        """
        return DriftPolicy.of(DriftMode(self.check_drift), self.drift_sample_rate)

    @contextmanager
    def open(self, *, default_parity_check_rate: float = 0.0) -> Iterator[CaptureService]:
        """The capture cache over this resource's parts, closed when the block ends.

        ``with capture_cache.open() as cache:`` is the one way into the cache: ``cache.get``
        serves a request, ``cache.is_warm`` tells whether it would be served warm,
        ``cache.entries`` lists the catalog. ``default_parity_check_rate`` applies when the
        resource does not set its own.
        """
        rate = self.parity_check_rate
        drift = self.drift_policy()  # a bad policy fails before anything opens
        artifacts = self.artifacts.captures()
        lease = self.lease.lease()
        try:
            catalog = self.catalog.catalog()
        except BaseException:
            lease.close()
            raise
        with CaptureService(
            artifacts,
            catalog,
            lease,
            lease_wait_s=self.lease_wait_s,
            drift=drift,
            parity_check_rate=default_parity_check_rate if rate is None else rate,
        ) as cache:
            yield cache
