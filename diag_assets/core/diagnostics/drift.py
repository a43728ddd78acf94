"""s23, adversarial drift: are the training and validation rows of X distinguishable?

An adversarial classifier is cross-validated on "is this row a validation row"; an
out-of-fold AUC near 0.5 means no drift. It reads X alone (``xy_only``), so it runs with the
s22a1 anchor skipped and on a reduced capture. Every fit has a fixed seed and thread count,
so the verdict's content hash is the same on every run with the same inputs and settings.
"""

import time
from enum import StrEnum
from typing import Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from diag_assets.core.diagnostics.certification import AnchorUse, certify
from diag_assets.core.diagnostics.consumers import CaptureRequirement, CaptureView, diagnostic
from diag_assets.core.diagnostics.probe import roc_auc
from diag_assets.core.diagnostics.verdicts import Verdict, rounded
from diag_assets.core.recipe.training import fit_booster


class DriftSettings(BaseModel):
    """The adversarial classifier's budget and the AUC thresholds of s23."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_splits: int = Field(
        default=3,
        ge=2,
        le=20,
        description="Cross-validation folds (scikit-learn's StratifiedKFold, shuffled).",
    )
    num_rounds: int = Field(default=50, ge=1, le=1_000, description="Rounds per fit.")
    num_leaves: int = Field(default=15, ge=2, le=255, description="Leaves per tree.")
    learning_rate: float = Field(default=0.1, gt=0, le=1, description="Learning rate.")
    min_data_in_leaf: int = Field(default=20, ge=1, description="Minimum rows per leaf.")
    mild_auc: float = Field(
        default=0.6, gt=0.5, lt=1, description="Out-of-fold AUC at or above this is MILD drift."
    )
    strong_auc: float = Field(
        default=0.75, gt=0.5, le=1, description="Out-of-fold AUC at or above this is STRONG."
    )
    top_k: int = Field(default=5, ge=1, le=100, description="Features listed by share of gain.")
    seed: int = Field(default=0, ge=0, description="Seed of the fold assignment and the fits.")
    num_threads: int = Field(default=2, ge=1, le=64, description="LightGBM threads.")

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> Self:
        if self.mild_auc >= self.strong_auc:
            raise ValueError(
                f"mild_auc ({self.mild_auc}) must be below strong_auc ({self.strong_auc})."
            )
        return self


class DriftLevel(StrEnum):
    """Outcome of s23."""

    NONE = "NONE"
    MILD = "MILD"
    STRONG = "STRONG"


class FeatureGain(BaseModel):
    """A feature's total split gain in the adversarial model, averaged over the folds."""

    model_config = ConfigDict(frozen=True)

    feature: str
    gain: float
    share: float


class DriftFigures(BaseModel):
    """The numbers behind an s23 verdict."""

    model_config = ConfigDict(frozen=True)

    auc: float
    fold_aucs: list[float]
    n_train: int
    n_validation: int
    n_splits: int
    top_features: list[FeatureGain]


class S23Verdict(Verdict):
    """s23: can a classifier tell the fold's validation rows from its training rows?"""

    drift: DriftLevel
    figures: DriftFigures
    settings: DriftSettings
    x_hash: str

    @property
    def anchor_use(self) -> AnchorUse:
        """s23 reads X alone, never the anchor."""
        return AnchorUse.NOT_NEEDED


def stratified_folds(labels: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    """Assign each row to one of ``n_splits`` folds, stratified and shuffled with ``seed``.

    Rows are in time order, so contiguous folds would hold mostly one class (the validation
    block sits at the end); scikit-learn's shuffled ``StratifiedKFold`` puts each class in
    every fold in its share.

    Raises:
        ValueError: a class has fewer rows than ``n_splits``.
    """
    labels = np.asarray(labels)
    for cls in (0, 1):
        count = int(np.count_nonzero(labels == cls))
        if count < n_splits:
            raise ValueError(f"class {cls} has {count} rows, fewer than the {n_splits} folds.")
    assignment = np.empty(len(labels), dtype=np.int64)
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(splitter.split(np.zeros((len(labels), 1)), labels)):
        assignment[held] = k
    return assignment


@diagnostic("s23", CaptureRequirement.XY_ONLY)
def run_s23(view: CaptureView, settings: DriftSettings | None = None) -> S23Verdict:
    """Adversarial validation: out-of-fold AUC of "validation row" predicted from X alone.

    Args:
        view: The guarded capture (callers pass a ``CapturedFold``); only X is read.
        settings: Budget and thresholds; the defaults when ``None``.

    Returns:
        The verdict: NONE below ``mild_auc``, MILD below ``strong_auc``, else STRONG, with the
        features that separate the two blocks most.

    Raises:
        ValueError: the training or validation block has fewer rows than ``n_splits``.
    """
    started = time.perf_counter()
    settings = settings or DriftSettings()
    data = view.data
    manifest = view.manifest
    x = data.X.to_numpy(dtype=np.float32, copy=False)
    names = [str(c) for c in data.X.columns]
    is_validation = (np.arange(len(x)) >= data.n_train).astype(np.int8)
    folds = stratified_folds(is_validation, settings.n_splits, settings.seed)
    params = {
        "num_leaves": settings.num_leaves,
        "learning_rate": settings.learning_rate,
        "min_data_in_leaf": settings.min_data_in_leaf,
    }
    out_of_fold = np.empty(len(x), dtype=np.float64)
    gains = np.zeros(len(names), dtype=np.float64)
    fold_aucs = []
    for k in range(settings.n_splits):
        held = folds == k
        fit = fit_booster(
            params,
            x[~held],
            is_validation[~held],
            x[held],
            is_validation[held],
            num_rounds=settings.num_rounds,
            early_stopping_rounds=None,
            num_threads=settings.num_threads,
            seed=settings.seed + k,
        )
        predicted = np.asarray(fit.booster.predict(x[held]), dtype=np.float64)
        out_of_fold[held] = predicted
        fold_aucs.append(roc_auc(is_validation[held], predicted))
        gains += np.asarray(fit.booster.feature_importance(importance_type="gain"))
    gains /= settings.n_splits
    auc = roc_auc(is_validation, out_of_fold)
    total = float(gains.sum())
    # Ties broken by column position so the list is deterministic.
    order = sorted(range(len(names)), key=lambda i: (-gains[i], i))
    top = [
        FeatureGain(feature=names[i], gain=rounded(gains[i]), share=rounded(gains[i] / total))
        for i in order[: settings.top_k]
        if gains[i] > 0
    ]
    if auc >= settings.strong_auc:
        drift = DriftLevel.STRONG
    elif auc >= settings.mild_auc:
        drift = DriftLevel.MILD
    else:
        drift = DriftLevel.NONE
    leader = f"; top feature {top[0].feature} ({top[0].share:.0%} of gain)" if top else ""
    decision = certify(
        capture_mode=manifest.mode,
        anchor=AnchorUse.NOT_NEEDED,
        finding=f"out-of-fold adversarial AUC {auc:.3f}: {drift.value}{leader}.",
    )
    return S23Verdict(
        cell_ref=manifest.cell_ref,
        drift=drift,
        figures=DriftFigures(
            auc=rounded(auc),
            fold_aucs=[rounded(a) for a in fold_aucs],
            n_train=data.n_train,
            n_validation=data.n_validation,
            n_splits=settings.n_splits,
            top_features=top,
        ),
        settings=settings,
        certification=decision.certification,
        certification_reason=decision.reason,
        capture_key=manifest.capture_key,
        capture_content_hash=manifest.content_hash,
        x_hash=manifest.x_hash,
        elapsed_s=round(time.perf_counter() - started, 6),
    )
