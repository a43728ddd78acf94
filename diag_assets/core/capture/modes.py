"""Capture modes and the capture request: what a capture run is asked to do."""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.recipe.protocol import TrialSettings


class CaptureMode(StrEnum):
    """How much of the fine-tune a capture replays.

    - ``full_replay``: prep and every trial; any diagnostic may read it;
    - ``dataset_only``: prep until X/y exist, no training; ``xy_only`` readers only;
    - ``single_fit``: prep and one trial; explicit opt-in only, ``xy_only`` readers only.
    """

    FULL_REPLAY = "full_replay"
    DATASET_ONLY = "dataset_only"
    SINGLE_FIT = "single_fit"


class CaptureConfig(BaseModel):
    """What a capture run is asked to do; all of it is part of the capture key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: CaptureMode = CaptureMode.FULL_REPLAY
    trials: TrialSettings = Field(default_factory=TrialSettings)

    def with_mode(self, mode: CaptureMode) -> "CaptureConfig":
        """The same request in another mode."""
        return self.model_copy(update={"mode": CaptureMode(mode)})
