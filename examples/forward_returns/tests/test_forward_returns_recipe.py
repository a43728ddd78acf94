"""The forward-returns recipe on real candles: prep, causality, trials, parameters."""

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import make_fold
from diag_assets.core.gates.seam import SeamDecision, seam_gate
from diag_assets.core.gates.trial_invariance import check_fold
from diag_assets.core.market_data.files import DirectoryMarketData
from diag_assets.core.plugins import DIAGNOSTICS_GROUP, RECIPES_GROUP, load_plugin
from diag_assets.core.recipe.code_version import recipe_code_version
from diag_assets.core.recipe.protocol import TrialSettings
from diag_assets.core.recipe.reference import xy_hash
from diag_assets.core.recipe.tasks import TaskKind

from forward_returns.features import FEATURE_NAMES, build_features
from forward_returns.recipe import METRIC, ForwardReturnsRecipe

PACKAGE = Path(__file__).resolve().parents[1]
HORIZON = ForwardReturnsRecipe().horizon
SETTINGS = TrialSettings(n_trials=4, max_rounds=80, early_stopping_rounds=15)


@pytest.fixture
def fold(bars, folds):
    """The last fold of the real candles."""
    return make_fold(folds, 2, len(bars))


def positions(bars: pd.DataFrame, open_times: pd.Series) -> np.ndarray:
    """Bar positions of the rows' open times."""
    return bars["date"].searchsorted(open_times.to_numpy())


def with_day_cut(bars: pd.DataFrame, first: int = 400) -> pd.DataFrame:
    """The bars without the 24 hourly bars from position ``first`` on (a one-day gap)."""
    return bars.drop(index=range(first, first + 24)).reset_index(drop=True)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_prep_splits_rows_at_the_fold_boundaries(bars, folds, index):
    fold = make_fold(folds, index, len(bars))
    data = ForwardReturnsRecipe().prep(bars, fold)
    assert list(data.X.columns) == list(FEATURE_NAMES) == list(data.feature_names)
    assert not data.X.isna().any().any()
    assert data.y["label"].dtype == np.float64
    at = positions(bars, data.y["open_time"])
    train, validation = at[: data.n_train], at[data.n_train :]
    # Training labels end before the validation block; validation rows are the block itself.
    assert train.max() + HORIZON < fold.val_start
    assert train.max() == fold.train_end - 1
    assert list(validation) == list(range(fold.val_start, fold.val_end))
    # Warm-up rows are dropped: the longest window (72 bars) fills at bar 72.
    assert train.min() == 72


def test_label_is_the_forward_log_return_clipped_on_training_rows(bars, fold):
    recipe = ForwardReturnsRecipe(clip_sigma=2.0)
    data = recipe.prep(bars, fold)
    at = positions(bars, data.y["open_time"])
    close = bars["close"].to_numpy()
    raw = np.log(close[at + HORIZON] / close[at])
    bound = 2.0 * raw[: data.n_train].std()
    np.testing.assert_allclose(data.y["label"], np.clip(raw, -bound, bound))
    assert (np.abs(raw) > bound).any()  # the clip did something on these candles


def test_features_at_a_bar_do_not_depend_on_later_bars(bars):
    full = build_features(bars)
    for t in (72, 300, 799, 1100, len(bars) - 1):
        truncated = build_features(bars.iloc[: t + 1])
        pd.testing.assert_frame_equal(truncated, full.iloc[: t + 1])


def test_prep_is_unchanged_by_bars_after_a_rows_label_horizon(bars, fold):
    recipe = ForwardReturnsRecipe()
    cut = fold.val_start + 40
    changed = bars.copy()
    factor = np.linspace(1.3, 0.7, len(bars) - cut)
    for column in ("open", "high", "low", "close"):
        changed.loc[cut:, column] *= factor
    changed.loc[cut:, "volume"] *= 5.0
    before, after = recipe.prep(bars, fold), recipe.prep(changed, fold)
    settled = positions(bars, before.y["open_time"]) + HORIZON < cut
    assert settled.sum() > before.n_train  # every training row and some validation rows
    pd.testing.assert_frame_equal(before.X[settled], after.X[settled])
    pd.testing.assert_frame_equal(before.y[settled], after.y[settled])
    assert not before.y[~settled].equals(after.y[~settled])  # the change reached later rows


def test_prep_on_candles_with_a_day_cut_out(bars, folds, tmp_path):
    gapped = with_day_cut(bars)
    gapped.to_feather(tmp_path / "BTC_USDT-1h.feather")
    loaded = DirectoryMarketData(tmp_path, universe="majors").load("BTCUSDT")
    assert loaded.gaps.count == 1 and loaded.gaps.missing_bars == 24
    fold = make_fold(folds, 2, len(loaded.frame))
    data = ForwardReturnsRecipe().prep(loaded.frame, fold)
    assert data.n_train > 0 and data.n_validation == folds.validation_bars
    at = positions(loaded.frame, data.y["open_time"])
    assert at[: data.n_train].max() + HORIZON < fold.val_start
    full = build_features(loaded.frame)
    for t in (399, 400, 450):  # the last bar before the gap, the first after, one later
        pd.testing.assert_frame_equal(build_features(loaded.frame.iloc[: t + 1]), full[: t + 1])


def test_run_trials_is_deterministic_and_searches_its_own_space(bars, fold):
    recipe = ForwardReturnsRecipe()
    data = recipe.prep(bars, fold)
    seen: list[tuple[int, str]] = []
    log = recipe.run_trials(data, SETTINGS, lambda trial, xy: seen.append((trial, xy_hash(xy))))
    again = recipe.run_trials(data, SETTINGS)
    assert log.content_hash() == again.content_hash()
    assert log.metric == METRIC == "l2"
    assert seen == [(t, xy_hash(data)) for t in range(SETTINGS.n_trials)]
    assert {t.xy_hash for t in log.trials} == {xy_hash(data)}
    for record in log.trials:
        assert 4 <= record.params["num_leaves"] <= 32
        assert 0.02 <= record.params["learning_rate"] <= 0.3
        assert record.params["extra_trees"] in (0, 1)
        assert record.best_score == min(record.curve) == record.curve[record.best_iter - 1]
    assert len({t.best_score for t in log.trials}) == SETTINGS.n_trials
    reseeded = recipe.run_trials(data, SETTINGS.model_copy(update={"seed": 1}))
    assert reseeded.content_hash() != log.content_hash()


def test_a_full_replay_has_a_clean_prep_train_seam(full_capture):
    assert full_capture.manifest.task is TaskKind.REGRESSION
    assert full_capture.trace is not None
    assert check_fold(full_capture.manifest.cell_ref, full_capture.trace).passed
    seam = seam_gate(full_capture.trace)
    assert seam.decision is SeamDecision.SEAM, seam.reasons


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"horizon": 0}, "horizon=0"),
        ({"horizon": 2.5}, "horizon=2.5"),
        ({"horizon": True}, "horizon=True"),
        ({"clip_sigma": 0}, "clip_sigma=0"),
        ({"clip_sigma": float("inf")}, "clip_sigma=inf"),
        ({"clip_sigma": "5"}, "clip_sigma='5'"),
        ({"extra_columns": "funding"}, "extra_columns='funding'"),
        ({"extra_columns": ["funding", "funding"]}, "repeats a name"),
        ({"extra_columns": ["mom_3"]}, "own features"),
    ],
)
def test_bad_parameters_are_refused_with_the_fix(params, named):
    with pytest.raises(DiagInputError, match="Fix: ") as raised:
        ForwardReturnsRecipe(**params)
    assert named in raised.value.problem


def test_parameters_are_what_the_recipe_was_built_with_and_key_the_capture():
    recipe = ForwardReturnsRecipe(horizon=4, clip_sigma=3)
    assert dict(recipe.parameters()) == {"horizon": 4, "clip_sigma": 3.0, "extra_columns": []}
    assert ForwardReturnsRecipe(**recipe.parameters()).parameters() == recipe.parameters()
    assert recipe_code_version(recipe) != recipe_code_version(ForwardReturnsRecipe())


def test_a_horizon_longer_than_the_folds_is_refused_before_prep(bars, fold):
    with pytest.raises(DiagInputError, match="label_horizon") as raised:
        ForwardReturnsRecipe(horizon=HORIZON + 1).prep(bars, fold)
    assert "at least 7" in raised.value.fix


def test_extra_bar_columns_are_unused_unless_named(bars, fold):
    richer = bars.assign(funding=np.sin(np.arange(len(bars)) / 10.0))
    plain = ForwardReturnsRecipe().prep(bars, fold)
    pd.testing.assert_frame_equal(ForwardReturnsRecipe().prep(richer, fold).X, plain.X)
    named = ForwardReturnsRecipe(extra_columns=["funding"]).prep(richer, fold)
    assert list(named.X.columns) == [*FEATURE_NAMES, "funding"]
    pd.testing.assert_frame_equal(named.X[list(FEATURE_NAMES)], plain.X)
    with pytest.raises(DiagInputError, match="no column funding"):
        ForwardReturnsRecipe(extra_columns=["funding"]).prep(bars, fold)


def test_dataset_only_capture_matches_the_full_replay(replay, full_capture):
    reduced = replay(CaptureMode.DATASET_ONLY)
    assert reduced.manifest.x_hash == full_capture.manifest.x_hash
    assert reduced.manifest.y_hash == full_capture.manifest.y_hash
    assert reduced.trial_log is None


def test_the_entry_points_name_the_plug_ins():
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    entry_points = project["entry-points"]
    recipe = load_plugin(
        entry_points[RECIPES_GROUP]["forward_returns"], RECIPES_GROUP, what="recipe"
    )
    diagnostic = load_plugin(
        entry_points[DIAGNOSTICS_GROUP]["importance_stability"], DIAGNOSTICS_GROUP, what="d"
    )
    assert recipe is ForwardReturnsRecipe and recipe.name == "forward_returns"
    assert diagnostic.name == "importance_stability"
    assert project["name"] == "diag-harness-forward-returns"
