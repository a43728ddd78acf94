"""The s22a1 anchor's result and the s40 verdict, as pydantic models every consumer reads.

What a verdict may claim (its ``certification``) is decided in
:mod:`diag_assets.core.diagnostics.certification`.
"""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from diag_assets.core.diagnostics.certification import AnchorUse, Certification
from diag_assets.core.diagnostics.findings import Finding
from diag_assets.core.hashing.digests import hash_json

FIGURE_DIGITS = 6


def rounded(value: float) -> float:
    """A figure as verdicts store it: 6 digits, so float noise never reaches a content hash."""
    return round(float(value), FIGURE_DIGITS)


class Signal(StrEnum):
    """Outcome of the s40 permutation probe."""

    SIGNAL = "SIGNAL"
    NO_SIGNAL = "NO_SIGNAL"


class CrossrefStatus(StrEnum):
    """Whether the probe and the anchor agree: (anchor best_iter > 1) == SIGNAL."""

    CONSISTENT = "CONSISTENT"
    INCONSISTENT = "INCONSISTENT"
    SKIPPED = "SKIPPED"


class AnchorResult(BaseModel):
    """s22a1: the best trial re-fitted on the captured fold."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    capture_key: str
    capture_content_hash: str
    trial: int
    params: dict[str, float | int]
    n_rounds: int
    best_iter: int
    best_score: float
    curve: list[float]
    rows: int
    n_train: int
    elapsed_s: float

    def content_hash(self) -> str:
        """Hash of the reproducible fields (the wall-clock ``elapsed_s`` is left out)."""
        return hash_json(self.model_dump(exclude={"elapsed_s"}))


class ProbeFigures(BaseModel):
    """The numbers behind an s40 verdict.

    ``statistic`` names the task's score of the validation predictions, higher is better:
    ``validation_auc`` (binary), ``auc_ovr_macro`` (multiclass) or ``spearman_ic``
    (regression); ``observed`` and the permutation figures are values of it (over the
    ``permutations_run`` permutations). ``exceedances`` counts the permutations that scored
    at least ``observed``. The probe runs at most ``max_permutations`` and ``stopped_early``
    when the exceedances showed there is no signal; ``p_value_resolution`` is the smallest
    p-value it can give, ``1 / (max_permutations + 1)`` (see
    :mod:`diag_assets.core.diagnostics.probe` for the rule). ``permutation_statistics`` are
    the permutations' statistics themselves, in the order they ran (at most
    ``max_permutations``), the null the p-value was read off; a verdict stored before they
    were kept has ``None``.
    """

    model_config = ConfigDict(frozen=True)

    statistic: str
    observed: float
    permutation_mean: float
    permutation_max: float
    permutations_run: int
    max_permutations: int
    exceedances: int
    stopped_early: bool
    p_value: float
    p_value_resolution: float
    alpha: float
    num_rounds: int
    train_rows: int
    permutation_statistics: list[float] | None = None

    def describe(self) -> str:
        """What the p-value rests on, in words a reader of the verdict can check.

        E.g. "the real labels beat all 99 permutations (p = 0.01, resolution 0.01)" or
        "stopped after 20 of 99 permutations: 10 scored at least the real labels (p = 0.5)".
        """
        p = f"p = {self.p_value:.4g}"
        resolution = f"resolution {self.p_value_resolution:.4g}"
        beaten_by = f"{self.exceedances} scored at least the real labels"
        if self.stopped_early:
            return (
                f"stopped after {self.permutations_run} of {self.max_permutations} "
                f"permutations: {beaten_by} ({p})"
            )
        if self.exceedances == 0:
            return (
                f"the real labels beat all {self.permutations_run} permutations ({p}, {resolution})"
            )
        return f"ran all {self.permutations_run} permutations: {beaten_by} ({p}, {resolution})"


class Verdict(BaseModel):
    """What every verdict carries: its cell, what it may claim and why, the capture it read.

    ``certification`` and its reason come from
    :func:`~diag_assets.core.diagnostics.certification.certify`. :meth:`content_hash` leaves
    out the wall-clock ``elapsed_s``, so a verdict hashes the same on every run with the same
    inputs and settings.
    """

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    certification: Certification
    certification_reason: str
    capture_key: str
    capture_content_hash: str
    elapsed_s: float
    findings: list[Finding] = []

    def content_hash(self) -> str:
        """Hash of the reproducible fields (the wall-clock ``elapsed_s`` is left out)."""
        return hash_json(self.model_dump(mode="json", exclude={"elapsed_s"}))

    @property
    def anchor_use(self) -> AnchorUse:
        """What the s22a1 anchor was to the verdict; a verdict that reads it says otherwise."""
        return AnchorUse.NOT_NEEDED


class S40Verdict(Verdict):
    """s40: does the fold's X carry signal about y, cross-referenced with the anchor.

    ``signal`` and ``probe`` are ``None`` only for an INCONCLUSIVE_TOOLING verdict: the probe
    did not run because its input was missing or failed verification.
    """

    signal: Signal | None
    probe: ProbeFigures | None
    s22a1_crossref_status: CrossrefStatus
    s22a1_anchor_available: bool
    anchor_best_iter: int | None
    x_hash: str
    y_hash: str
    anchor_hash: str | None
    capture_mode: str = "full_replay"

    @property
    def anchor_use(self) -> AnchorUse:
        """Whether the probe was cross-referenced with the anchor or went without it."""
        return AnchorUse.USED if self.s22a1_anchor_available else AnchorUse.SKIPPED
