import numpy as np
import pytest

from diag_assets.core.capture.replay import prepare_cell, replay_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.anchor import ANCHOR_ROUNDS, run_anchor
from diag_assets.core.diagnostics.certification import Certification
from diag_assets.core.diagnostics.probe import judge_s40, roc_auc, run_probe
from diag_assets.core.diagnostics.verdicts import CrossrefStatus, Signal
from diag_assets.core.recipe.reference import ReferenceRecipe
from tests.conftest import TINY_CAPTURE, TINY_FOLDS, TINY_PROBE

RECIPE = ReferenceRecipe()


@pytest.fixture(scope="module")
def captured(tiny_source):
    cell = CellRef.parse("defi_top5/UNIUSDC/fold-3")
    return replay_cell(prepare_cell(cell, tiny_source, TINY_FOLDS, RECIPE, TINY_CAPTURE), RECIPE)


def test_roc_auc_matches_the_pairwise_definition():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300), 2)  # rounding makes ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = (
        (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    ) / (len(pos) * len(neg))
    assert roc_auc(labels, scores) == pytest.approx(pairwise)
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0


def test_anchor_refits_the_best_trial_reproducibly(captured):
    first, second = run_anchor(captured), run_anchor(captured)
    assert first.trial == captured.trial_log.best_trial.trial
    assert first.n_rounds == 300 and 1 <= first.best_iter <= len(first.curve) == 300
    assert first.content_hash() == second.content_hash()
    assert first.rows == len(captured.data.X)


def test_anchor_fits_all_300_rounds_without_early_stopping(captured):
    anchor = run_anchor(captured)
    curve = np.asarray(anchor.curve)
    # The tiny fold's loss is lowest in the first rounds and rises after: an early-stopped
    # fit would end about 30 rounds past the minimum, well before round 300.
    assert int(np.argmin(curve)) + 1 < 100
    assert len(curve) == ANCHOR_ROUNDS == anchor.n_rounds == 300
    assert anchor.best_iter == int(np.argmin(curve)) + 1
    assert anchor.best_score == curve.min() == curve[anchor.best_iter - 1]
    assert anchor.elapsed_s > 0


def test_probe_finds_planted_signal_and_not_noise(captured):
    data = captured.data
    planted = data.X.copy()
    # a feature that is the label plus noise: any probe must find it
    planted["leak"] = (
        data.y["label"].to_numpy() + np.random.default_rng(0).normal(0, 0.3, len(planted))
    ).astype("float32")
    leaky = captured.__class__(
        data=data.__class__(X=planted, y=data.y, n_train=data.n_train),
        trial_log=captured.trial_log,
        manifest=captured.manifest,
    )
    signal, figures = run_probe(leaky, TINY_PROBE)
    assert signal is Signal.SIGNAL and figures.observed > 0.9
    noise = data.X.copy()
    noise[:] = np.random.default_rng(1).normal(size=noise.shape).astype("float32")
    pure = captured.__class__(
        data=data.__class__(X=noise, y=data.y, n_train=data.n_train),
        trial_log=captured.trial_log,
        manifest=captured.manifest,
    )
    signal, figures = run_probe(pure, TINY_PROBE)
    assert signal is Signal.NO_SIGNAL and 0.4 < figures.observed < 0.6


def test_verdict_cross_references_the_anchor(captured):
    anchor = run_anchor(captured)
    verdict = judge_s40(captured, anchor, TINY_PROBE)
    learned = anchor.best_iter > 1
    expected = (
        CrossrefStatus.CONSISTENT
        if learned == (verdict.signal is Signal.SIGNAL)
        else CrossrefStatus.INCONSISTENT
    )
    assert verdict.s22a1_crossref_status is expected
    assert verdict.certification is Certification.CERTIFIED and verdict.s22a1_anchor_available
    assert verdict.anchor_hash == anchor.content_hash()
    assert verdict.content_hash() == judge_s40(captured, anchor, TINY_PROBE).content_hash()


def test_verdict_without_anchor_is_downgraded(captured):
    verdict = judge_s40(captured, None, TINY_PROBE)
    assert verdict.s22a1_crossref_status is CrossrefStatus.SKIPPED
    assert verdict.certification is Certification.DOWNGRADED
    assert verdict.s22a1_anchor_available is False


def test_anchor_of_another_capture_is_refused(captured):
    anchor = run_anchor(captured).model_copy(update={"capture_content_hash": "0" * 32})
    with pytest.raises(ValueError, match="Re-materialize s22a1_anchor"):
        judge_s40(captured, anchor, TINY_PROBE)


def test_probe_budget_is_fixed_by_its_most_recent_training_rows(captured):
    capped_settings = TINY_PROBE.model_copy(update={"max_train_rows": 300})
    _, capped = run_probe(captured, capped_settings)
    assert capped.train_rows == 300
    _, full = run_probe(captured, TINY_PROBE)
    assert full.train_rows == captured.data.n_train  # below the cap: every training row
    # The cap keeps the 300 rows nearest the validation block: a fold holding only those
    # rows gives exactly the capped figures.
    data = captured.data
    start = data.n_train - 300
    recent_only = captured.__class__(
        data=data.__class__(
            X=data.X.iloc[start:].reset_index(drop=True),
            y=data.y.iloc[start:].reset_index(drop=True),
            n_train=300,
        ),
        trial_log=captured.trial_log,
        manifest=captured.manifest,
    )
    assert run_probe(recent_only, TINY_PROBE)[1] == capped
