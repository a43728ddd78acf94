"""s22a1, the anchor: the best trial re-fitted on the captured fold.

The anchor reads the trial log (``trial_dynamics``) and never replays the recipe. It fits the
capture's task, so its curve is that task's validation loss (binary or multiclass log-loss,
l2). Its result is what s40 cross-references and whose model s27 judges the calibration of.

The anchor is a fixed-cost fit: always :data:`ANCHOR_ROUNDS` rounds, never early-stopped, so
its curve is the whole 300-round validation curve, its ``best_iter`` is read off that whole
curve (a loss that dips again late is seen), and its ``elapsed_s`` is the cost of 300
rounds, comparable across cells and runs.
"""

from diag_assets.core.diagnostics.consumers import CaptureRequirement, CaptureView, diagnostic
from diag_assets.core.diagnostics.verdicts import AnchorResult
from diag_assets.core.recipe.training import fit_booster

ANCHOR_ROUNDS = 300


@diagnostic("s22a1", CaptureRequirement.TRIAL_DYNAMICS)
def run_anchor(view: CaptureView, *, num_threads: int = 2) -> AnchorResult:
    """Re-fit the best trial's params on the captured fold for exactly 300 rounds.

    No early stopping: ``curve`` holds all :data:`ANCHOR_ROUNDS` validation losses,
    ``best_iter`` is the 1-based round of their minimum (``argmin(curve) + 1``, as
    :func:`~diag_assets.core.recipe.training.fit_booster` defines it) and ``elapsed_s`` is
    the time of the 300-round fit. The seed is the trial's (trial seed x 1000 + trial), so
    the same capture always gives the same anchor.

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
        early_stopping_rounds=None,
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
