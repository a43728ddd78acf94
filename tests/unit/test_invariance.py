"""The trial invariance and prep/train seam gates on instrumented replays."""

import lightgbm
import numpy as np
import pandas as pd
import pytest

from diag_assets.core.capture.replay import prepare_cell, replay_cell
from diag_assets.core.capture.trace import EventKind, ReplayTrace
from diag_assets.core.cells import CellRef
from diag_assets.core.gates.seam import NO_SEAM, SeamDecision, SeamRule, seam_gate
from diag_assets.core.gates.trial_invariance import (
    InvarianceDecision,
    StructuralRule,
    trial_invariance_gate,
)
from diag_assets.core.recipe import training
from diag_assets.core.recipe.prep import FoldData
from diag_assets.core.recipe.protocol import TrialLog, TrialObserver, TrialSettings
from diag_assets.core.recipe.reference import ReferenceRecipe
from tests.conftest import TINY_CAPTURE, TINY_FOLDS
from tests.fixtures.no_seam_recipe import InLoopPrepRecipe
from tests.fixtures.replay import instrumented_replay

N_TRIALS = 3
CONFIG = TINY_CAPTURE.model_copy(
    update={"trials": TINY_CAPTURE.trials.model_copy(update={"n_trials": N_TRIALS})}
)
FOLD_1 = CellRef("defi_top5", "UNIUSDC", 1)
FOLD_3 = CellRef("defi_top5", "UNIUSDC", 3)
ORIGINAL_TRAIN = lightgbm.train
ORIGINAL_DATASET_INIT = lightgbm.Dataset.__init__


class MutatingRecipe(ReferenceRecipe):
    """Prep upstream, but X is modified in place after trial 0 (the observer sees it)."""

    name = "mutating"

    def run_trials(
        self, data: FoldData, settings: TrialSettings, observer: TrialObserver | None = None
    ) -> TrialLog:
        def mutate_then_observe(trial: int, fold_data: FoldData) -> None:
            if trial == 1:
                fold_data.X["vol_24"] = fold_data.X["vol_24"] * np.float32(1.5)
            if observer is not None:
                observer(trial, fold_data)

        return super().run_trials(data, settings, mutate_then_observe)


class RaisingRecipe(ReferenceRecipe):
    """Builds a Dataset under the patches, then fails inside its trial loop."""

    name = "raising"

    def __init__(self) -> None:
        super().__init__()
        self.patched_during_run: bool | None = None

    def run_trials(
        self, data: FoldData, settings: TrialSettings, observer: TrialObserver | None = None
    ) -> TrialLog:
        self.patched_during_run = (
            lightgbm.train is not ORIGINAL_TRAIN
            and lightgbm.Dataset.__init__ is not ORIGINAL_DATASET_INIT
            and "prep" in vars(self)
        )
        lightgbm.Dataset(np.zeros((4, 2)), label=np.zeros(4))
        raise RuntimeError("trial loop failed")


def _replay(source, cell: CellRef, recipe) -> ReplayTrace:
    return instrumented_replay(prepare_cell(cell, source, TINY_FOLDS, recipe, CONFIG), recipe)


def _assert_unpatched(recipe) -> None:
    assert lightgbm.train is ORIGINAL_TRAIN
    assert lightgbm.Dataset.__init__ is ORIGINAL_DATASET_INIT
    assert "prep" not in vars(recipe)


@pytest.fixture(scope="module")
def reference_traces(tiny_source) -> list[tuple[str, ReplayTrace]]:
    recipe = ReferenceRecipe()
    return [(str(cell), _replay(tiny_source, cell, recipe)) for cell in (FOLD_1, FOLD_3)]


@pytest.fixture(scope="module")
def in_loop_trace(tiny_source) -> ReplayTrace:
    return _replay(tiny_source, FOLD_3, InLoopPrepRecipe())


def test_training_reaches_lightgbm_through_the_patched_module_attribute(monkeypatch):
    # fit_booster calls train on the lightgbm module when it runs: patching lightgbm.train
    # (what the replay trace does) covers every fit.
    calls = []
    original = lightgbm.train

    def recording(*args, **kwargs):
        calls.append(kwargs.get("num_boost_round"))
        return original(*args, **kwargs)

    monkeypatch.setattr(lightgbm, "train", recording)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 3)).astype(np.float32), rng.integers(0, 2, 200)
    training.fit_booster(
        {},
        x[:150],
        y[:150],
        x[150:],
        y[150:],
        num_rounds=3,
        early_stopping_rounds=None,
        num_threads=1,
        seed=0,
    )
    assert calls == [3]


def test_trace_records_prep_trials_datasets_and_fits_in_order(reference_traces):
    _, trace = reference_traces[0]
    kinds = [event.kind for event in trace.events]
    per_trial = [
        EventKind.TRIAL_STARTED,
        EventKind.DATASET_BUILT,
        EventKind.DATASET_BUILT,
        EventKind.TRAIN_CALLED,
    ]
    assert kinds == [EventKind.PREP_CALLED, *per_trial * N_TRIALS]
    assert [e.trial for e in trace.of_kind(EventKind.TRIAL_STARTED)] == list(range(N_TRIALS))
    assert [e.trial for e in trace.of_kind(EventKind.TRAIN_CALLED)] == list(range(N_TRIALS))
    datasets = trace.of_kind(EventKind.DATASET_BUILT)
    assert [e.reference for e in datasets[:2]] == [False, True]
    prep = trace.events[0]
    assert prep.xy is not None and "ret_1" in prep.xy.x.columns
    assert datasets[0].data == prep.forms["x_train"]
    assert datasets[1].label == prep.forms["y_val"]
    assert trace.trials_requested == N_TRIALS and trace.recipe == "reference"


def test_trace_holds_hashes_only(reference_traces, in_loop_trace):
    def walk(value, path):
        assert not isinstance(value, pd.DataFrame | pd.Series | np.ndarray), path
        if isinstance(value, dict):
            for key, item in value.items():
                walk(key, f"{path}.{key}")
                walk(item, f"{path}.{key}")
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        elif hasattr(value, "__dict__") and not isinstance(value, str | int | float | bool):
            walk(vars(value), path)
        else:
            assert value is None or isinstance(value, str | int | bool), (path, type(value))

    for trace in [trace for _, trace in reference_traces] + [in_loop_trace]:
        walk(trace, "trace")
        assert ReplayTrace.model_validate_json(trace.model_dump_json()) == trace


def test_reference_recipe_is_trial_invariant_on_two_folds(reference_traces):
    report = trial_invariance_gate(reference_traces)
    assert report.gate == "trial invariance gate"
    assert report.markdown().startswith("### trial invariance gate, 2 fold(s)\n")
    assert report.decision is InvarianceDecision.PASS, report.reasons
    assert report.stop is None
    assert report.figures.folds == 2
    assert report.figures.trials_per_fold == {str(FOLD_1): N_TRIALS, str(FOLD_3): N_TRIALS}
    assert report.figures.prep_calls_per_fold == {str(FOLD_1): 1, str(FOLD_3): 1}
    assert all(fold.structural_ok and fold.empirical_ok for fold in report.folds)
    assert "**Decision: PASS**" in report.markdown()


def test_reference_recipe_has_a_seam(reference_traces):
    for cell_ref, trace in reference_traces:
        report = seam_gate(trace)
        assert report.gate == "prep/train seam gate" and report.cell_ref == cell_ref
        assert report.markdown().startswith(f"### prep/train seam gate, {cell_ref} (")
        assert report.decision is SeamDecision.SEAM, report.reasons
        assert report.failed_rules == []
        assert report.figures.prep_calls == 1 and report.figures.prep_position == 0
        assert report.figures.first_train_position == 4
        assert report.figures.distinct_dataset_hashes == 2  # train and validation, every trial
        assert "**Decision: SEAM**" in report.markdown()
        assert "single_fit" not in report.decision


def test_in_loop_prep_stops_trial_invariance_at_trial_1(in_loop_trace):
    report = trial_invariance_gate([(str(FOLD_3), in_loop_trace)])
    assert report.decision is InvarianceDecision.STOP
    assert report.stop is not None
    assert report.stop.cell_ref == str(FOLD_3) and report.stop.trial == 1
    assert "ret_1" in report.stop.columns and "y" in report.stop.columns
    assert StructuralRule.PREP_ONCE in report.stop.failed_rules
    assert StructuralRule.PREP_BEFORE_TRIALS in report.stop.failed_rules
    assert report.figures.prep_calls_per_fold == {str(FOLD_3): N_TRIALS}
    fold = report.folds[0]
    assert not fold.structural_ok and not fold.empirical_ok
    assert fold.trial_divergence is not None and fold.trial_divergence.trial == 1
    assert f"prep ran {N_TRIALS} times" in " ".join(report.reasons)
    assert "trial 1" in report.reasons[0] and "ret_1" in report.reasons[0]
    assert "**Decision: STOP**" in report.markdown()


def test_in_loop_prep_requires_design_review(in_loop_trace):
    report = seam_gate(in_loop_trace)
    assert report.decision is SeamDecision.DESIGN_REVIEW_REQUIRED
    assert {SeamRule.PREP_ONCE, SeamRule.PREP_BEFORE_TRAIN} <= set(report.failed_rules)
    assert SeamRule.DATASETS_TRIAL_INVARIANT in report.failed_rules
    assert report.figures.prep_calls == N_TRIALS
    assert report.figures.distinct_dataset_hashes == 2 * N_TRIALS
    assert any(NO_SEAM in reason for reason in report.reasons)
    assert "**Decision: DESIGN_REVIEW_REQUIRED**" in report.markdown()


def test_one_fold_failing_stops_the_whole_gate(reference_traces, in_loop_trace):
    report = trial_invariance_gate([*reference_traces, (str(FOLD_3) + "-in-loop", in_loop_trace)])
    assert report.decision is InvarianceDecision.STOP
    assert report.stop is not None and report.stop.cell_ref == str(FOLD_3) + "-in-loop"


def test_in_place_mutation_between_trials_is_caught_by_the_empirical_check(tiny_source):
    recipe = MutatingRecipe()
    trace = _replay(tiny_source, FOLD_1, recipe)
    _assert_unpatched(recipe)
    report = trial_invariance_gate([(str(FOLD_1), trace)])
    assert report.decision is InvarianceDecision.STOP
    fold = report.folds[0]
    assert fold.prep_calls == 1
    assert fold.trial_divergence is not None
    assert fold.trial_divergence.trial == 1 and fold.trial_divergence.columns == ["vol_24"]
    assert report.stop is not None and report.stop.columns == ["vol_24"]
    assert "vol_24" in report.reasons[0]
    # Prep was upstream and ran once: only the "trials receive the prep output" rule breaks.
    assert fold.failed_rules == [StructuralRule.TRIALS_RECEIVE_PREP_OUTPUT]
    assert SeamRule.XY_FINAL in seam_gate(trace).failed_rules


def test_patches_are_undone_after_a_replay(reference_traces):
    _assert_unpatched(ReferenceRecipe())


def test_patches_are_undone_when_the_replay_raises(tiny_source):
    recipe = RaisingRecipe()
    prepared = prepare_cell(FOLD_1, tiny_source, TINY_FOLDS, recipe, CONFIG)
    with pytest.raises(RuntimeError, match="trial loop failed"):
        instrumented_replay(prepared, recipe)
    assert recipe.patched_during_run is True
    _assert_unpatched(recipe)


def test_an_instance_level_prep_is_put_back(tiny_source):
    recipe = ReferenceRecipe()
    own_prep = recipe.prep
    recipe.prep = own_prep  # an instance attribute that must survive the replay
    _replay(tiny_source, FOLD_1, recipe)
    assert vars(recipe)["prep"] is own_prep


def test_prep_after_the_first_fit_is_no_seam(reference_traces):
    _, trace = reference_traces[0]
    events = list(trace.events)
    prep = events.pop(0)
    events.insert(4, prep)  # after trial 0's Datasets and train call
    report = seam_gate(trace.model_copy(update={"events": events}))
    assert report.decision is SeamDecision.DESIGN_REVIEW_REQUIRED
    assert report.failed_rules == [SeamRule.PREP_BEFORE_TRAIN]
    assert report.figures.first_train_position == 3


def test_a_replay_without_train_calls_is_no_seam(reference_traces):
    _, trace = reference_traces[0]
    events = [e for e in trace.events if e.kind is not EventKind.TRAIN_CALLED]
    report = seam_gate(trace.model_copy(update={"events": events}))
    assert report.decision is SeamDecision.DESIGN_REVIEW_REQUIRED
    assert report.failed_rules == [SeamRule.TRAIN_OBSERVED]


def test_datasets_not_built_from_the_prep_output_are_no_seam(reference_traces):
    _, trace = reference_traces[0]
    events = [
        e.model_copy(update={"data": "array:" + "0" * 32})
        if e.kind is EventKind.DATASET_BUILT and e.reference
        else e
        for e in trace.events
    ]
    report = seam_gate(trace.model_copy(update={"events": events}))
    assert report.failed_rules == [SeamRule.DATASETS_FROM_PREP]


def test_unobserved_trials_fail_the_structural_check(reference_traces):
    _, trace = reference_traces[0]
    events = [e for e in trace.events if e.kind is not EventKind.TRIAL_STARTED]
    report = trial_invariance_gate([("silent", trace.model_copy(update={"events": events}))])
    assert report.decision is InvarianceDecision.STOP
    assert StructuralRule.EVERY_TRIAL_OBSERVED in report.folds[0].failed_rules
    assert not report.folds[0].empirical_ok


def test_no_folds_is_not_a_pass():
    report = trial_invariance_gate([])
    assert report.decision is InvarianceDecision.STOP and report.figures.folds == 0


def test_a_full_replay_capture_stores_the_trace_an_instrumented_replay_records(tiny_source):
    recipe = ReferenceRecipe()
    prepared = prepare_cell(FOLD_1, tiny_source, TINY_FOLDS, recipe, CONFIG)
    stored = replay_cell(prepared, recipe).trace
    assert stored is not None and stored == instrumented_replay(prepared, recipe)
    report = trial_invariance_gate([(str(FOLD_1), stored)])
    assert report.decision is InvarianceDecision.PASS
    assert report.figures.trials_per_fold == {str(FOLD_1): N_TRIALS}
