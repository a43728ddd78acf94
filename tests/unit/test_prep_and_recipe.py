import numpy as np
import pytest

from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import FoldSpec, make_fold
from diag_assets.core.hashing.table import canonical_hash
from diag_assets.core.recipe.code_version import recipe_code_version
from diag_assets.core.recipe.prep import PrepSettings, build_features, prepare_fold
from diag_assets.core.recipe.protocol import TrialSettings
from diag_assets.core.recipe.reference import ReferenceRecipe
from tests.conftest import TINY_FOLDS


@pytest.fixture(scope="module")
def bars(tiny_source):
    return tiny_source.load("UNIUSDC").frame


def test_prep_is_deterministic(bars):
    fold = make_fold(TINY_FOLDS, 3, len(bars))
    first, second = prepare_fold(bars, fold), prepare_fold(bars.copy(), fold)
    assert canonical_hash(first.X) == canonical_hash(second.X)
    assert canonical_hash(first.y) == canonical_hash(second.y)
    assert first.n_train == second.n_train


def test_features_are_causal(bars):
    """Changing a future bar never changes an earlier row's features."""
    cut = 2_000
    changed = bars.copy()
    changed.loc[cut:, ["open", "high", "low", "close"]] *= 1.5
    before, after = build_features(bars), build_features(changed)
    np.testing.assert_array_equal(before.iloc[:cut].to_numpy(), after.iloc[:cut].to_numpy())


def test_no_training_label_looks_past_the_boundary(bars):
    fold = make_fold(TINY_FOLDS, 2, len(bars))
    data = prepare_fold(bars, fold)
    boundary = bars["date"].iloc[fold.val_start]
    train_times = data.y["open_time"].iloc[: data.n_train]
    # a training row at time t reads the close at t + horizon bars: still before validation
    last_train_pos = bars.index[bars["date"] == train_times.iloc[-1]][0]
    assert bars["date"].iloc[last_train_pos + fold.label_horizon] < boundary
    assert (data.y["open_time"].iloc[data.n_train :] >= boundary).all()


def test_prep_only_reads_the_fold_window(bars):
    """Bars appended after the window never change the fold's X/y."""
    fold = make_fold(TINY_FOLDS, 1, len(bars))
    full = prepare_fold(bars, fold)
    clipped = prepare_fold(bars.iloc[: fold.window_end], fold)
    assert canonical_hash(full.X) == canonical_hash(clipped.X)
    assert canonical_hash(full.y) == canonical_hash(clipped.y)


def test_flat_price_is_refused_before_training(bars):
    flat = bars.copy()
    flat[["open", "high", "low", "close"]] = 100.0
    with pytest.raises(DiagInputError, match="Fix:"):
        prepare_fold(flat, make_fold(TINY_FOLDS, 0, len(flat)))


def test_trial_loop_is_reproducible_and_records_the_xy_hash(bars):
    recipe = ReferenceRecipe()
    data = recipe.prep(bars, make_fold(TINY_FOLDS, 3, len(bars)))
    settings = TrialSettings(n_trials=3, max_rounds=30)
    first, second = recipe.run_trials(data, settings), recipe.run_trials(data, settings)
    assert first.content_hash() == second.content_hash()
    assert len({t.xy_hash for t in first.trials}) == 1
    assert len({str(t.params) for t in first.trials}) == 3  # each trial draws its own params
    for trial in first.trials:
        assert 1 <= trial.best_iter <= 30 and len(trial.curve) >= trial.best_iter
    other_seed = recipe.run_trials(data, settings.model_copy(update={"seed": 1}))
    assert other_seed.content_hash() != first.content_hash()


def test_trial_observer_sees_every_trial_before_it_trains(bars):
    recipe = ReferenceRecipe()
    data = recipe.prep(bars, make_fold(TINY_FOLDS, 0, len(bars)))
    seen = []
    recipe.run_trials(
        data,
        TrialSettings(n_trials=2, max_rounds=5),
        observer=lambda i, d: seen.append((i, d is data)),
    )
    assert seen == [(0, True), (1, True)]


def test_recipe_code_version_tracks_its_source():
    recipe = ReferenceRecipe()
    version = recipe_code_version(recipe)
    assert version.startswith("reference-v1-")

    class Patched(ReferenceRecipe):
        def prep(self, bars, fold):  # a different recipe body
            return super().prep(bars, fold)

    assert recipe_code_version(Patched()) != version
    wider_dead_zone = ReferenceRecipe(PrepSettings(dead_zone_sigma=0.3))
    assert recipe_code_version(wider_dead_zone) != version
    assert recipe_code_version(ReferenceRecipe(PrepSettings())) == version


def test_fold_layout_is_part_of_the_capture_key(tiny_source):
    from diag_assets.core.capture.modes import CaptureConfig
    from diag_assets.core.capture.replay import prepare_cell
    from diag_assets.core.cells import CellRef

    cell = CellRef.parse("defi_top5/UNIUSDC/fold-1")
    wider_purge = FoldSpec(n_folds=5, min_train_bars=1_500, validation_bars=300, purge_bars=48)
    keys = {
        prepare_cell(cell, tiny_source, spec, ReferenceRecipe(), CaptureConfig()).key
        for spec in (TINY_FOLDS, wider_purge)
    }
    assert len(keys) == 2
