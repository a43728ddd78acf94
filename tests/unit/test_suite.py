import uuid

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from diag_assets.core.capture.replay import CapturedFold, prepare_cell, replay_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.anchor import run_anchor
from diag_assets.core.diagnostics.calibration import (
    CalibrationSettings,
    CalibrationStatus,
    binary_logloss,
    brier_score,
    expected_calibration_error,
    reliability_table,
    run_s27,
    s27_without_anchor,
)
from diag_assets.core.diagnostics.certification import Certification
from diag_assets.core.diagnostics.consumers import (
    DIAGNOSTIC_CAPTURE_REQUIREMENTS,
    CaptureRequirement,
    CaptureView,
    ConsumerContractViolation,
    diagnostic,
)
from diag_assets.core.diagnostics.drift import DriftLevel, DriftSettings, run_s23, stratified_folds
from diag_assets.core.diagnostics.spread import SpreadScale, SpreadStatus, run_s22a2
from diag_assets.core.diagnostics.verdicts import AnchorResult
from diag_assets.core.recipe.prep import FoldData
from diag_assets.core.recipe.protocol import TrialLog, TrialRecord, TrialSettings
from diag_assets.core.recipe.reference import ReferenceRecipe
from tests.conftest import TINY_CAPTURE, TINY_FOLDS

RECIPE = ReferenceRecipe()
CAPTURE_4 = TINY_CAPTURE.model_copy(update={"trials": TrialSettings(n_trials=4, max_rounds=40)})


@pytest.fixture(scope="module")
def captured(tiny_source) -> CapturedFold:
    cell = CellRef.parse("defi_top5/UNIUSDC/fold-3")
    return replay_cell(prepare_cell(cell, tiny_source, TINY_FOLDS, RECIPE, CAPTURE_4), RECIPE)


@pytest.fixture(scope="module")
def anchor(captured) -> AnchorResult:
    return run_anchor(captured)


def with_data(captured: CapturedFold, x: pd.DataFrame, labels: np.ndarray, n_train: int):
    y = pd.DataFrame({"label": np.asarray(labels, dtype=np.int8)})
    data = FoldData(X=x, y=y, n_train=n_train, feature_names=tuple(x.columns))
    return CapturedFold(data=data, trial_log=captured.trial_log, manifest=captured.manifest)


def with_trials(captured: CapturedFold, scores, iters=None, metric="binary_logloss"):
    iters = iters or [10] * len(scores)
    trials = [
        TrialRecord(
            trial=i,
            params={"num_leaves": 7},
            best_iter=it,
            best_score=s,
            curve=[s],
            elapsed_s=0.0,
            xy_hash="x",
        )
        for i, (s, it) in enumerate(zip(scores, iters, strict=True))
    ]
    log = TrialLog(metric=metric, trials=trials)
    return CapturedFold(data=captured.data, trial_log=log, manifest=captured.manifest)


# ---------------------------------------------------------------------------- registration


def test_each_diagnostic_is_registered_with_its_requirement():
    assert DIAGNOSTIC_CAPTURE_REQUIREMENTS["s22a2"] is CaptureRequirement.TRIAL_DYNAMICS
    assert DIAGNOSTIC_CAPTURE_REQUIREMENTS["s23"] is CaptureRequirement.XY_ONLY
    assert DIAGNOSTIC_CAPTURE_REQUIREMENTS["s27"] is CaptureRequirement.TRIAL_DYNAMICS
    assert run_s23.diagnostic_name == "s23" and run_s23.requirement is CaptureRequirement.XY_ONLY


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        diagnostic("s23", CaptureRequirement.XY_ONLY)
    assert DIAGNOSTIC_CAPTURE_REQUIREMENTS["s23"] is CaptureRequirement.XY_ONLY


# ---------------------------------------------------------------------------- runtime guard


@pytest.fixture
def test_name():
    name = f"test_xy_reader_{uuid.uuid4().hex}"
    yield name
    DIAGNOSTIC_CAPTURE_REQUIREMENTS.pop(name, None)


def test_xy_only_diagnostic_reading_the_trial_log_is_stopped(captured, test_name):
    @diagnostic(test_name, CaptureRequirement.XY_ONLY)
    def sneaky(view: CaptureView) -> int:
        assert len(view.data.X) > 0  # X/y is allowed
        return len(view.trial_log.trials)

    with pytest.raises(ConsumerContractViolation, match=test_name):
        sneaky(captured)


def test_xy_only_diagnostic_reading_the_anchor_is_stopped(captured, anchor, test_name):
    @diagnostic(test_name, CaptureRequirement.XY_ONLY)
    def sneaky(view: CaptureView) -> int:
        return view.anchor.best_iter

    with pytest.raises(ConsumerContractViolation, match="anchor") as given:
        sneaky(captured, anchor=anchor)
    # Never revealed to xy_only: the refusal is the same whether an anchor came or not.
    with pytest.raises(ConsumerContractViolation) as absent:
        sneaky(captured)
    assert str(absent.value) == str(given.value)


# ---------------------------------------------------------------------------- s22a2


def test_s22a2_on_a_capture_is_certified_and_deterministic(captured):
    first, second = run_s22a2(captured), run_s22a2(captured)
    assert first.content_hash() == second.content_hash()
    assert first.certification is Certification.CERTIFIED
    assert first.status in (SpreadStatus.STANDS_OUT, SpreadStatus.WITHIN_SPREAD)
    figures = first.figures
    assert figures is not None and figures.n_trials == 4
    assert figures.best_trial == captured.manifest.best_trial
    assert figures.best_score == pytest.approx(captured.manifest.best_score, abs=1e-6)
    scores = np.array([t.best_score for t in captured.trial_log.trials])
    assert figures.median_score == pytest.approx(np.median(scores), abs=1e-6)
    assert figures.p25_score <= figures.median_score <= figures.p75_score
    assert first.stands_out == (figures.robust_z >= 2.0)
    assert first.trial_log_hash == captured.manifest.trial_log_hash


def test_s22a2_one_far_better_trial_stands_out(captured):
    scores = [0.600, 0.690, 0.692, 0.694, 0.691]
    verdict = run_s22a2(with_trials(captured, scores, iters=[30, 1, 1, 4, 2]))
    assert verdict.status is SpreadStatus.STANDS_OUT and verdict.stands_out
    assert verdict.certification is Certification.CERTIFIED
    f = verdict.figures
    assert f is not None and f.scale is SpreadScale.MAD
    # median 0.691, MAD = median(0.091, 0.001, 0.001, 0.003, 0) = 0.001
    assert f.mad_score == pytest.approx(0.001, abs=1e-9)
    assert f.robust_z == pytest.approx(0.091 / (1.4826 * 0.001), rel=1e-4)
    assert (f.best_trial, f.best_iter_min, f.best_iter_median, f.best_iter_max) == (0, 1, 2, 30)
    assert f.share_best_iter_1 == pytest.approx(0.4)


def test_s22a2_identical_trials_are_within_spread(captured):
    verdict = run_s22a2(with_trials(captured, [0.69] * 5))
    assert verdict.status is SpreadStatus.WITHIN_SPREAD and not verdict.stands_out
    f = verdict.figures
    assert f is not None and f.mad_score == 0 and f.robust_z == 0 and f.scale is SpreadScale.NONE
    assert f.iqr_score == 0


def test_s22a2_mad_zero_but_one_better_trial_uses_the_mean_deviation(captured):
    verdict = run_s22a2(with_trials(captured, [0.50, 0.69, 0.69, 0.69]))
    f = verdict.figures
    assert f is not None and f.scale is SpreadScale.MEAN_AD and f.mad_score == 0
    assert f.robust_z == pytest.approx(0.19 / (1.253314 * 0.19 / 4), rel=1e-5)
    assert verdict.status is SpreadStatus.STANDS_OUT


def test_s22a2_two_trials_are_too_few_but_certified(captured):
    verdict = run_s22a2(with_trials(captured, [0.5, 0.7]))
    assert verdict.status is SpreadStatus.TOO_FEW_TRIALS and not verdict.stands_out
    assert verdict.certification is Certification.CERTIFIED
    assert verdict.figures is not None and verdict.figures.robust_z is None
    assert verdict.figures.best_score == 0.5


def test_s22a2_refuses_a_metric_that_is_not_a_loss(captured):
    with pytest.raises(ValueError, match="binary_logloss"):
        run_s22a2(with_trials(captured, [0.5, 0.6, 0.7], metric="auc"))


def test_s22a2_empty_log_is_inconclusive(captured):
    verdict = run_s22a2(with_trials(captured, []))
    assert verdict.certification is Certification.INCONCLUSIVE_TOOLING
    assert verdict.figures is None and verdict.status is SpreadStatus.TOO_FEW_TRIALS


# ---------------------------------------------------------------------------- s23


def test_stratified_folds_put_both_classes_in_every_fold():
    labels = np.r_[np.zeros(100, np.int8), np.ones(7, np.int8)]
    folds = stratified_folds(labels, 3, seed=0)
    for k in range(3):
        assert set(labels[folds == k]) == {0, 1}
    assert np.array_equal(folds, stratified_folds(labels, 3, seed=0))
    # shuffled, not dealt in time order: another seed deals the rows differently
    assert not np.array_equal(folds, stratified_folds(labels, 3, seed=1))
    with pytest.raises(ValueError, match="fewer than"):
        stratified_folds(labels[:102], 3, seed=0)


def test_drift_thresholds_must_be_ordered():
    with pytest.raises(ValidationError):
        DriftSettings(mild_auc=0.8, strong_auc=0.7)


def exchangeable(captured: CapturedFold, seed: int = 7) -> tuple[pd.DataFrame, np.ndarray]:
    """The fold's rows shuffled, so that its training and validation blocks are exchangeable."""
    data = captured.data
    order = np.random.default_rng(seed).permutation(len(data.X))
    return data.X.iloc[order].reset_index(drop=True), data.y["label"].to_numpy()[order]


def test_s23_finds_no_drift_between_exchangeable_blocks(captured):
    data = captured.data
    x, labels = exchangeable(captured)
    verdict = run_s23(with_data(captured, x, labels, data.n_train))
    assert verdict.drift is DriftLevel.NONE and verdict.figures.auc < 0.6
    assert verdict.figures.n_train == data.n_train
    assert verdict.figures.n_validation == data.n_validation


def test_s23_detects_a_planted_shift_and_names_the_feature(captured):
    # Planted on exchangeable blocks, so the shift is the only drift there is to find.
    data = captured.data
    x, labels = exchangeable(captured)
    column = x.columns[3]
    sigma = float(x[column].iloc[: data.n_train].std())
    x.loc[data.n_train :, column] += np.float32(5 * sigma)
    verdict = run_s23(with_data(captured, x, labels, data.n_train))
    assert verdict.drift is DriftLevel.STRONG and verdict.figures.auc > 0.95
    top = verdict.figures.top_features
    assert top[0].feature == column and top[0].share > 0.5
    assert len(top) <= 5 and sum(t.share for t in top) <= 1 + 1e-6
    assert verdict.certification is Certification.CERTIFIED


def test_s23_is_deterministic_and_never_reads_the_anchor(captured, anchor):
    # Passing an anchor would raise ConsumerContractViolation if s23 ever touched it.
    first = run_s23(captured, anchor=anchor)
    second = run_s23(captured, DriftSettings())
    assert first.content_hash() == second.content_hash()
    assert first.x_hash == captured.manifest.x_hash
    assert len(first.figures.fold_aucs) == 3


# ---------------------------------------------------------------------------- s27 helpers


def test_calibration_helpers_match_a_hand_computation():
    labels = np.array([0, 1, 1, 0, 1])
    probs = np.array([0.05, 0.15, 0.55, 0.65, 1.0])
    # bins of width 0.5: [0.05, 0.15] mean 0.10 freq 0.5; [0.55, 0.65, 1.0] mean 0.7333 freq 2/3
    ece = 2 / 5 * abs(0.10 - 0.5) + 3 / 5 * abs((0.55 + 0.65 + 1.0) / 3 - 2 / 3)
    assert expected_calibration_error(labels, probs, 2) == pytest.approx(ece)
    assert ece == pytest.approx(0.2)
    # ten bins put every row alone in its bin, so the ECE is mean |p - y|
    assert expected_calibration_error(labels, probs, 10) == pytest.approx(
        (0.05 + 0.85 + 0.45 + 0.65 + 0.0) / 5
    )
    brier = (0.05**2 + 0.85**2 + 0.45**2 + 0.65**2 + 0.0) / 5
    assert brier_score(labels, probs) == pytest.approx(brier)
    table = reliability_table(labels, probs, 2)
    assert [b.count for b in table] == [2, 3]
    assert table[0].mean_predicted == pytest.approx(0.1)
    assert table[1].observed_frequency == pytest.approx(0.666667)
    assert reliability_table(labels, probs, 10)[3].mean_predicted is None
    assert binary_logloss(np.array([1, 0]), np.array([0.8, 0.2])) == pytest.approx(-np.log(0.8))


# ---------------------------------------------------------------------------- s27


def test_s27_refits_the_anchor_and_is_deterministic(captured, anchor):
    first = run_s27(captured, anchor=anchor)
    second = run_s27(captured, CalibrationSettings(), anchor=anchor)
    assert first.content_hash() == second.content_hash()
    assert first.anchor_available and first.anchor_hash == anchor.content_hash()
    f = first.figures
    assert f is not None and f.reproduces_anchor and f.anchor_best_iter == anchor.best_iter
    assert first.certification is Certification.CERTIFIED
    assert f.refit_best_score == pytest.approx(anchor.best_score, abs=1e-6)
    # LightGBM's own metric and the verdict's log-loss agree
    assert f.logloss == pytest.approx(anchor.best_score, abs=1e-5)
    assert sum(b.count for b in f.reliability) == f.n_validation == captured.data.n_validation
    labels = captured.data.y["label"].to_numpy()[captured.data.n_train :]
    assert f.base_rate == pytest.approx(labels.mean(), abs=1e-6)
    assert first.calibration is (
        CalibrationStatus.WELL_CALIBRATED if f.ece <= 0.05 else CalibrationStatus.MISCALIBRATED
    )


def test_s27_reproduces_a_many_round_anchor_with_its_seed(captured):
    # The tiny fold's own anchor stops at round 1; a leaked label makes it learn for many
    # rounds, with bagging and feature sampling that only the anchor's seed reproduces.
    data = captured.data
    x = data.X.copy()
    noise = np.random.default_rng(0).normal(0, 0.8, len(x))
    x["leak"] = (data.y["label"].to_numpy() + noise).astype(np.float32)
    leaky = with_data(captured, x, data.y["label"].to_numpy(), data.n_train)
    anchor = run_anchor(leaky)
    assert anchor.best_iter > 5
    verdict = run_s27(leaky, anchor=anchor)
    assert verdict.figures is not None and verdict.figures.reproduces_anchor
    assert verdict.certification is Certification.CERTIFIED


def test_s27_flags_a_refit_that_is_not_the_anchors_model(captured, anchor):
    wrong = anchor.model_copy(update={"best_score": anchor.best_score + 0.01})
    verdict = run_s27(captured, anchor=wrong)
    assert verdict.figures is not None and not verdict.figures.reproduces_anchor
    assert verdict.certification is Certification.INCONCLUSIVE_TOOLING


def _anchor_for(captured, params, best_iter) -> AnchorResult:
    manifest = captured.manifest
    return AnchorResult(
        cell_ref=manifest.cell_ref,
        capture_key=manifest.capture_key,
        capture_content_hash=manifest.content_hash,
        trial=0,
        params=params,
        n_rounds=best_iter,
        best_iter=best_iter,
        best_score=0.0,
        curve=[0.0],
        rows=len(captured.data.X),
        n_train=captured.data.n_train,
        elapsed_s=0.0,
    )


def test_s27_tells_a_calibrated_model_from_an_overconfident_one(captured):
    rng = np.random.default_rng(11)
    n, n_train = 9_000, 6_000
    x = pd.DataFrame(rng.normal(size=(n, 3)).astype(np.float32), columns=["a", "b", "c"])
    p_true = 1 / (1 + np.exp(-1.5 * x["a"].to_numpy()))
    signal = with_data(captured, x, rng.random(n) < p_true, n_train)
    calm = {"num_leaves": 7, "learning_rate": 0.1, "min_data_in_leaf": 100}
    verdict = run_s27(signal, anchor=_anchor_for(signal, calm, 60))
    assert verdict.calibration is CalibrationStatus.WELL_CALIBRATED
    assert verdict.figures is not None and verdict.figures.ece < 0.05

    noise = with_data(captured, x.iloc[:3_000], rng.random(3_000) < 0.5, 2_000)
    wild = {"num_leaves": 63, "learning_rate": 0.5, "min_data_in_leaf": 1, "lambda_l2": 0.0}
    verdict = run_s27(noise, anchor=_anchor_for(noise, wild, 100))
    assert verdict.calibration is CalibrationStatus.MISCALIBRATED
    f = verdict.figures
    assert f is not None and f.ece > 0.2 and f.brier > 0.3
    # overconfident: most predictions sit in the outer bins
    outer = f.reliability[0].count + f.reliability[-1].count
    assert outer > f.n_validation / 2


def test_s27_without_anchor(captured):
    with pytest.raises(LookupError, match="no s22a1 anchor"):
        run_s27(captured)
    verdict = s27_without_anchor(captured)
    assert verdict.certification is Certification.DOWNGRADED
    assert verdict.certification_reason.startswith("s22a1 anchor skipped:")
    assert "single_fit" not in verdict.certification_reason  # a full_replay capture
    assert verdict.anchor_available is False and verdict.anchor_hash is None
    assert verdict.calibration is None and verdict.figures is None
    assert verdict.capture_content_hash == captured.manifest.content_hash
    again = s27_without_anchor(captured)
    assert verdict.content_hash() == again.content_hash()


def test_s27_refuses_an_anchor_of_another_capture(captured, anchor):
    stale = anchor.model_copy(update={"capture_content_hash": "0" * 32})
    with pytest.raises(ValueError, match="Re-materialize s22a1_anchor"):
        run_s27(captured, anchor=stale)
