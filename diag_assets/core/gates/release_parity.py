"""Release parity: may the dataset_only capture mode become the default?

On K folds of the shared fixture set, each fold is captured twice through the capture cache,
in ``full_replay`` and in ``dataset_only``, and compared:

- hash parity: the canonical hashes of X and y, and the train/validation split, are equal;
- verdict parity: the s40 probe, run on each capture with the same settings, reaches the same
  signal with the same p-value and AUCs.

The gate passes when every fold has both parities, the folds are at least the policy's
minimum, and the seam gate found a prep/train seam for the recipe version under test. The record it
leaves (:class:`~diag_assets.core.gates.records.ReleaseGateRecord`) is what the capture mode
policy reads before it honours a dataset_only default.
"""

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.replay import CapturedFold
from diag_assets.core.diagnostics.verdicts import S40Verdict
from diag_assets.core.gates.records import ReleaseGateRecord, SeamRecord
from diag_assets.core.gates.report import GateReport, Table

RELEASE_PARITY_LABEL = "release parity gate"


class ReleaseParityDecision(StrEnum):
    """The gate's outcome."""

    PASS = "PASS"
    FAIL = "FAIL"


class FoldParity(BaseModel):
    """One fold, captured both ways."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    full_replay_key: str
    dataset_only_key: str
    x_hash: tuple[str, str]
    y_hash: tuple[str, str]
    n_train: tuple[int, int]
    signal: tuple[str, str]
    p_value: tuple[float, float]
    observed_auc: tuple[float, float]
    full_replay_capture_s: float
    dataset_only_capture_s: float

    @property
    def hash_parity(self) -> bool:
        """X, y and the split are the same in both captures."""
        return (
            self.x_hash[0] == self.x_hash[1]
            and self.y_hash[0] == self.y_hash[1]
            and self.n_train[0] == self.n_train[1]
        )

    @property
    def verdict_parity(self) -> bool:
        """The s40 probe reached the same signal with the same figures."""
        return (
            self.signal[0] == self.signal[1]
            and self.p_value[0] == self.p_value[1]
            and self.observed_auc[0] == self.observed_auc[1]
        )


def compare_fold(
    full: CapturedFold,
    reduced: CapturedFold,
    full_verdict: S40Verdict,
    reduced_verdict: S40Verdict,
) -> FoldParity:
    """Compare a fold's full_replay and dataset_only captures and their s40 verdicts.

    Raises:
        ValueError: the captures are not of one cell, or not of the expected modes.
    """
    if full.mode is not CaptureMode.FULL_REPLAY or reduced.mode is not CaptureMode.DATASET_ONLY:
        raise ValueError(
            f"compare_fold needs a full_replay and a dataset_only capture, got {full.mode} "
            f"and {reduced.mode}."
        )
    if full.manifest.cell_ref != reduced.manifest.cell_ref:
        raise ValueError(
            f"compare_fold got captures of {full.manifest.cell_ref} and "
            f"{reduced.manifest.cell_ref}."
        )

    def probe_figures(verdict: S40Verdict) -> tuple[str, float, float]:
        if verdict.probe is None or verdict.signal is None:
            return "NOT_RUN", float("nan"), float("nan")
        return verdict.signal.value, verdict.probe.p_value, verdict.probe.observed

    full_signal, full_p, full_auc = probe_figures(full_verdict)
    reduced_signal, reduced_p, reduced_auc = probe_figures(reduced_verdict)
    return FoldParity(
        cell_ref=full.manifest.cell_ref,
        full_replay_key=full.manifest.capture_key,
        dataset_only_key=reduced.manifest.capture_key,
        x_hash=(full.manifest.x_hash, reduced.manifest.x_hash),
        y_hash=(full.manifest.y_hash, reduced.manifest.y_hash),
        n_train=(full.manifest.n_train, reduced.manifest.n_train),
        signal=(full_signal, reduced_signal),
        p_value=(full_p, reduced_p),
        observed_auc=(full_auc, reduced_auc),
        full_replay_capture_s=full.manifest.elapsed_s,
        dataset_only_capture_s=reduced.manifest.elapsed_s,
    )


class ReleaseParityFigures(BaseModel):
    """The numbers behind the decision."""

    model_config = ConfigDict(frozen=True)

    folds: int
    hash_parity_folds: int
    verdict_parity_folds: int
    full_replay_capture_s: float
    dataset_only_capture_s: float


class ReleaseParityReport(GateReport[ReleaseParityDecision, ReleaseParityFigures]):
    """Release parity over K folds."""

    gate: str = RELEASE_PARITY_LABEL
    recipe_version: str
    hash_parity: bool
    verdict_parity: bool
    folds: list[FoldParity]

    def record(self, evaluated_at: datetime) -> ReleaseGateRecord:
        """What the capture mode policy reads."""
        return ReleaseGateRecord(
            recipe_version=self.recipe_version,
            passed=self.decision is ReleaseParityDecision.PASS,
            folds=len(self.folds),
            hash_parity=self.hash_parity,
            verdict_parity=self.verdict_parity,
            evaluated_at=evaluated_at,
            reasons=self.reasons,
        )

    def heading(self) -> str:
        """The report's title: the gate and the recipe version under test."""
        return f"{self.gate}, {self.recipe_version}"

    def tables(self) -> list[Table]:
        """One row per fold: both captures' hashes, verdicts and capture times."""
        header = (
            "fold",
            "X/y hash",
            "s40 (full / dataset_only)",
            "p-value",
            "capture s (full / ds)",
        )
        rows = [
            (
                fold.cell_ref,
                "equal" if fold.hash_parity else "DIFFERENT",
                f"{fold.signal[0]} / {fold.signal[1]}",
                f"{fold.p_value[0]:.4f} / {fold.p_value[1]:.4f}",
                f"{fold.full_replay_capture_s:.2f} / {fold.dataset_only_capture_s:.2f}",
            )
            for fold in self.folds
        ]
        return [Table(header, rows)]


def release_parity_gate(
    folds: Sequence[FoldParity],
    *,
    recipe_version: str,
    seam: SeamRecord | None,
    min_folds: int,
) -> ReleaseParityReport:
    """Decide the gate (see the module docstring); every failing rule is a reason."""
    hash_parity = bool(folds) and all(fold.hash_parity for fold in folds)
    verdict_parity = bool(folds) and all(fold.verdict_parity for fold in folds)
    problems: list[str] = []
    if len(folds) < min_folds:
        problems.append(f"{len(folds)} fold(s) compared; the policy requires {min_folds}.")
    if seam is None or seam.recipe_version != recipe_version:
        problems.append(f"The prep/train seam gate has not been run on recipe {recipe_version}.")
    elif not seam.seam:
        problems.append(f"The prep/train seam gate found no seam in recipe {recipe_version}.")
    for fold in folds:
        if not fold.hash_parity:
            problems.append(
                f"{fold.cell_ref}: dataset_only X/y differ from full_replay's (X "
                f"{fold.x_hash[0][:16]} vs {fold.x_hash[1][:16]}, y {fold.y_hash[0][:16]} vs "
                f"{fold.y_hash[1][:16]}, n_train {fold.n_train[0]} vs {fold.n_train[1]})."
            )
        if not fold.verdict_parity:
            problems.append(
                f"{fold.cell_ref}: s40 disagrees: {fold.signal[0]} (p={fold.p_value[0]:.4f}) on "
                f"full_replay, {fold.signal[1]} (p={fold.p_value[1]:.4f}) on dataset_only."
            )
    if problems:
        reasons = [*problems, "dataset_only stays off as a default for this recipe version."]
        decision = ReleaseParityDecision.FAIL
    else:
        reasons = [
            f"All {len(folds)} folds: dataset_only X/y equal full_replay's by canonical hash, "
            "and the s40 verdicts agree (signal, p-value, AUC).",
            f"The prep/train seam gate found a seam in recipe {recipe_version}.",
            "The capture mode policy may make dataset_only the default for xy_only consumers "
            "of this recipe version.",
        ]
        decision = ReleaseParityDecision.PASS
    figures = ReleaseParityFigures(
        folds=len(folds),
        hash_parity_folds=sum(fold.hash_parity for fold in folds),
        verdict_parity_folds=sum(fold.verdict_parity for fold in folds),
        full_replay_capture_s=round(sum(fold.full_replay_capture_s for fold in folds), 3),
        dataset_only_capture_s=round(sum(fold.dataset_only_capture_s for fold in folds), 3),
    )
    return ReleaseParityReport(
        recipe_version=recipe_version,
        decision=decision,
        hash_parity=hash_parity,
        verdict_parity=verdict_parity,
        reasons=reasons,
        figures=figures,
        folds=list(folds),
    )
