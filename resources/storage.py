"""Artifact storage resources: the blob store behind captures and results.

The S3 store of the production profile is in :mod:`resources.s3_storage`, so that a code
location on the local profile loads without importing boto3 and dagster-aws.
"""

from abc import ABC, abstractmethod
from typing import Any

import dagster as dg
from pydantic import Field

from diag_assets.core.capture.artifacts import CaptureArtifacts
from diag_assets.core.storage.blob import BlobStore, LocalBlobStore
from diag_assets.core.storage.results import ResultStore


class ArtifactStoreResource(dg.ConfigurableResource, ABC):
    """Where captured folds and diagnostic results are stored."""

    @abstractmethod
    def blob_store(self) -> BlobStore:
        """The core blob store this resource configures."""

    def captures(self) -> CaptureArtifacts:
        """Captured folds in this store."""
        return CaptureArtifacts(self.blob_store())

    def results(self) -> ResultStore:
        """Per-cell diagnostic results in this store."""
        return ResultStore(self.blob_store())

    def ensure_lifecycle(self, abort_multipart_after_days: int = 1) -> dict[str, Any]:
        """Put the store's cleanup rules in place; a local folder has none to put."""
        return {}


class LocalArtifactStore(ArtifactStoreResource):
    """A folder on the local disk (the embedded profile)."""

    root: str = Field(description="Folder that holds captures/ and results/.")

    def blob_store(self) -> BlobStore:
        """A local blob store rooted at ``root``."""
        return LocalBlobStore(self.root)
