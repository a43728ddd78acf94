"""An audit's market data: a folder of real candles with extra columns, or a team's own source."""

import sys
import textwrap
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from diag_assets.audit.run_results import observed_metadata
from diag_assets.component import AuditComponent
from diag_assets.component.location import build_location
from diag_assets.core.errors import DiagInputError

KLINES = Path(__file__).resolve().parents[1] / "data" / "klines"
FOLDS = {
    "n_folds": 3,
    "min_train_bars": 800,
    "validation_bars": 150,
    "purge_bars": 12,
    "label_horizon": 6,
}


def observe_bars(component: AuditComponent, symbol: str) -> dict:
    defs = build_location([component.resolve()])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(f"{component.prefix}__symbols", [symbol])
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey([component.prefix, "market_bars"])],
            partition_key=symbol,
        )
    return observed_metadata(result, f"{component.prefix}/market_bars")


def test_market_bars_lists_the_extra_columns_of_real_candles(tmp_path, storage):
    # Real BTC candles with a day cut out and the columns a team's files carry besides OHLCV.
    frame = pd.read_feather(KLINES / "BTC_USDT-1h.feather")
    frame = frame.drop(index=range(500, 524)).reset_index(drop=True)
    frame["trades"] = range(len(frame))
    frame["funding_rate"] = [0.0001 if i % 8 == 0 else None for i in range(len(frame))]
    frame["exchange"] = "binance"
    folder = tmp_path / "candles"
    folder.mkdir()
    frame.to_feather(folder / "BTC_USDT-1h.feather")
    component = AuditComponent.model_validate(
        {
            "prefix": "extra",
            "market_data": {"kind": "directory", "directory": str(folder), "universe": "binance"},
            "folds": FOLDS,
        }
    )
    metadata = observe_bars(component, "BTCUSDT")
    assert metadata["extra_columns"] == ["trades", "funding_rate"]
    assert metadata["extra_column_count"] == 2
    assert metadata["ignored_columns"] == ["exchange"]
    assert metadata["gaps"] == 1 and metadata["missing_bars"] == 24


SOURCE = '''
from diag_assets.core.market_data.synthetic import SyntheticMarketData


class TeamSource(SyntheticMarketData):
    """A team's own source: here, generated bars of its own symbols."""

    def __init__(self, symbols, n_bars):
        super().__init__(universe="team_universe", symbols=tuple(symbols), n_bars=n_bars)
'''


@pytest.fixture
def team_source(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (root / "team_market.py").write_text(textwrap.dedent(SOURCE))
    sys.path.insert(0, str(root))
    yield "team_market:TeamSource"
    sys.path.remove(str(root))
    sys.modules.pop("team_market", None)


def test_a_teams_own_source_by_import_path(team_source, storage):
    component = AuditComponent.model_validate(
        {
            "prefix": "own",
            "market_data": {
                "kind": "source",
                "source": team_source,
                "params": {"symbols": ["ZZZUSDC"], "n_bars": 2000},
            },
            "folds": FOLDS,
        }
    )
    metadata = observe_bars(component, "ZZZUSDC")
    assert metadata["bars"] == 2000


def test_a_source_that_does_not_resolve_fails_the_load(team_source):
    component = AuditComponent.model_validate(
        {"prefix": "own", "market_data": {"kind": "source", "source": "team_market:Missing"}}
    )
    with pytest.raises(DiagInputError, match="team_market"):
        component.resolve()
    not_a_source = AuditComponent.model_validate(
        {"prefix": "own", "market_data": {"kind": "source", "source": "pathlib:Path"}}
    )
    with pytest.raises(DiagInputError, match="not a MarketDataSource subclass"):
        not_a_source.resolve()
