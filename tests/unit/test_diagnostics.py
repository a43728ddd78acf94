import numpy as np
import pytest
from pydantic import ValidationError

from diag_assets.audit.diagnostics import AuditRunConfig
from diag_assets.core.capture.replay import prepare_cell, replay_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.anchor import ANCHOR_ROUNDS, run_anchor
from diag_assets.core.diagnostics.certification import Certification
from diag_assets.core.diagnostics.probe import ProbeSettings, judge_s40, roc_auc, run_probe
from diag_assets.core.diagnostics.verdicts import CrossrefStatus, Signal
from diag_assets.core.recipe.reference import ReferenceRecipe
from diag_assets.gates.fixture_set import ReleaseGateConfig
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


# ------------------------------------------------------- the probe's sequential p-value


def _relabelled(captured, x=None, y=None):
    data = captured.data
    x = data.X if x is None else x
    y = data.y if y is None else y
    return captured.__class__(
        data=data.__class__(X=x, y=y, n_train=data.n_train),
        trial_log=captured.trial_log,
        manifest=captured.manifest,
    )


def test_the_default_probe_resolves_well_below_its_alpha():
    settings = ProbeSettings()
    assert settings.max_permutations == 99
    assert settings.p_value_resolution == pytest.approx(0.01)
    assert settings.p_value_resolution <= settings.alpha / 5
    # The Dagster run config and the release gate build the same default probe.
    assert AuditRunConfig().probe() == settings
    assert ReleaseGateConfig().max_permutations == settings.max_permutations


def test_settings_whose_resolution_misses_alpha_are_refused():
    with pytest.raises(ValidationError, match="Raise max_permutations to at least 19"):
        ProbeSettings(max_permutations=10, alpha=0.05)
    with pytest.raises(ValidationError, match="could never say SIGNAL"):
        AuditRunConfig(max_permutations=10).probe()
    assert ProbeSettings(max_permutations=19, alpha=0.05).p_value_resolution == 0.05


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1, 0.2])
@pytest.mark.parametrize("max_permutations", [19, 49, 99, 199, 999])
def test_stopping_never_changes_the_verdict_the_full_run_gives(alpha, max_permutations):
    if 1 / (max_permutations + 1) > alpha:
        return  # refused settings (above)
    settings = ProbeSettings(alpha=alpha, max_permutations=max_permutations)
    h = settings.stop_at_exceedances
    # A stopped probe's p-value h / l (l <= m) is at least twice alpha ...
    assert h / max_permutations >= 2 * alpha - 1e-12
    # ... and h exceedances already put the full run's p-value above alpha.
    assert (1 + h) / (max_permutations + 1) > alpha


def test_a_fold_without_signal_stops_early(captured):
    y = captured.data.y.copy()
    y["label"] = np.random.default_rng(5).permutation(y["label"].to_numpy())
    settings = ProbeSettings(num_rounds=20)
    signal, figures = run_probe(_relabelled(captured, y=y), settings)
    assert signal is Signal.NO_SIGNAL and figures.stopped_early
    assert figures.exceedances == settings.stop_at_exceedances == 10
    # 10 exceedances are reached after 10 / P(a permutation beats the real labels) draws.
    assert 10 <= figures.permutations_run < figures.max_permutations == 99
    assert figures.p_value == pytest.approx(10 / figures.permutations_run, abs=1e-6)
    assert figures.p_value >= 2 * settings.alpha
    assert figures.describe().startswith(f"stopped after {figures.permutations_run} of 99")


def test_a_fold_with_strong_signal_runs_every_permutation(captured):
    data = captured.data
    x = data.X.copy()
    x["leak"] = (
        data.y["label"].to_numpy() + np.random.default_rng(0).normal(0, 0.3, len(x))
    ).astype("float32")
    verdict = judge_s40(_relabelled(captured, x=x), None, ProbeSettings(num_rounds=20))
    figures = verdict.probe
    assert verdict.signal is Signal.SIGNAL and figures is not None
    assert (figures.permutations_run, figures.exceedances, figures.stopped_early) == (99, 0, False)
    assert figures.p_value == figures.p_value_resolution == 0.01
    assert "the real labels beat all 99 permutations (p = 0.01, resolution 0.01)" in (
        verdict.certification_reason
    )


def test_the_probe_gives_the_same_figures_however_many_fits_run_at_once(captured):
    y = captured.data.y.copy()
    y["label"] = np.random.default_rng(5).permutation(y["label"].to_numpy())
    shuffled = _relabelled(captured, y=y)
    for fold in (captured, shuffled):  # one that runs every permutation, one that stops
        figures = [
            run_probe(fold, ProbeSettings(num_rounds=20, num_threads=workers))[1]
            for workers in (1, 2, 3)
        ]
        assert figures[0] == figures[1] == figures[2]
