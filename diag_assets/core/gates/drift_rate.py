"""The capture cache's drift-rate gate: the default ``check_drift`` policy the history supports."""

from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, Field, model_validator

from diag_assets.core.gates.history import DRIFT_EVENT, HistoryEvent
from diag_assets.core.gates.measures import in_window, window_ending
from diag_assets.core.gates.report import FROZEN, HistoryGateReport

DRIFT_RATE_LABEL = "drift-rate gate"


# Where an operator sets the drift policy: there is no command-line option for it.
DRIFT_SETTING = "the capture_cache resource's check_drift setting, env DIAG_CHECK_DRIFT"


class DriftRateDecision(StrEnum):
    """The default ``check_drift`` policy the measured drift rate supports."""

    KEEP_OFF = "KEEP_OFF"
    SAMPLED = "SAMPLED"
    ON_READ = "ON_READ"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class DriftRateSettings(BaseModel):
    """Thresholds of the capture cache's drift-rate gate."""

    model_config = FROZEN

    window_days: int = Field(
        default=45, ge=1, le=366, description="Days of drift checks read (as re-audit reuse)."
    )
    min_checks: int = Field(
        default=20, ge=1, description="Fewer readable drift checks than this: no decision."
    )
    low_rate: float = Field(
        default=0.01, ge=0, le=1, description="A drift rate at or below this keeps the check off."
    )
    high_rate: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="A drift rate at or below this (above low_rate) samples; above, on_read.",
    )
    sample_p: float = Field(
        default=0.1, ge=0.001, le=1, description="P of the recommended 'sampled:P' policy."
    )

    @model_validator(mode="after")
    def _rates_ordered(self) -> Self:
        if self.low_rate > self.high_rate:
            raise ValueError(f"low_rate {self.low_rate} is above high_rate {self.high_rate}.")
        return self


class DriftRateFigures(BaseModel):
    """What the drift-rate gate measured."""

    model_config = FROZEN

    checks: int = Field(description="Drift checks with a boolean `drifted` in the window.")
    drifted: int
    rate: float | None
    unreadable: int = Field(description="Drift checks without a boolean `drifted` (ignored).")


class DriftRateReport(HistoryGateReport[DriftRateDecision, DriftRateFigures]):
    """The drift-rate gate: figures, decision, recommended policy and reasons."""

    gate: str = DRIFT_RATE_LABEL
    recommended_policy: str | None = Field(
        description="The check_drift value to default to ('off', 'sampled:P', 'on_read')."
    )
    settings: DriftRateSettings

    def heading(self) -> str:
        """The report's title."""
        return f"{self.gate}: the capture cache's default check_drift policy"

    def figure_rows(self) -> dict[str, Any]:
        """The figures and the recommended policy."""
        return {**self.figures.model_dump(), "recommended_policy": self.recommended_policy}


def _policy_rate(p: float) -> str:
    # DriftPolicy.parse accepts only plain decimals ('0.1', '1'), never '1e-03'.
    return f"{p:.6f}".rstrip("0").rstrip(".")


def drift_rate_gate(
    events: list[HistoryEvent], settings: DriftRateSettings, *, now: datetime
) -> DriftRateReport:
    """How often a warm read finds the market data drifted, and the default policy it supports.

    Args:
        events: The audit history; ``capture_drift_checked`` events are read.
        settings: The thresholds.
        now: The end of the window (a naive time is UTC).

    Returns:
        The report: KEEP_OFF, SAMPLED or ON_READ as the default ``check_drift`` policy, or
        INSUFFICIENT_DATA below ``settings.min_checks``.
    """
    start, end = window_ending(now, settings.window_days)
    checks = in_window(events, DRIFT_EVENT, start, end)
    readable = [e.fields["drifted"] for e in checks if isinstance(e.fields.get("drifted"), bool)]
    n, drifted = len(readable), sum(readable)
    figures = DriftRateFigures(
        checks=n,
        drifted=drifted,
        rate=drifted / n if n else None,
        unreadable=len(checks) - n,
    )
    resolves = f"this drift rate decides the drift policy ({DRIFT_SETTING})"
    the_policy = f"the drift policy ({DRIFT_SETTING})"
    policy: str | None
    if n < settings.min_checks or figures.rate is None:
        decision, policy = DriftRateDecision.INSUFFICIENT_DATA, None
        reasons = [
            f"Only {n} drift checks in the {settings.window_days}-day window, fewer than "
            f"min_checks {settings.min_checks}: {resolves} once there are enough."
        ]
    elif figures.rate <= settings.low_rate:
        decision, policy = DriftRateDecision.KEEP_OFF, "off"
        reasons = [
            f"{drifted} of {n} drift checks found drift (rate {figures.rate:.3f} <= low_rate "
            f"{settings.low_rate:.3f}): keep {the_policy} off by default, and its "
            "committee waiver stands."
        ]
    elif figures.rate <= settings.high_rate:
        decision, policy = DriftRateDecision.SAMPLED, f"sampled:{_policy_rate(settings.sample_p)}"
        reasons = [
            f"{drifted} of {n} drift checks found drift (rate {figures.rate:.3f} in "
            f"({settings.low_rate:.3f}, {settings.high_rate:.3f}]): default {the_policy} to "
            f"{policy}, and a default-on check reopens its committee waiver."
        ]
    else:
        decision, policy = DriftRateDecision.ON_READ, "on_read"
        reasons = [
            f"{drifted} of {n} drift checks found drift (rate {figures.rate:.3f} > high_rate "
            f"{settings.high_rate:.3f}): default {the_policy} to on_read, and a "
            "default-on check reopens its committee waiver."
        ]
    if figures.unreadable:
        reasons.append(
            f"{figures.unreadable} capture_drift_checked events had no boolean `drifted` and "
            "were ignored."
        )
    return DriftRateReport(
        decision=decision,
        reasons=reasons,
        figures=figures,
        recommended_policy=policy,
        window_start=start,
        window_end=end,
        settings=settings,
    )
