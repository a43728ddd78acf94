"""Extra candle columns (funding rate, open interest, trades ...) on real candles.

Copies of the real BTC slice (tests/data/klines) get a team's extra columns, are written to
``tmp_path`` as feather, CSV and gzipped CSV, and are loaded, validated, windowed and hashed
as an audit would.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diag_assets.core.capture.modes import CaptureConfig, CaptureMode
from diag_assets.core.capture.replay import PreparedCell, prepare_cell, replay_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import Fold, FoldSpec
from diag_assets.core.hashing.table import canonical_hash
from diag_assets.core.market_data.bars import BAR_COLUMNS
from diag_assets.core.market_data.files import DirectoryMarketData, load_bars_file
from diag_assets.core.market_data.validation import validate_bars
from diag_assets.core.recipe.prep import FoldData
from diag_assets.core.recipe.protocol import TrialSettings
from diag_assets.core.recipe.reference import ReferenceRecipe

KLINES = Path(__file__).resolve().parents[2] / "tests" / "data" / "klines"
EXTRAS = ("trades", "funding_rate", "open_interest")
# fold-0 uses bars [0, 1162) of the 1,500: edits after that are outside its window.
FOLDS = FoldSpec(n_folds=2, min_train_bars=900, validation_bars=250, purge_bars=24)
CELL = CellRef.parse("majors/BTCUSDT/fold-0")
CONFIG = CaptureConfig(
    mode=CaptureMode.DATASET_ONLY, trials=TrialSettings(n_trials=1, max_rounds=5)
)
FORMATS = ("BTC_USDT-1h.feather", "BTCUSDT_1h.csv", "BTCUSDT_1h.csv.gz")


@pytest.fixture()
def btc() -> pd.DataFrame:
    return pd.read_feather(KLINES / "BTC_USDT-1h.feather")


def with_extras(btc: pd.DataFrame) -> pd.DataFrame:
    """The real candles plus what a futures export carries; funding settles every 8 hours."""
    rng = np.random.default_rng(5)
    settles = btc["date"].dt.hour.isin([0, 8, 16]).to_numpy()
    funding = np.round(rng.normal(1e-4, 5e-5, len(btc)), 8)
    return btc.assign(
        trades=np.round(btc["volume"] * 41).astype(np.int64),
        Funding_Rate=np.where(settles, funding, np.nan),
        exchange="binance",
        open_interest=np.round(80_000 + np.cumsum(rng.normal(0, 50, len(btc))), 3),
    )


def write(frame: pd.DataFrame, directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if name.endswith(".feather"):
        frame.to_feather(path)
    else:
        frame.to_csv(path, index=False)
    return path


def prepared(directory: Path) -> PreparedCell:
    source = DirectoryMarketData(directory, universe="majors")
    return prepare_cell(CELL, source, FOLDS, ReferenceRecipe(), CONFIG)


# --- loading ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FORMATS)
def test_numeric_extra_columns_load_in_file_order_as_float64(
    tmp_path: Path, btc: pd.DataFrame, name: str
) -> None:
    team = with_extras(btc)
    bars = DirectoryMarketData(write(team, tmp_path, name).parent, "majors").load("BTCUSDT")
    frame = bars.frame
    assert bars.extra_columns == EXTRAS
    assert tuple(frame.columns) == BAR_COLUMNS + EXTRAS
    assert all(frame[c].dtype == np.float64 for c in EXTRAS)
    assert bars.ignored_columns == ("exchange",)
    settles = int(btc["date"].dt.hour.isin([0, 8, 16]).sum())
    assert bars.extra_nan_counts == {
        "trades": 0,
        "funding_rate": 1_500 - settles,
        "open_interest": 0,
    }
    # OHLCV is exactly what the plain file gives; the extras are the file's values.
    plain = load_bars_file(KLINES / "BTC_USDT-1h.feather", symbol="BTCUSDT", timeframe="1h")
    pd.testing.assert_frame_equal(frame[list(BAR_COLUMNS)], plain.frame, check_exact=True)
    np.testing.assert_array_equal(frame["trades"], team["trades"].astype(np.float64))
    np.testing.assert_array_equal(frame["funding_rate"], team["Funding_Rate"])
    np.testing.assert_array_equal(frame["open_interest"], team["open_interest"])


def test_feather_and_csv_hash_alike(tmp_path: Path, btc: pd.DataFrame) -> None:
    team = with_extras(btc)
    paths = [write(team, tmp_path / name, name) for name in FORMATS]
    loaded = [load_bars_file(path, symbol="BTCUSDT", timeframe="1h") for path in paths]
    digests = {canonical_hash(bars.frame).digest for bars in loaded}
    assert len(digests) == 1
    # An int32 count in feather is the same column as the int64 a CSV reader infers.
    narrow = write(team.astype({"trades": np.int32}), tmp_path / "narrow", FORMATS[0])
    narrow_bars = load_bars_file(narrow, symbol="BTCUSDT", timeframe="1h")
    assert canonical_hash(narrow_bars.frame).digest in digests


def test_gaps_cut_into_real_candles_are_reported_while_extras_pass_through(
    tmp_path: Path, btc: pd.DataFrame
) -> None:
    team = with_extras(btc)
    cut = list(range(300, 303)) + list(range(700, 724))  # 3 hours, then a whole day
    holed = team.drop(index=cut).reset_index(drop=True)
    for name in ("BTC_USDT-1h.feather", "BTCUSDT_1h.csv"):
        bars = load_bars_file(write(holed, tmp_path / name, name), symbol="BTCUSDT", timeframe="1h")
        assert bars.gaps.count == 2
        assert bars.gaps.missing_bars == 27
        assert bars.gaps.longest == pd.Timedelta(hours=24)
        assert bars.gaps.first_gaps == (
            (btc["date"][299], btc["date"][303]),
            (btc["date"][699], btc["date"][724]),
        )
        assert len(bars.frame) == 1_500 - 27  # reported, never filled
        kept = team.drop(index=cut)
        np.testing.assert_array_equal(bars.frame["funding_rate"], kept["Funding_Rate"])
        np.testing.assert_array_equal(bars.frame["trades"], kept["trades"].astype(np.float64))


def test_validation_applies_to_ohlcv_only(btc: pd.DataFrame) -> None:
    team = with_extras(btc)
    team["open_interest"] = -team["open_interest"]  # a price would be refused; an extra is not
    team["empty"] = np.nan
    bars = validate_bars(team, symbol="BTCUSDT", timeframe="1h", source="team")
    assert bars.extra_columns == (*EXTRAS, "empty")
    assert bars.extra_nan_counts["empty"] == 1_500
    broken = team.copy()
    broken.loc[20, "close"] = np.nan
    with pytest.raises(DiagInputError, match=r"'close' is NaN at row 20"):
        validate_bars(broken, symbol="BTCUSDT", timeframe="1h", source="team")


def test_infinity_in_an_extra_column_is_refused_naming_row_and_fix(
    tmp_path: Path, btc: pd.DataFrame
) -> None:
    team = with_extras(btc)
    team.loc[[40, 41], "open_interest"] = [np.inf, -np.inf]
    path = write(team, tmp_path, "BTCUSDT_1h.csv")
    with pytest.raises(DiagInputError) as info:
        load_bars_file(path, symbol="BTCUSDT", timeframe="1h")
    message = str(info.value)
    assert str(path) in message
    assert (
        "extra column 'open_interest' is infinite at row 40 (2024-01-02T16:00:00+00:00)" in message
    )
    assert "2 bad row(s)" in message
    assert "Fix:" in message and "drop column 'open_interest'" in message


@pytest.mark.parametrize(
    ("first", "second"), [("Trades", "trades"), ("trades", " trades "), ("trades", "trades")]
)
def test_extra_column_names_that_collide_are_refused(
    btc: pd.DataFrame, first: str, second: str
) -> None:
    frame = btc.copy()
    frame.insert(6, "x", 1)
    frame.insert(7, "y", 2)
    frame.columns = [*BAR_COLUMNS, first, second]
    with pytest.raises(DiagInputError) as info:
        validate_bars(frame, symbol="BTCUSDT", timeframe="1h", source="team")
    message = str(info.value)
    assert f"columns {first!r} and {second!r} both map to 'trades'" in message
    assert "Fix: rename or drop one of them" in message


def test_written_index_and_non_numeric_columns_are_listed_not_kept(
    tmp_path: Path, btc: pd.DataFrame
) -> None:
    team = btc.assign(
        close_time=btc["date"] + pd.Timedelta(hours=1),
        side=pd.Categorical(["buy", "sell"] * 750),
        settled=(btc.index % 8 == 0),
    )
    path = tmp_path / "BTCUSDT_1h.csv"
    team.to_csv(path)  # index written: its header cell is empty
    from_csv = load_bars_file(path, symbol="BTCUSDT", timeframe="1h")
    assert from_csv.ignored_columns == ("Unnamed: 0", "close_time", "side")
    in_memory = validate_bars(team, symbol="BTCUSDT", timeframe="1h", source="mem")
    assert in_memory.ignored_columns == ("close_time", "side")
    for bars in (from_csv, in_memory):
        assert bars.extra_columns == ("settled",)
        assert bars.frame["settled"].tolist() == [1.0, 0, 0, 0, 0, 0, 0, 0] * 187 + [1.0, 0, 0, 0]


def test_nullable_integers_keep_their_missing_values(btc: pd.DataFrame) -> None:
    trades = pd.array([None if i % 10 == 0 else i for i in range(1_500)], dtype="Int64")
    bars = validate_bars(btc.assign(trades=trades), symbol="BTCUSDT", timeframe="1h", source="m")
    assert bars.extra_nan_counts == {"trades": 150}
    assert bars.frame["trades"].iloc[11] == 11.0


def test_integers_float64_cannot_hold_exactly_are_refused(btc: pd.DataFrame) -> None:
    close_ns = btc["date"].astype("int64") + 3_599_999_999_999
    assert close_ns.iloc[0] > 2**53
    with pytest.raises(DiagInputError, match=r"'close_ns' holds an integer .*row 0.*Fix: drop"):
        validate_bars(btc.assign(close_ns=close_ns), symbol="BTCUSDT", timeframe="1h", source="m")
    close_ms = (close_ns // 1_000_000).rename("close_ms")
    exact = validate_bars(
        btc.assign(close_ms=close_ms), symbol="BTCUSDT", timeframe="1h", source="m"
    )
    assert exact.frame["close_ms"].to_numpy().astype(np.int64).tolist() == close_ms.tolist()


# --- capture keys and prep ----------------------------------------------------------------


def test_an_extra_value_in_the_window_changes_the_capture_key(
    tmp_path: Path, btc: pd.DataFrame
) -> None:
    team = with_extras(btc)
    base = prepared(write(team, tmp_path / "base", FORMATS[0]).parent)
    assert base.fold.window_end == 1_162
    assert tuple(base.window.columns) == BAR_COLUMNS + EXTRAS

    inside = team.copy()
    inside.loc[500, "Funding_Rate"] = 2e-4  # was NaN: a settlement the export had missed
    edited = prepared(write(inside, tmp_path / "inside", FORMATS[0]).parent)
    assert edited.source_version != base.source_version
    assert edited.key != base.key
    trades = team.copy()
    trades["trades"] = trades["trades"] + (trades.index == 900)
    assert prepared(write(trades, tmp_path / "trades", FORMATS[0]).parent).key != base.key

    outside = team.copy()
    outside.loc[1_300, "Funding_Rate"] = 9e-4  # beyond fold-0's window
    assert prepared(write(outside, tmp_path / "outside", FORMATS[0]).parent).key == base.key


def test_ohlcv_only_and_ignored_columns_keep_the_capture_key(
    tmp_path: Path, btc: pd.DataFrame
) -> None:
    plain = prepared(write(btc, tmp_path / "plain", FORMATS[0]).parent)
    # The window hash of an OHLCV-only file is the hash of its six columns, as before.
    assert plain.source_version == canonical_hash(btc.iloc[:1_162]).digest
    labelled = prepared(write(btc.assign(exchange="binance"), tmp_path / "s", FORMATS[0]).parent)
    assert labelled.key == plain.key
    extended = prepared(write(with_extras(btc), tmp_path / "team", FORMATS[0]).parent)
    assert extended.key != plain.key


class ColumnsSeen(ReferenceRecipe):
    """The reference recipe, remembering the bars its prep was handed."""

    name = "columns-seen"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[pd.DataFrame] = []

    def prep(self, bars: pd.DataFrame, fold: Fold) -> FoldData:
        self.seen.append(bars.copy())
        return super().prep(bars, fold)


def test_extras_reach_the_recipe_prep_and_the_reference_prep_ignores_them(
    tmp_path: Path, btc: pd.DataFrame
) -> None:
    team_cell = prepared(write(with_extras(btc), tmp_path / "team", "BTCUSDT_1h.csv.gz").parent)
    plain_cell = prepared(write(btc, tmp_path / "plain", FORMATS[0]).parent)
    recipe = ColumnsSeen()
    team = replay_cell(team_cell, recipe)
    (handed,) = recipe.seen
    assert tuple(handed.columns) == BAR_COLUMNS + EXTRAS
    assert handed["funding_rate"].notna().sum() == team_cell.window["funding_rate"].notna().sum()
    pd.testing.assert_frame_equal(handed, team_cell.window, check_exact=True)

    plain = replay_cell(plain_cell, ReferenceRecipe())
    pd.testing.assert_frame_equal(team.data.X, plain.data.X, check_exact=True)
    pd.testing.assert_frame_equal(team.data.y, plain.data.y, check_exact=True)
    assert team.manifest.x_hash == plain.manifest.x_hash
    assert team.manifest.y_hash == plain.manifest.y_hash
    assert team.data.n_train == plain.data.n_train
    assert team.manifest.source_version != plain.manifest.source_version
