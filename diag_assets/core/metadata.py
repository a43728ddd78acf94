"""The metadata contract: what ``captured_fold`` and ``s22a1_anchor`` record for their readers.

The assets build this part of their materialization metadata from these models, one
metadata entry per field, and the history reader the gates compute from
(:mod:`diag_assets.core.gates.history`) parses the stored metadata through the same models.
A field cannot be renamed on one side only, and a value of the wrong type fails the asset
that records it, so the anchor-cost and reuse gates are never silently left without data.

A key that an older materialization did not record, or a value of the wrong type, reads as
``None``: the gates count such an event as untimed or unsized, as they always did.
"""

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from diag_assets.core.capture.outcomes import CaptureOutcome


class MaterializationMetadata(BaseModel):
    """The typed part of one asset's materialization metadata; the field names are its keys."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    cell_ref: str = Field(min_length=1, description="The audited cell.")

    def values(self) -> dict[str, Any]:
        """The plain value of each field, keyed by the metadata key it is recorded under."""
        return self.model_dump(mode="json")

    @classmethod
    def parse(cls, metadata: Mapping[str, Any]) -> Self | None:
        """The stored metadata as this model; ``None`` when it names no cell.

        Keys the model does not declare are ignored. A declared key that is missing (an
        older materialization) or whose value does not have the field's type reads as
        ``None``, as an absent or unreadable value always did for the gates.
        """
        values = {key: metadata.get(key) for key in cls.model_fields}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            unreadable = {str(problem["loc"][0]) for problem in error.errors()}
        if "cell_ref" in unreadable:
            return None
        return cls.model_validate(values | dict.fromkeys(unreadable))


class CaptureMetadata(MaterializationMetadata):
    """What a ``captured_fold`` materialization records for the gates, demo and benchmarks."""

    cache: CaptureOutcome | None = Field(description="How the capture was served.")
    served_in_s: float | None = Field(description="Seconds this request took to be served.")
    capture_elapsed_s: float | None = Field(
        description="Seconds the capture itself took when it was replayed (cold)."
    )
    bytes: int | None = Field(description="Bytes of the capture's artifact files.")
    content_hash: str | None = Field(description="The capture's data version.")
    capture_events: list[dict[str, Any]] | None = Field(
        description="The capture events of this request (hit, miss, drift checks, ...)."
    )


class AnchorMetadata(MaterializationMetadata):
    """What an ``s22a1_anchor`` materialization records for the anchor-cost gate."""

    elapsed_s: float | None = Field(description="Seconds the anchor fit took.")
    rows: int | None = Field(description="Rows of the captured fold the anchor was fitted on.")
    best_iter: int | None = Field(description="The anchor's best iteration.")
