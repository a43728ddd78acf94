"""Artifact storage resources: the blob store behind captures and results."""

from abc import ABC, abstractmethod

import dagster as dg
from pydantic import Field

from diag_assets.core.capture import CaptureArtifacts
from diag_assets.core.results import ResultStore
from diag_assets.core.store import BlobStore, LocalBlobStore


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


class LocalArtifactStore(ArtifactStoreResource):
    """A folder on the local disk (the embedded profile)."""

    root: str = Field(description="Folder that holds captures/ and results/.")

    def blob_store(self) -> BlobStore:
        """A local blob store rooted at ``root``."""
        return LocalBlobStore(self.root)
