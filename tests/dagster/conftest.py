from pathlib import Path

import dagster as dg
import pytest

from resources.market_data import DirectoryMarketDataResource, SyntheticMarketDataResource
from resources.storage import LocalArtifactStore
from tests.conftest import TINY_BARS, TINY_FOLDS

KLINES = Path(__file__).resolve().parents[1] / "data" / "klines"

TINY_RUN_CONFIG = {
    "ops": {
        "captured_fold": {"config": {"n_trials": 2, "max_rounds": 40}},
        "s40_verdict": {"config": {"num_rounds": 20, "n_permutations": 4, "alpha": 0.2}},
    }
}


def tiny_market_data(**overrides) -> SyntheticMarketDataResource:
    params = {
        "n_bars": TINY_BARS,
        "min_train_bars": TINY_FOLDS.min_train_bars,
        "validation_bars": TINY_FOLDS.validation_bars,
        **overrides,
    }
    return SyntheticMarketDataResource(**params)


def real_market_data(directory: Path = KLINES) -> DirectoryMarketDataResource:
    # 1,500 hourly bars per symbol: with 800 training bars and 150-bar validation blocks,
    # folds 0-3 fit and fold 4 does not.
    return DirectoryMarketDataResource(
        directory=str(directory), universe="binance", min_train_bars=800, validation_bars=150
    )


@pytest.fixture
def resources(tmp_path):
    return {
        "market_data": tiny_market_data(),
        "artifacts": LocalArtifactStore(root=str(tmp_path / "artifacts")),
    }


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", ["UNIUSDC", "OPUSDC", "BTCUSDT", "ETHUSDT"])
        yield instance
