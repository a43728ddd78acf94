from pathlib import Path

import dagster as dg
import pytest

from diag_assets.core.names import ALLOW_COLD_CAPTURE_TAG
from resources.environment import build_local_resources
from resources.market_data import DirectoryMarketDataResource, SyntheticMarketDataResource
from tests.conftest import TINY_BARS, TINY_FOLDS

KLINES = Path(__file__).resolve().parents[1] / "data" / "klines"

TINY_RUN_CONFIG = {
    "ops": {
        "captured_fold": {"config": {"n_trials": 2, "max_rounds": 40}},
        "anchor_and_consumers": {"config": {"num_rounds": 20, "max_permutations": 4, "alpha": 0.2}},
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


APPROVED = {ALLOW_COLD_CAPTURE_TAG: "true"}


def local_resources(root: Path, market_data=None, check_drift: str = "off") -> dict:
    """The embedded profile's resources under ``root``, with a tiny market by default."""
    return build_local_resources(
        root,
        market_data=market_data or tiny_market_data(),
        check_drift=check_drift,
        lease_wait_s=60,
    )


@pytest.fixture
def resources(tmp_path):
    return local_resources(tmp_path)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", ["UNIUSDC", "OPUSDC", "BTCUSDT", "ETHUSDT"])
        yield instance
