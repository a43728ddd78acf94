"""Recipe tasks: binary, multiclass and regression captures fitted and scored by their task."""

import lightgbm
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, mean_squared_error

from diag_assets.core.capture import events as ev
from diag_assets.core.capture.artifacts import CaptureArtifacts
from diag_assets.core.capture.cache import CaptureService
from diag_assets.core.capture.events import EventRecorder
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.replay import CapturedFold
from diag_assets.core.capture.source_drift import DriftPolicy
from diag_assets.core.diagnostics.anchor import run_anchor
from diag_assets.core.diagnostics.calibration import CALIBRATION_TASKS, run_s27, s27_without_anchor
from diag_assets.core.diagnostics.probe import (
    auc_ovr_macro,
    judge_s40,
    probe_statistic,
    run_probe,
    spearman_ic,
)
from diag_assets.core.diagnostics.verdicts import Signal
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import Fold
from diag_assets.core.recipe.prep import FoldData, PrepSettings
from diag_assets.core.recipe.reference import ReferenceRecipe
from diag_assets.core.recipe.tasks import (
    TASK_SPECS,
    TaskKind,
    lightgbm_params,
    num_classes,
    task_spec,
    validate_labels,
)
from diag_assets.core.recipe.training import VALIDATION_METRIC, fit_booster
from diag_assets.core.storage.blob import LocalBlobStore
from diag_assets.core.storage.catalog.catalog import SqliteCatalog
from diag_assets.core.storage.catalog.model import CaptureStatus
from diag_assets.core.storage.lease.file import FileLease
from tests.conftest import TINY_CAPTURE, TINY_FOLDS, TINY_PROBE
from tests.fixtures.captures import CELL, replay

# ------------------------------------------------------------------------------ recipes


def forward_returns(bars: pd.DataFrame, fold: Fold, open_times: pd.Series) -> np.ndarray:
    """The log return over the fold's label horizon from each kept row's bar."""
    log_close = np.log(bars["close"].to_numpy(dtype=np.float64))
    position = pd.Index(pd.DatetimeIndex(bars["date"])).get_indexer(pd.DatetimeIndex(open_times))
    horizon = fold.label_horizon
    return log_close[position + horizon] - log_close[position]


class TaskRecipe(ReferenceRecipe):
    """The reference features and search; the reference trial loop fits the declared task."""


class ForwardReturnRecipe(TaskRecipe):
    """Regression on the forward log return (no dead zone: every move is a target)."""

    name = "forward_return"
    task = TaskKind.REGRESSION

    def __init__(self) -> None:
        super().__init__(PrepSettings(dead_zone_sigma=0.0))

    def prep(self, bars: pd.DataFrame, fold: Fold) -> FoldData:
        data = super().prep(bars, fold)
        y = data.y.assign(label=forward_returns(bars, fold, data.y["open_time"]))
        return FoldData(X=data.X, y=y, n_train=data.n_train, feature_names=data.feature_names)


class DirectionRecipe(TaskRecipe):
    """Three classes: the forward return's down / flat / up tercile of the training rows."""

    name = "direction"
    task = TaskKind.MULTICLASS

    def __init__(self) -> None:
        super().__init__(PrepSettings(dead_zone_sigma=0.0))

    def prep(self, bars: pd.DataFrame, fold: Fold) -> FoldData:
        data = super().prep(bars, fold)
        forward = forward_returns(bars, fold, data.y["open_time"])
        cuts = np.quantile(forward[: data.n_train], [1 / 3, 2 / 3])
        y = data.y.assign(label=np.digitize(forward, cuts).astype(np.int8))
        return FoldData(X=data.X, y=y, n_train=data.n_train, feature_names=data.feature_names)


class MislabelledRecipe(ForwardReturnRecipe):
    """Declares binary but returns float forward returns as its labels."""

    name = "mislabelled"
    task = TaskKind.BINARY


class TwoClassRecipe(DirectionRecipe):
    """Declares multiclass but has two classes only."""

    name = "two_class"

    def prep(self, bars: pd.DataFrame, fold: Fold) -> FoldData:
        data = super().prep(bars, fold)
        y = data.y.assign(label=(data.y["label"] == 2).astype(np.int8))
        return FoldData(X=data.X, y=y, n_train=data.n_train, feature_names=data.feature_names)


@pytest.fixture(scope="module")
def regression(tiny_source) -> CapturedFold:
    return replay(tiny_source, CaptureMode.FULL_REPLAY, ForwardReturnRecipe())


@pytest.fixture(scope="module")
def multiclass(tiny_source) -> CapturedFold:
    return replay(tiny_source, CaptureMode.FULL_REPLAY, DirectionRecipe())


def with_leak(captured: CapturedFold, noise: float) -> CapturedFold:
    """The capture with a feature that is its label plus noise: a probe must find it."""
    data = captured.data
    x = data.X.copy()
    label = data.y["label"].to_numpy().astype(np.float64)
    scale = noise * float(np.std(label))
    x["leak"] = (label + np.random.default_rng(0).normal(0, scale, len(x))).astype(np.float32)
    fold = FoldData(X=x, y=data.y, n_train=data.n_train, feature_names=tuple(x.columns))
    return CapturedFold(data=fold, trial_log=captured.trial_log, manifest=captured.manifest)


def with_pure_noise(captured: CapturedFold, seed: int = 1) -> CapturedFold:
    data = captured.data
    x = data.X.copy()
    x[:] = np.random.default_rng(seed).normal(size=x.shape).astype(np.float32)
    fold = FoldData(X=x, y=data.y, n_train=data.n_train, feature_names=tuple(x.columns))
    return CapturedFold(data=fold, trial_log=captured.trial_log, manifest=captured.manifest)


# ------------------------------------------------------------------------- task specs


def test_each_task_has_its_objective_metric_and_statistic():
    assert set(TASK_SPECS) == set(TaskKind)
    assert [(s.objective, s.metric, s.statistic) for s in TASK_SPECS.values()] == [
        ("binary", "binary_logloss", "validation_auc"),
        ("multiclass", "multi_logloss", "auc_ovr_macro"),
        ("regression", "l2", "spearman_ic"),
    ]
    assert VALIDATION_METRIC == "binary_logloss"  # what the reference trials minimise
    y = np.array([0, 2, 1, 1, 0])
    assert lightgbm_params(TaskKind.MULTICLASS, y, np.array([1, 2])) == {
        "objective": "multiclass",
        "metric": "multi_logloss",
        "num_class": 3,
    }
    assert lightgbm_params("regression", y) == {"objective": "regression", "metric": "l2"}
    with pytest.raises(DiagInputError, match="declare task as one of"):
        task_spec("ranking")


def test_the_class_count_is_the_largest_label_plus_one_and_every_class_trains():
    assert num_classes(np.array([0, 1, 2, 3]), np.array([1])) == 4
    with pytest.raises(DiagInputError, match="training rows hold no row of class 3") as error:
        num_classes(np.array([0, 1, 2]), np.array([3, 0]))
    assert "merge the rare classes" in str(error.value)


# ------------------------------------------------------------------------ label checks


def labels(values, dtype=None) -> pd.DataFrame:
    return pd.DataFrame({"label": np.asarray(values, dtype=dtype)})


@pytest.mark.parametrize(
    ("task", "y", "message", "fix"),
    [
        (TaskKind.BINARY, labels([0, 1, 2]), "not 0 or 1", "declare task multiclass"),
        (TaskKind.BINARY, labels([0.0, 0.012, -0.004]), "not 0 or 1", "regression"),
        (TaskKind.BINARY, labels([0.0, 1.0, np.nan]), "not 0 or 1", "0/1"),
        (TaskKind.MULTICLASS, labels([0, 1, 1, 0]), "hold 2 classes", "declare task binary"),
        (TaskKind.MULTICLASS, labels([0, 1, 2, 1.5]), "not class numbers", "0..K-1"),
        (TaskKind.MULTICLASS, labels([0, 1, 2, -1]), "not class numbers", "0..K-1"),
        (TaskKind.MULTICLASS, labels([0, 1, 3, 3]), "no row of class 2", "merge the rare"),
        (TaskKind.MULTICLASS, labels(["a", "b", "c"]), "not a number", "as numbers"),
        (TaskKind.REGRESSION, labels([0.1, np.inf, 0.2]), "not finite", "drop the rows"),
        (TaskKind.REGRESSION, labels([0.1, np.nan]), "not finite", "drop the rows"),
        (TaskKind.REGRESSION, labels([True, False]), "not a number", "declare task binary"),
        (TaskKind.REGRESSION, labels(["0.1", "0.2"]), "not a number", "as numbers"),
        (TaskKind.BINARY, pd.DataFrame({"target": [0, 1]}), "no 'label' column", "'label'"),
        (TaskKind.REGRESSION, pd.DataFrame({"y": [0.1]}), "no 'label' column", "'label'"),
    ],
)
def test_labels_that_do_not_fit_their_task_are_refused(task, y, message, fix):
    with pytest.raises(DiagInputError, match=message) as error:
        validate_labels(task, y)
    assert fix in error.value.fix


def test_multiclass_classes_must_train_and_validate():
    y = labels([0, 1, 2, 0, 1, 0, 1, 2])
    validate_labels(TaskKind.MULTICLASS, y, n_train=3)
    with pytest.raises(DiagInputError, match="training rows hold no row of class 2"):
        validate_labels(TaskKind.MULTICLASS, y, n_train=2)
    with pytest.raises(DiagInputError, match="validation rows hold no row of class 0"):
        validate_labels(TaskKind.MULTICLASS, y, n_train=6)


def test_labels_that_fit_their_task_pass():
    validate_labels(TaskKind.BINARY, labels([0, 1, 1], np.int8))
    validate_labels(TaskKind.BINARY, labels([0.0, 1.0]))
    validate_labels(TaskKind.BINARY, labels([True, False]))
    validate_labels(TaskKind.MULTICLASS, labels([0, 1, 2, 3]))
    validate_labels(TaskKind.MULTICLASS, labels([0.0, 2.0, 1.0]))
    validate_labels(TaskKind.REGRESSION, labels([-0.01, 0.0, 3]))


# --------------------------------------------------------------------- replay refusal


def no_training(*args, **kwargs):
    raise AssertionError("a capture with labels that do not fit its task must not train")


@pytest.mark.parametrize("mode", [CaptureMode.FULL_REPLAY, CaptureMode.DATASET_ONLY])
@pytest.mark.parametrize(
    ("recipe", "message"),
    [(MislabelledRecipe(), "binary labels are not 0 or 1"), (TwoClassRecipe(), "hold 2 classes")],
)
def test_replay_refuses_labels_that_do_not_fit_the_task_before_training(
    tiny_source, monkeypatch, mode, recipe, message
):
    monkeypatch.setattr(lightgbm, "train", no_training)
    with pytest.raises(DiagInputError, match=message):
        replay(tiny_source, mode, recipe)


def test_a_capture_with_unfit_labels_fails_and_stores_nothing(tmp_path, tiny_source):
    service = CaptureService(
        CaptureArtifacts(LocalBlobStore(tmp_path / "store")),
        SqliteCatalog(tmp_path / "catalog.sqlite"),
        FileLease(tmp_path / "leases"),
        lease_wait_s=30.0,
        drift=DriftPolicy.parse("off"),
    )
    recorder = EventRecorder()
    with service, pytest.raises(DiagInputError, match="declare task multiclass"):
        service.get(
            CELL,
            tiny_source,
            TINY_FOLDS,
            MislabelledRecipe(),
            TINY_CAPTURE,
            allow_cold=True,
            events=recorder,
        )
    assert ev.CAPTURE_FAILED in recorder.names()
    assert ev.CAPTURE_COMPLETED not in recorder.names()
    stored = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert stored == []
    entries = SqliteCatalog(tmp_path / "catalog.sqlite").entries()
    assert [e.status for e in entries] == [CaptureStatus.FAILED]


# ------------------------------------------------------------------------- statistics


def test_the_probe_statistics_are_higher_for_better_predictions():
    y = np.array([0, 1, 2, 0, 1, 2])
    perfect = np.eye(3)[y]
    assert auc_ovr_macro(y, perfect) == 1.0
    assert auc_ovr_macro(y, np.full((6, 3), 1 / 3)) == 0.5
    with pytest.raises(DiagInputError, match="no row of class 2"):
        auc_ovr_macro(np.array([0, 1, 0, 1]), np.full((4, 3), 1 / 3))
    target = np.array([0.3, -0.1, 0.2, 0.0])
    assert spearman_ic(target, target * 10) == pytest.approx(1.0)
    assert spearman_ic(target, -target) == pytest.approx(-1.0)
    assert spearman_ic(target, np.zeros(4)) == 0.0  # a constant prediction ranks nothing
    with pytest.raises(ValueError, match=r"expected \(n, K\)"):
        probe_statistic(TaskKind.MULTICLASS, y, np.zeros(6))
    with pytest.raises(ValueError, match=r"expected \(n,\)"):
        probe_statistic(TaskKind.REGRESSION, target, np.zeros((4, 2)))


# ----------------------------------------------------------------- regression capture


def test_a_regression_capture_records_its_task_and_fits_l2(regression):
    manifest = regression.manifest
    assert manifest.task is TaskKind.REGRESSION
    assert regression.trial_log is not None and regression.trial_log.metric == "l2"
    x_train, y_train, x_val, y_val = regression.data.split()
    assert y_train.dtype == np.float64 and len(np.unique(y_train)) > 100
    fit = fit_booster(
        {"num_leaves": 7, "min_data_in_leaf": 50},
        x_train,
        y_train,
        x_val,
        y_val,
        num_rounds=20,
        early_stopping_rounds=None,
        num_threads=2,
        seed=0,
        task=TaskKind.REGRESSION,
    )
    assert fit.booster.params["objective"] == "regression"
    predicted = fit.booster.predict(x_val, num_iteration=fit.best_iter)
    assert fit.best_score == pytest.approx(mean_squared_error(y_val, predicted), rel=1e-6)


def test_the_anchor_of_a_regression_capture_minimises_l2(regression):
    anchor = run_anchor(regression)
    assert len(anchor.curve) == 300 and anchor.best_iter == int(np.argmin(anchor.curve)) + 1
    y_val = regression.data.split()[3]
    # an l2 curve, not a log-loss: it sits at the scale of the target's variance
    assert anchor.best_score == pytest.approx(min(anchor.curve))
    assert anchor.best_score < 3 * float(np.var(y_val))
    assert anchor.content_hash() == run_anchor(regression).content_hash()


def test_the_probe_of_a_regression_capture_uses_the_spearman_ic(regression):
    signal, figures = run_probe(with_leak(regression, noise=1.0), TINY_PROBE)
    assert figures.statistic == "spearman_ic"
    assert signal is Signal.SIGNAL and figures.observed > 0.5
    assert figures.permutation_max < figures.observed
    signal, figures = run_probe(with_pure_noise(regression), TINY_PROBE)
    assert signal is Signal.NO_SIGNAL and abs(figures.observed) < 0.2
    verdict = judge_s40(regression, run_anchor(regression), TINY_PROBE)
    assert verdict.probe is not None and verdict.probe.statistic == "spearman_ic"


# ----------------------------------------------------------------- multiclass capture


def test_a_multiclass_capture_records_its_task_and_fits_multi_logloss(multiclass):
    manifest = multiclass.manifest
    assert manifest.task is TaskKind.MULTICLASS
    assert multiclass.trial_log is not None and multiclass.trial_log.metric == "multi_logloss"
    x_train, y_train, x_val, y_val = multiclass.data.split()
    assert set(np.unique(y_train)) == {0, 1, 2}
    fit = fit_booster(
        {"num_leaves": 7, "min_data_in_leaf": 50},
        x_train,
        y_train,
        x_val,
        y_val,
        num_rounds=20,
        early_stopping_rounds=None,
        num_threads=2,
        seed=0,
        task=TaskKind.MULTICLASS,
    )
    assert fit.booster.params["objective"] == "multiclass"
    assert fit.booster.params["num_class"] == 3
    probabilities = np.asarray(fit.booster.predict(x_val, num_iteration=fit.best_iter))
    assert probabilities.shape == (len(y_val), 3)
    assert fit.best_score == pytest.approx(log_loss(y_val, probabilities), rel=1e-6)


def test_the_anchor_of_a_multiclass_capture_minimises_multi_logloss(multiclass):
    anchor = run_anchor(multiclass)
    # a three-class log-loss starts near log(3), where a binary one would start near log(2)
    assert anchor.curve[0] == pytest.approx(np.log(3), abs=0.05)
    assert anchor.best_score == pytest.approx(min(anchor.curve))


def test_the_probe_of_a_multiclass_capture_uses_the_macro_ovr_auc(multiclass):
    signal, figures = run_probe(with_leak(multiclass, noise=0.5), TINY_PROBE)
    assert figures.statistic == "auc_ovr_macro"
    assert signal is Signal.SIGNAL and figures.observed > 0.8
    # Pure noise beats all four permutations one time in five by chance: over five draws of
    # it, most are NO_SIGNAL and none looks learnable.
    results = [run_probe(with_pure_noise(multiclass, seed), TINY_PROBE) for seed in range(1, 6)]
    assert sum(signal is Signal.NO_SIGNAL for signal, _ in results) >= 3
    assert all(0.4 < figures.observed < 0.6 for _, figures in results)


def test_the_probe_refuses_a_multiclass_window_that_misses_a_class(multiclass):
    data = multiclass.data
    y = data.y.copy()
    # the most recent 300 training rows hold classes 0 and 1 only
    window = slice(data.n_train - 300, data.n_train)
    y.loc[window, "label"] = y.loc[window, "label"].where(y.loc[window, "label"] < 2, 0)
    fold = FoldData(X=data.X, y=y, n_train=data.n_train, feature_names=data.feature_names)
    captured = CapturedFold(data=fold, trial_log=multiclass.trial_log, manifest=multiclass.manifest)
    settings = TINY_PROBE.model_copy(update={"max_train_rows": 300})
    with pytest.raises(DiagInputError, match="300 most recent training rows") as error:
        run_probe(captured, settings)
    assert "raise the probe's max_train_rows" in error.value.fix


# ------------------------------------------------------------------------- s27 binary


def test_s27_is_declared_binary_only_and_refuses_other_tasks(regression, multiclass):
    assert frozenset({TaskKind.BINARY}) == CALIBRATION_TASKS
    for captured in (regression, multiclass):
        anchor = run_anchor(captured)
        with pytest.raises(DiagInputError, match="binary probabilities") as error:
            run_s27(captured, anchor=anchor)
        assert "leave s27 out" in error.value.fix
        with pytest.raises(DiagInputError, match=str(captured.manifest.task)):
            s27_without_anchor(captured)
