"""importance_stability on real replays, through the harness's diagnostic runner."""

import dataclasses

import numpy as np
import pytest
from diag_assets.core.capture.modes import CaptureConfig, CaptureMode
from diag_assets.core.diagnostics.certification import Certification
from diag_assets.core.diagnostics.consumers import CaptureRequirement, ConsumerContractViolation
from diag_assets.core.diagnostics.plugin import (
    NotApplicable,
    check_declarations,
    resolve_diagnostic,
    run_diagnostic,
)
from diag_assets.core.errors import DiagInputError
from diag_assets.core.recipe.protocol import TrialSettings
from diag_assets.core.recipe.reference import ReferenceRecipe
from diag_assets.core.recipe.tasks import TaskKind
from scipy.stats import rankdata

from forward_returns.stability import (
    ImportanceStability,
    ImportanceStabilityVerdict,
    StabilityFigures,
    StabilitySettings,
    StabilityStatus,
    refit,
)

DIAGNOSTIC = ImportanceStability()


def run(captured, **settings) -> ImportanceStabilityVerdict:
    """The verdict of the harness's runner; fails unless it is the declared result model."""
    result = run_diagnostic(DIAGNOSTIC, captured, DIAGNOSTIC.settings(settings))
    assert isinstance(result, ImportanceStabilityVerdict)
    return result


def figures_of(verdict: ImportanceStabilityVerdict) -> StabilityFigures:
    assert verdict.figures is not None
    return verdict.figures


def correlation(verdict: ImportanceStabilityVerdict) -> float:
    value = figures_of(verdict).mean_rank_correlation
    assert value is not None
    return value


def test_verdict_on_a_real_replay(full_capture):
    verdict = run(full_capture, top_trials=4)
    assert verdict.certification is Certification.CERTIFIED
    figures = figures_of(verdict)
    assert figures.task is TaskKind.REGRESSION
    assert figures.objective == "regression"
    log = full_capture.trial_log
    best_four = sorted(log.trials, key=lambda t: t.best_score)[:4]
    assert figures.trials_used == [t.trial for t in best_four]
    assert figures.rounds == [t.best_iter for t in best_four]
    assert figures.pairs == 6 and not figures.unranked_trials
    assert figures.min_pair_correlation is not None
    assert -1.0 <= figures.min_pair_correlation <= correlation(verdict) <= 1.0
    assert set(figures.mean_rank) == set(full_capture.data.X.columns)
    assert list(figures.mean_rank.values()) == sorted(figures.mean_rank.values())
    n = len(figures.mean_rank)
    assert np.isclose(np.mean(list(figures.mean_rank.values())), (n + 1) / 2)
    assert figures.top_feature == next(iter(figures.mean_rank))
    expected = StabilityStatus.STABLE if correlation(verdict) >= 0.5 else StabilityStatus.UNSTABLE
    assert verdict.status is expected and verdict.stable == (expected is StabilityStatus.STABLE)
    assert run(full_capture, top_trials=4).content_hash() == verdict.content_hash()


def test_the_threshold_decides_the_status(full_capture):
    observed = correlation(run(full_capture, top_trials=3))
    assert run(full_capture, top_trials=3, min_rank_correlation=observed).stable
    above = min(1.0, observed + 1e-3)
    assert run(full_capture, top_trials=3, min_rank_correlation=above).status is (
        StabilityStatus.UNSTABLE
    )


def test_the_mean_correlation_is_over_the_refits_gains(full_capture):
    verdict = run(full_capture, top_trials=3)
    seed = full_capture.manifest.config.trials.seed
    by_trial = {t.trial: t for t in full_capture.trial_log.trials}
    gains = [
        refit(
            full_capture.data,
            by_trial[i],
            TaskKind.REGRESSION,
            seed=seed,
            max_rounds=300,
            num_threads=2,
        ).feature_importance(importance_type="gain")
        for i in figures_of(verdict).trials_used
    ]
    # Spearman's rho is Pearson's r of the ranks.
    ranks = [rankdata(g) for g in gains]
    pairs = [(0, 1), (0, 2), (1, 2)]
    mean = np.mean([np.corrcoef(ranks[a], ranks[b])[0, 1] for a, b in pairs])
    assert correlation(verdict) == pytest.approx(mean, abs=1e-6)


def test_a_refit_is_the_trial_model_at_its_best_round(full_capture):
    """The re-fit reproduces each trial's validation l2 at its best round."""
    seed = full_capture.manifest.config.trials.seed
    _, _, x_val, y_val = full_capture.data.split()
    for trial in full_capture.trial_log.trials:
        booster = refit(
            full_capture.data, trial, TaskKind.REGRESSION, seed=seed, max_rounds=300, num_threads=2
        )
        l2 = float(np.mean((booster.predict(x_val) - y_val) ** 2))
        assert l2 == pytest.approx(trial.best_score, rel=1e-9)


def test_too_few_trials(full_capture):
    verdict = run(full_capture, top_trials=len(full_capture.trial_log.trials) + 1)
    assert verdict.status is StabilityStatus.TOO_FEW_TRIALS
    assert verdict.figures is None and verdict.certification is Certification.CERTIFIED
    assert DIAGNOSTIC.figures(verdict) == {"trials_used": 0}
    assert DIAGNOSTIC.finding(verdict) == "TOO_FEW_TRIALS"


def test_runs_on_the_reference_recipes_binary_capture(replay):
    config = CaptureConfig(trials=TrialSettings(n_trials=3, max_rounds=60))
    captured = replay(recipe=ReferenceRecipe(), config=config)
    figures = figures_of(run(captured, top_trials=3))
    assert figures.task is TaskKind.BINARY and figures.objective == "binary"
    assert figures.pairs == 3
    assert set(figures.mean_rank) == set(captured.data.X.columns)


def test_a_multiclass_capture_is_not_applicable(full_capture):
    manifest = full_capture.manifest.model_copy(update={"task": TaskKind.MULTICLASS})
    captured = dataclasses.replace(full_capture, manifest=manifest)
    result = run_diagnostic(DIAGNOSTIC, captured, StabilitySettings())
    assert isinstance(result, NotApplicable) and result.diagnostic == "importance_stability"


def test_a_dataset_only_capture_is_refused(replay):
    reduced = replay(CaptureMode.DATASET_ONLY)
    with pytest.raises(ConsumerContractViolation, match="serves xy_only diagnostics only"):
        run(reduced)


def test_finding_and_figures_for_the_summary(full_capture):
    verdict = run(full_capture, top_trials=3)
    figures = figures_of(verdict)
    assert DIAGNOSTIC.figures(verdict) == {
        "mean_rank_correlation": figures.mean_rank_correlation,
        "min_pair_correlation": figures.min_pair_correlation,
        "trials_used": 3,
        "top_feature": figures.top_feature,
    }
    finding = DIAGNOSTIC.finding(verdict)
    assert finding == f"{verdict.status} (mean Spearman {correlation(verdict):.3f})"


def test_declarations_pass_the_harness_check():
    check_declarations(ImportanceStability)
    assert ImportanceStability.requirement is CaptureRequirement.TRIAL_DYNAMICS
    assert ImportanceStability.reads_anchor is False
    assert ImportanceStability.tasks == {TaskKind.REGRESSION, TaskKind.BINARY}
    resolved = resolve_diagnostic("forward_returns.stability:ImportanceStability")
    assert isinstance(resolved, ImportanceStability)
    assert resolve_diagnostic("importance_stability") is resolved


@pytest.mark.parametrize(
    "settings", [{"top_trials": 1}, {"min_rank_correlation": 1.5}, {"rounds": 10}]
)
def test_bad_settings_are_refused_with_the_fix(settings):
    with pytest.raises(DiagInputError, match="use the fields of StabilitySettings"):
        DIAGNOSTIC.settings(settings)
    assert DIAGNOSTIC.settings({}) == StabilitySettings()
