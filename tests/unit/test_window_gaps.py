"""Gap-aware folds on real BTC candles with exchange gaps cut into them.

The slice in tests/data/klines has 1,500 hourly bars without a gap; each test cuts the gaps
it needs (hours, days) at known places, as real histories have them.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diag_assets.core.capture.modes import CaptureConfig
from diag_assets.core.capture.replay import prepare_cell, recipe_lookback, replay_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import FoldSpec, cut_fold, make_fold
from diag_assets.core.market_data.files import DirectoryMarketData
from diag_assets.core.recipe.prep import LOOKBACK_BARS, prepare_fold
from diag_assets.core.recipe.protocol import TrialSettings
from diag_assets.core.recipe.reference import ReferenceRecipe
from diag_assets.core.window_gaps import (
    GapPart,
    apply_window_gaps,
    find_window_gaps,
    format_duration,
)

KLINES = Path(__file__).resolve().parents[1] / "data" / "klines"
FOLDS = FoldSpec(n_folds=3, min_train_bars=800, validation_bars=150, purge_bars=12, label_horizon=6)
ONE_TRIAL = CaptureConfig(trials=TrialSettings(n_trials=1, max_rounds=20))


def candles() -> pd.DataFrame:
    frame = pd.read_feather(KLINES / "BTC_USDT-1h.feather")
    frame["date"] = pd.to_datetime(frame["date"], utc=True)
    return frame


def cut(frame: pd.DataFrame, *spans: tuple[int, int]) -> pd.DataFrame:
    """The candles without the bars at positions ``[start, end)`` of each span."""
    drop = np.concatenate([np.arange(start, end) for start, end in spans])
    return frame.drop(index=drop).reset_index(drop=True)


def source(tmp_path: Path, frame: pd.DataFrame) -> DirectoryMarketData:
    folder = tmp_path / "candles"
    folder.mkdir(exist_ok=True)
    frame.to_feather(folder / "BTC_USDT-1h.feather")
    return DirectoryMarketData(folder, universe="binance", timeframe="1h")


def test_a_long_gap_in_training_drops_exactly_the_rows_that_span_it():
    # Cut five days (120 bars) so that the gap falls between bars 899 and 900 of the history.
    bars = cut(candles(), (900, 1020))
    fold = make_fold(FOLDS, 2, len(bars))
    gaps = find_window_gaps(bars["date"], "1h", fold, FOLDS, LOOKBACK_BARS)
    (gap,) = gaps.gaps
    assert (gap.missing_bars, gap.missing, gap.part) == (120, "5d", GapPart.TRAIN)
    assert gap.last_before == bars["date"][899].isoformat()
    assert gap.first_after == bars["date"][900].isoformat()
    # Rows 894 (its 6-bar label reaches past the gap) to 1068 (its 168-bar lookback reaches
    # back before it) span the gap; all are training rows of fold 2 (train_end = 1088).
    assert gaps.excluded == ((899 - 6 + 1, 899 + LOOKBACK_BARS + 1),)
    assert gap.rows_dropped == gaps.rows_dropped == 6 + LOOKBACK_BARS

    fold = apply_window_gaps(fold, gaps, FOLDS, what="BTCUSDT")
    data = prepare_fold(bars, fold)
    rows = bars["date"].searchsorted(data.y["open_time"])
    assert not np.any((rows >= 894) & (rows < 1068))
    # Without the exclusion prep would have kept rows there: the drop is the gap's doing.
    unaware = prepare_fold(bars, make_fold(FOLDS, 2, len(bars)))
    kept = bars["date"].searchsorted(unaware.y["open_time"])
    assert np.any((kept >= 894) & (kept < 1068))


def test_a_gap_within_tolerance_is_listed_but_costs_no_row():
    bars = cut(candles(), (700, 702))  # two hours missing: within the 3h tolerance
    fold = make_fold(FOLDS, 0, len(bars))
    gaps = find_window_gaps(bars["date"], "1h", fold, FOLDS, LOOKBACK_BARS)
    (gap,) = gaps.gaps
    assert gap.tolerated and gap.rows_dropped == 0 and gap.missing == "2h"
    assert gaps.excluded == () and gaps.rows_dropped == 0
    strict = FoldSpec(**{**vars(FOLDS), "gap_tolerance": "1h"})
    assert find_window_gaps(bars["date"], "1h", fold, strict, LOOKBACK_BARS).rows_dropped > 0


def test_a_gap_inside_the_validation_block_refuses_the_fold_with_its_dates():
    bars = cut(candles(), (1000, 1072))  # three days missing inside fold 1's validation
    fold = make_fold(FOLDS, 1, len(bars))
    gaps = find_window_gaps(bars["date"], "1h", fold, FOLDS, LOOKBACK_BARS)
    assert [gap.part for gap in gaps.gaps] == [GapPart.VALIDATION]
    with pytest.raises(DiagInputError) as refused:
        apply_window_gaps(fold, gaps, FOLDS, what="BTCUSDT")
    message = str(refused.value)
    assert "validation block is cut" in message and "3d" in message
    assert bars["date"][999].isoformat() in message and bars["date"][1000].isoformat() in message
    assert "max_validation_gap" in message and "Nothing was trained" in message
    # A limit above the gap lets the fold through, its rows across the gap dropped.
    lenient = FoldSpec(**{**vars(FOLDS), "max_validation_gap": "4D"})
    assert apply_window_gaps(fold, gaps, lenient, what="BTCUSDT").excluded == gaps.excluded


def test_a_fold_that_loses_too_many_rows_to_gaps_is_refused():
    # A 4-hour gap every 100 bars through fold 0's training: each costs 6 + 168 rows.
    spans = [(start, start + 4) for start in range(200, 800, 100)]
    bars = cut(candles(), *spans)
    fold = make_fold(FOLDS, 0, len(bars))
    gaps = find_window_gaps(bars["date"], "1h", fold, FOLDS, LOOKBACK_BARS)
    assert gaps.dropped_share > FOLDS.max_gap_row_share
    with pytest.raises(DiagInputError, match="max_gap_row_share=0.25"):
        apply_window_gaps(fold, gaps, FOLDS, what="BTCUSDT")


def test_the_time_layout_validates_on_the_same_calendar_span_whatever_a_gap_removed():
    frame = candles()
    first = frame["date"][900]
    spec = FoldSpec(
        n_folds=2,
        label_horizon=6,
        first_validation=first.isoformat(),
        validation_span="5D",
        purge_span="12h",
        min_train_span="30D",
    )
    whole = cut_fold(spec, 0, frame["date"])
    assert (whole.val_start, whole.val_end) == (900, 1020)
    assert whole.train_end == 888
    # Cut a day out of the validation block: the block still runs over the same five days,
    # and holds 24 bars fewer.
    gapped = cut(frame, (950, 974))
    fold = cut_fold(spec, 0, gapped["date"])
    assert gapped["date"][fold.val_start] == first
    assert fold.val_end - fold.val_start == 120 - 24
    assert gapped["date"][fold.val_end] == first + pd.Timedelta("5D")
    gaps = find_window_gaps(gapped["date"], "1h", fold, spec, LOOKBACK_BARS)
    assert [gap.part for gap in gaps.gaps] == [GapPart.VALIDATION]
    # A gap that swallows the block's start cuts it too, in the time layout.
    late = cut(frame, (890, 905))
    fold = cut_fold(spec, 0, late["date"])
    (gap,) = find_window_gaps(late["date"], "1h", fold, spec, LOOKBACK_BARS).gaps
    assert gap.part is GapPart.VALIDATION


def test_the_time_layout_says_which_dates_a_fold_needs():
    frame = candles()
    spec = FoldSpec(
        n_folds=5,
        label_horizon=6,
        first_validation=frame["date"][1300].isoformat(),
        validation_span="5D",
        purge_span="12h",
        min_train_span="30D",
    )
    with pytest.raises(DiagInputError, match="History too short for fold 1") as short:
        cut_fold(spec, 1, frame["date"])
    assert frame["date"].iloc[-1].isoformat() in str(short.value)
    early = FoldSpec(**{**vars(spec), "min_train_span": "90D"})
    with pytest.raises(DiagInputError, match="trains from"):
        cut_fold(early, 0, frame["date"])
    gap_over_block = cut(frame, (1290, 1430))
    with pytest.raises(DiagInputError, match="no bars to validate on"):
        cut_fold(spec, 0, gap_over_block["date"])


@pytest.mark.parametrize(
    ("fields", "fix"),
    [
        ({"first_validation": "2021-01-01"}, "a time layout needs all four"),
        ({"gap_tolerance": "soon"}, "as a duration"),
        ({"max_validation_gap": "-1h"}, "as a duration"),
        ({"max_gap_row_share": 1.5}, "between 0 and 1"),
        (
            {
                "first_validation": "not a date",
                "validation_span": "5D",
                "purge_span": "1D",
                "min_train_span": "30D",
            },
            "ISO 8601",
        ),
    ],
)
def test_a_bad_fold_layout_is_refused_with_the_fix(fields, fix):
    with pytest.raises(DiagInputError, match=fix):
        FoldSpec(**fields)


def test_format_duration_reads_as_a_person_writes_it():
    assert format_duration(pd.Timedelta("116D 3h")) == "116d 3h"
    assert format_duration(pd.Timedelta("90min")) == "1h 30min"


def test_a_capture_records_its_gaps_and_refuses_a_cut_validation_block(tmp_path):
    # Real candles with a five-day gap in fold 2's training and a two-day gap in fold 1's
    # validation block (after bar 959 once the first is cut).
    frame = cut(candles(), (900, 1020), (1080, 1128))
    market = source(tmp_path, frame)
    recipe = ReferenceRecipe()
    spec = FoldSpec(**{**vars(FOLDS), "max_gap_row_share": 0.4})  # both gaps cost fold 2 25%

    def cell(fold: int) -> CellRef:
        return CellRef("binance", "BTCUSDT", fold)

    prepared = prepare_cell(cell(2), market, spec, recipe, ONE_TRIAL)
    captured = replay_cell(prepared, recipe)
    manifest = captured.manifest
    assert [gap.missing for gap in manifest.gaps] == ["5d", "2d"]
    assert manifest.gap_rows_dropped == prepared.gaps.rows_dropped > 0
    assert manifest.schema_version == 3
    with pytest.raises(DiagInputError, match="fold 1|Fold 1") as refused:
        prepare_cell(cell(1), market, spec, recipe, ONE_TRIAL)
    assert "2d" in str(refused.value) and "validation block is cut" in str(refused.value)


class _Careless(ReferenceRecipe):
    """A recipe whose prep ignores the rows its fold excludes for a gap."""

    def prep(self, bars, fold):
        from dataclasses import replace

        return super().prep(bars, replace(fold, excluded=()))


def test_a_recipe_that_keeps_gap_rows_is_refused_before_training(tmp_path):
    market = source(tmp_path, cut(candles(), (900, 1020)))
    recipe = _Careless()
    prepared = prepare_cell(CellRef("binance", "BTCUSDT", 2), market, FOLDS, recipe, ONE_TRIAL)
    with pytest.raises(DiagInputError, match="kept .* rows whose feature window or label spans"):
        replay_cell(prepared, recipe)


def test_a_recipe_must_say_how_far_its_features_look_back():
    class Vague(ReferenceRecipe):
        lookback_bars = None  # type: ignore[assignment]

    with pytest.raises(DiagInputError, match="declare lookback_bars"):
        recipe_lookback(Vague())
    assert recipe_lookback(ReferenceRecipe()) == LOOKBACK_BARS == 168
