"""Workload profiles shared by the benchmarks.

``small`` is the embedded default (the demo's cells): a cold capture in a minute or less.
``medium`` is several minutes of cold capture: the cost a capture cache has to beat.
"""

from dataclasses import dataclass

from diag_assets.core.capture.modes import CaptureConfig
from diag_assets.core.folds import FoldSpec
from diag_assets.core.market_data.synthetic import SyntheticMarketData
from diag_assets.core.recipe.protocol import TrialSettings


@dataclass(frozen=True)
class Profile:
    """A synthetic universe size, fold layout and trial budget."""

    name: str
    n_bars: int
    fold_spec: FoldSpec
    trials: TrialSettings
    timeframe: str = "1h"
    fold: int = 3

    def source(self) -> SyntheticMarketData:
        """The profile's synthetic market data."""
        return SyntheticMarketData(n_bars=self.n_bars, timeframe=self.timeframe)

    def capture_config(self) -> CaptureConfig:
        """The profile's capture config."""
        return CaptureConfig(trials=self.trials)


# Trial counts and early-stopping patience are those of a real search (dozens of trials that
# run until the validation loss stalls), so a cold replay costs what replays cost, scaled down.
PROFILES = {
    "small": Profile(
        "small",
        n_bars=16_500,
        fold_spec=FoldSpec(),
        trials=TrialSettings(n_trials=96, early_stopping_rounds=50),
    ),
    "medium": Profile(
        "medium",
        n_bars=1_000_000,
        timeframe="1m",
        fold_spec=FoldSpec(min_train_bars=600_000, validation_bars=80_000),
        trials=TrialSettings(n_trials=48, early_stopping_rounds=50),
    ),
}


def profile_from_args(argv: list[str]) -> Profile:
    """``--profile NAME`` (default small)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", choices=sorted(PROFILES), default="small")
    args, _ = parser.parse_known_args(argv)
    return PROFILES[args.profile]
