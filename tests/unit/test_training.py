import numpy as np
import pytest

from diag_assets.core.recipe.training import fit_booster, relabelled_fits

RNG = np.random.default_rng(1)
X_TRAIN = RNG.normal(size=(3000, 8)).astype(np.float32)
Y_TRAIN = (X_TRAIN[:, 0] + RNG.normal(size=3000) > 0).astype(np.int8)
X_VAL = RNG.normal(size=(2000, 8)).astype(np.float32)
Y_VAL = (X_VAL[:, 0] > 0).astype(np.int8)
PARAMS = {"num_leaves": 15, "learning_rate": 0.1, "bagging_fraction": 0.7, "bagging_freq": 1}


def fit(**kwargs):
    options = {"num_rounds": 40, "early_stopping_rounds": None, "num_threads": 2, "seed": 3}
    return fit_booster(PARAMS, X_TRAIN, Y_TRAIN, X_VAL, Y_VAL, **(options | kwargs))


def test_skipping_the_validation_curve_trains_the_same_model():
    tracked, untracked = fit(), fit(track_validation=False)
    assert len(tracked.curve) == 40 and untracked.curve == []
    assert untracked.best_iter == 40
    np.testing.assert_array_equal(tracked.booster.predict(X_VAL), untracked.booster.predict(X_VAL))


def test_early_stopping_needs_the_validation_curve():
    with pytest.raises(ValueError, match="track_validation"):
        fit(early_stopping_rounds=5, track_validation=False)


def test_fits_are_reproducible_and_best_iter_is_the_curve_minimum():
    first, second = (
        fit(early_stopping_rounds=10, num_rounds=200),
        fit(early_stopping_rounds=10, num_rounds=200),
    )
    assert first.curve == second.curve and first.best_iter == second.best_iter
    assert first.best_score == min(first.curve) == first.curve[first.best_iter - 1]


def test_relabelled_fits_train_the_models_fit_booster_trains():
    refit = relabelled_fits(PARAMS, X_TRAIN, Y_TRAIN, Y_VAL, num_rounds=40, num_threads=2)
    permuted = np.random.default_rng(4).permutation(Y_TRAIN)
    # The real labels, a permutation, then the real labels again: set_label swaps them fully.
    for labels, seed in ((Y_TRAIN, 3), (permuted, 7), (Y_TRAIN, 3)):
        fresh = fit_booster(
            PARAMS,
            X_TRAIN,
            labels,
            X_VAL,
            Y_VAL,
            num_rounds=40,
            early_stopping_rounds=None,
            num_threads=2,
            seed=seed,
            track_validation=False,
        )
        np.testing.assert_array_equal(
            refit(labels, seed).predict(X_VAL), fresh.booster.predict(X_VAL)
        )
    real, shuffled = (np.asarray(refit(y, 3).predict(X_VAL)) for y in (Y_TRAIN, permuted))
    assert not np.array_equal(real, shuffled)
