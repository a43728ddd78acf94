"""Real candles (the harness's BTC/USDT 1h slice, 1,500 bars) and captures of them."""

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from diag_assets.core.capture.modes import CaptureConfig, CaptureMode
from diag_assets.core.capture.replay import CapturedFold, prepare_cell, replay_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.folds import FoldSpec
from diag_assets.core.market_data.files import DirectoryMarketData
from diag_assets.core.recipe.protocol import Recipe, TrialSettings

from forward_returns.recipe import ForwardReturnsRecipe

KLINES = Path(__file__).resolve().parents[3] / "tests" / "data" / "klines"
HORIZON = ForwardReturnsRecipe().horizon
# Fold 2, the last, needs 800 + 3 x 150 + 6 = 1,256 of the 1,500 bars.
FOLDS = FoldSpec(
    n_folds=3, min_train_bars=800, validation_bars=150, purge_bars=12, label_horizon=HORIZON
)
CAPTURE = CaptureConfig(trials=TrialSettings(n_trials=6, max_rounds=80, early_stopping_rounds=15))
CELL = CellRef.parse("majors/BTCUSDT/fold-2")

Replay = Callable[..., CapturedFold]


@pytest.fixture(scope="session")
def folds() -> FoldSpec:
    """Three folds that fit 1,500 hourly bars; the label horizon is the recipe's default."""
    return FOLDS


@pytest.fixture(scope="session")
def source() -> DirectoryMarketData:
    return DirectoryMarketData(KLINES, universe="majors")


@pytest.fixture(scope="session")
def bars(source: DirectoryMarketData) -> pd.DataFrame:
    return source.load("BTCUSDT").frame


@pytest.fixture(scope="session")
def replay(source: DirectoryMarketData) -> Replay:
    """Capture CELL in a mode, as the harness's captured_fold asset does (nothing stored)."""

    def capture(
        mode: CaptureMode = CaptureMode.FULL_REPLAY,
        recipe: Recipe | None = None,
        config: CaptureConfig = CAPTURE,
        market: DirectoryMarketData = source,
    ) -> CapturedFold:
        recipe = recipe or ForwardReturnsRecipe()
        prepared = prepare_cell(CELL, market, FOLDS, recipe, config.with_mode(mode))
        return replay_cell(prepared, recipe)

    return capture


@pytest.fixture(scope="session")
def full_capture(replay: Replay) -> CapturedFold:
    return replay()
