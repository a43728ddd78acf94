"""Bad input fails before any training, names the fix, and writes no artifact."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from diag_assets.capture.assets import CaptureRunConfig
from diag_assets.core.errors import DiagInputError
from diag_assets.core.storage.catalog.catalog import SqliteCatalog
from diag_assets.partitions import cell_from_partition_key
from tests.dagster.conftest import (
    KLINES,
    local_resources,
    real_market_data,
    tiny_market_data,
)
from tests.fixtures.audit import captured_fold


def _capture_error(resources, instance, symbol: str, fold: str = "fold-1") -> str:
    key = dg.MultiPartitionKey({"symbol": symbol, "fold": fold})
    result = dg.materialize(
        [captured_fold],
        resources=resources,
        instance=instance,
        partition_key=key,
        raise_on_error=False,
    )
    assert not result.success
    error = result.failure_data_for_node("captured_fold").error
    return error.cause.message if error.cause else error.message


def assert_nothing_written(root):
    assert not (root / "artifacts").exists()
    catalog = root / "catalog.sqlite"
    assert not catalog.exists() or SqliteCatalog(catalog).entries() == []


def _corrupt_copy(tmp_path, change) -> Path:
    data_dir = tmp_path / "klines"
    data_dir.mkdir()
    frame = pd.read_feather(KLINES / "BTC_USDT-1h.feather")
    frame = change(frame)
    frame.to_csv(data_dir / "BTCUSDT_1h.csv", index=False)
    return data_dir


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: pd.concat([f.iloc[:700], f.iloc[699:]]).reset_index(drop=True), "uplicate"),
        (lambda f: f.assign(volume=np.nan), "volume"),
    ],
    ids=["duplicate-timestamps", "all-nan-column"],
)
def test_bad_bars_fail_early(tmp_path, instance, change, expected):
    data_dir = _corrupt_copy(tmp_path, change)
    resources = local_resources(tmp_path, market_data=real_market_data(data_dir))
    message = _capture_error(resources, instance, "BTCUSDT")
    assert expected in message and "Fix:" in message and "BTCUSDT_1h.csv" in message
    assert_nothing_written(tmp_path)


def test_unknown_symbol_fails_early_listing_known_symbols(tmp_path, instance):
    instance.add_dynamic_partitions("symbols", ["DOGEUSDC"])
    resources = local_resources(tmp_path, market_data=tiny_market_data())
    message = _capture_error(resources, instance, "DOGEUSDC")
    assert "DOGEUSDC" in message and "UNIUSDC" in message and "Fix:" in message
    assert_nothing_written(tmp_path)


def test_history_too_short_fails_early(tmp_path, instance):
    resources = local_resources(tmp_path, market_data=tiny_market_data(n_bars=2_000))
    message = _capture_error(resources, instance, "UNIUSDC", fold="fold-3")
    assert "History too short for fold 3" in message and "Fix:" in message
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("symbol", ["../../etc", "uni-usdc", "UNI USDC"])
def test_path_like_partition_is_refused_as_a_cell(tmp_path, symbol):
    with pytest.raises(DiagInputError, match="not a valid symbol"):
        cell_from_partition_key(f"fold-1|{symbol}", "defi_top5")


def test_unknown_environment_is_refused(monkeypatch):
    from resources.environment import get_env

    monkeypatch.setenv("DIAG_ENV", "staging")
    with pytest.raises(
        DiagInputError, match="DIAG_ENV='staging'.*Fix: set DIAG_ENV to one of: local"
    ):
        get_env()


def test_bad_run_config_is_refused_before_the_run():
    with pytest.raises(Exception, match="n_trials"):
        CaptureRunConfig(n_trials=0)


def test_missing_market_data_directory_names_the_fix(tmp_path, instance):
    resources = local_resources(tmp_path, market_data=real_market_data(tmp_path / "nowhere"))
    message = _capture_error(resources, instance, "BTCUSDT")
    assert "nowhere" in message and "Fix:" in message
    assert_nothing_written(tmp_path)


def test_demo_refuses_unknown_fold_before_running(tmp_path):
    # the fold index is validated by CellRef before any run starts
    result = subprocess.run(
        [sys.executable, "-m", "diag_assets.demo", "--fold", "120"],
        capture_output=True,
        text=True,
        env={
            "DAGSTER_HOME": str(tmp_path),
            "DIAG_STORAGE_DIR": str(tmp_path / "a"),
            "PATH": "/usr/bin:/bin",
        },
        timeout=120,
    )
    assert result.returncode == 2
    assert "Fold 120 is out of range" in result.stderr and "Fix:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "a").exists()
