"""s22a1, the anchor: the best trial re-fitted on the captured fold.

The anchor reads the trial log (``trial_dynamics``) and never replays the recipe. It fits the
capture's task, so its curve is that task's validation loss (binary or multiclass log-loss,
l2). Its result is what s40 cross-references and whose model s27 judges the calibration of.
"""

from diag_assets.core.diagnostics.consumers import CaptureRequirement, CaptureView, diagnostic
from diag_assets.core.diagnostics.verdicts import AnchorResult
from diag_assets.core.recipe.training import fit_booster

ANCHOR_ROUNDS = 300
ANCHOR_EARLY_STOPPING = 30


@diagnostic("s22a1", CaptureRequirement.TRIAL_DYNAMICS)
def run_anchor(view: CaptureView, *, num_threads: int = 2) -> AnchorResult:
    """Re-fit the best trial's params on the captured fold, 300 rounds with early stopping.

    Raises:
        DiagInputError: a multiclass class has no training row.
    """
    best = view.trial_log.best_trial
    x_train, y_train, x_val, y_val = view.data.split()
    fit = fit_booster(
        dict(best.params),
        x_train,
        y_train,
        x_val,
        y_val,
        num_rounds=ANCHOR_ROUNDS,
        early_stopping_rounds=ANCHOR_EARLY_STOPPING,
        num_threads=num_threads,
        seed=view.manifest.config.trials.seed * 1_000 + best.trial,
        task=view.manifest.task,
    )
    return AnchorResult(
        cell_ref=view.manifest.cell_ref,
        capture_key=view.manifest.capture_key,
        capture_content_hash=view.manifest.content_hash,
        trial=best.trial,
        params=best.params,
        n_rounds=ANCHOR_ROUNDS,
        best_iter=fit.best_iter,
        best_score=fit.best_score,
        curve=fit.curve,
        rows=len(view.data.X),
        n_train=view.data.n_train,
        elapsed_s=round(fit.elapsed_s, 6),
    )
