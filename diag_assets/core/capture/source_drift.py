"""The drift policy: when a warm read re-hashes the market data behind a capture.

A capture is found by its request key without reading the market data. The drift policy says
how often a warm read re-hashes the fold's bar window anyway, to prove the capture still
matches its source: ``off``, on every read (``on_read``), or on a sampled share
(``sampled:P``). A drifted capture is marked stale and re-captured.
"""

import random
import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.errors import DiagInputError


class DriftMode(StrEnum):
    """When a warm read re-hashes the source window."""

    OFF = "off"
    ON_READ = "on_read"
    SAMPLED = "sampled"


class DriftPolicy(BaseModel):
    """When a warm read re-hashes the source window: ``off``, ``on_read`` or ``sampled:p``."""

    model_config = ConfigDict(frozen=True)

    mode: DriftMode = DriftMode.OFF
    rate: float = Field(default=0.0, ge=0.0, le=1.0)

    @classmethod
    def parse(cls, text: str) -> "DriftPolicy":
        """``off`` | ``on_read`` | ``sampled:P`` with 0 <= P <= 1."""
        if text in (DriftMode.OFF, DriftMode.ON_READ):
            return cls.of(DriftMode(text))
        match = re.fullmatch(r"sampled:(0(\.\d+)?|1(\.0+)?)", text)
        if match is None:
            raise DiagInputError(
                f"check_drift={text!r} is not a drift policy.",
                "use 'off', 'on_read' or 'sampled:P' with P between 0 and 1, e.g. 'sampled:0.1'.",
            )
        return cls.of(DriftMode.SAMPLED, float(match[1]))

    @classmethod
    def of(cls, mode: DriftMode, rate: float | None = None) -> "DriftPolicy":
        """The policy ``mode``; ``sampled`` needs its ``rate`` (0..1), the others take none.

        Raises:
            DiagInputError: ``sampled`` without a rate or with one outside 0..1, or a rate
                given to ``off`` or ``on_read``.
        """
        mode = DriftMode(mode)
        if mode is not DriftMode.SAMPLED:
            if rate is not None:
                raise DiagInputError(
                    f"check_drift={mode} takes no sample rate, but drift_sample_rate={rate}.",
                    "leave drift_sample_rate unset, or set check_drift to sampled.",
                )
            return cls(mode=mode, rate=0.0 if mode is DriftMode.OFF else 1.0)
        if rate is None or not 0.0 <= rate <= 1.0:
            raise DiagInputError(
                f"check_drift=sampled needs a sample rate between 0 and 1, not {rate}.",
                "set drift_sample_rate to the share of warm reads that re-hash the source, "
                "e.g. 0.1.",
            )
        return cls(mode=mode, rate=rate)

    @property
    def sample_rate(self) -> float | None:
        """The rate a ``sampled`` policy samples with; ``None`` for the others."""
        return self.rate if self.mode is DriftMode.SAMPLED else None

    def __str__(self) -> str:
        return str(self.mode) if self.mode is not DriftMode.SAMPLED else f"sampled:{self.rate:g}"

    def should_check(self, rng: random.Random) -> bool:
        """Whether this read checks for drift."""
        if self.mode is DriftMode.OFF:
            return False
        return self.mode is DriftMode.ON_READ or rng.random() < self.rate
