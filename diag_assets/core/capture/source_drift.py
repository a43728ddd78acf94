"""The drift policy: when a warm read re-hashes the market data behind a capture.

A capture is found by its request key without reading the market data. The drift policy says
how often a warm read re-hashes the fold's bar window anyway, to prove the capture still
matches its source: ``off``, on every read (``on_read``), or on a sampled share
(``sampled:P``). A drifted capture is marked stale and re-captured.
"""

import random
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.errors import DiagInputError


class DriftPolicy(BaseModel):
    """When a warm read re-hashes the source window: ``off``, ``on_read`` or ``sampled:p``."""

    model_config = ConfigDict(frozen=True)

    mode: Literal["off", "on_read", "sampled"] = "off"
    rate: float = Field(default=0.0, ge=0.0, le=1.0)

    @classmethod
    def parse(cls, text: str) -> "DriftPolicy":
        """``off`` | ``on_read`` | ``sampled:P`` with 0 <= P <= 1."""
        if text == "off":
            return cls(mode="off", rate=0.0)
        if text == "on_read":
            return cls(mode="on_read", rate=1.0)
        match = re.fullmatch(r"sampled:(0(\.\d+)?|1(\.0+)?)", text)
        if match is None:
            raise DiagInputError(
                f"check_drift={text!r} is not a drift policy.",
                "use 'off', 'on_read' or 'sampled:P' with P between 0 and 1, e.g. 'sampled:0.1'.",
            )
        return cls(mode="sampled", rate=float(match[1]))

    def __str__(self) -> str:
        return self.mode if self.mode != "sampled" else f"sampled:{self.rate:g}"

    def should_check(self, rng: random.Random) -> bool:
        """Whether this read checks for drift."""
        if self.mode == "off":
            return False
        return self.mode == "on_read" or rng.random() < self.rate
