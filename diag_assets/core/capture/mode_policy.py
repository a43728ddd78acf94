"""The capture modes' switch: which capture mode serves this request, and why.

Resolved in this order, first answer wins:

1. the run config's ``capture_mode`` (explicit);
2. the environment variable ``DIAG_CAPTURE_MODE``, a deployment-wide A/B override (explicit);
3. the versioned policy file ``diag_assets/policy/capture_mode.json``. Its ``default_mode``
   may be ``dataset_only`` only once the release parity gate has passed for the current
   recipe version; until then the policy's dataset_only is refused and the default is
   ``full_replay``, with the refusal stated in the decision;
4. otherwise ``full_replay``.

Then the consumers and the recipe are checked:

- ``dataset_only`` and ``single_fit`` serve ``xy_only`` consumers only. A ``trial_dynamics``
  or ``unknown`` consumer forces ``full_replay`` when the mode came from the policy, and is
  an error (:class:`CaptureModeRefused`) when the mode was asked for explicitly;
- ``dataset_only`` needs the seam gate to have found a prep/train seam for this recipe version;
  without one it is DESIGN_REVIEW_REQUIRED, never a silent ``single_fit``;
- ``single_fit`` is never chosen by the system: the policy file cannot name it.
"""

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.diagnostics.consumers import CaptureRequirement
from diag_assets.core.errors import DiagInputError, quoted
from diag_assets.core.gates.records import ReleaseGateRecord, SeamRecord
from diag_assets.core.policy_files import load_policy_file

MODE_ENV = "DIAG_CAPTURE_MODE"
POLICY_FILE = "capture_mode.json"
DESIGN_REVIEW_REQUIRED = "DESIGN_REVIEW_REQUIRED"
SEAM_NOT_CHECKED = "SEAM_NOT_CHECKED"
CONSUMER_NEEDS_FULL_REPLAY = "CONSUMER_NEEDS_FULL_REPLAY"


class CaptureModePolicy(BaseModel):
    """The policy file's content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    description: str = ""
    default_mode: CaptureMode = CaptureMode.FULL_REPLAY
    parity_check_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Share of dataset_only captures that also replay one trial in full and "
        "assert X/y parity (the periodic parity check).",
    )
    release_gate_min_folds: int = Field(
        default=2, ge=1, description="Folds the release parity gate must cover to count."
    )

    @field_validator("default_mode")
    @classmethod
    def _never_single_fit(cls, mode: CaptureMode) -> CaptureMode:
        if mode is CaptureMode.SINGLE_FIT:
            raise ValueError(
                "single_fit is explicit opt-in only (run config or DIAG_CAPTURE_MODE); it "
                "cannot be a default"
            )
        return mode


class CaptureModeRefused(DiagInputError):
    """The requested capture mode cannot serve this request; ``code`` says which rule."""

    def __init__(self, code: str, problem: str, fix: str) -> None:
        self.code = code
        super().__init__(f"{code}: {problem}", fix)


@dataclass(frozen=True)
class ModeDecision:
    """The mode that serves a request, what was asked, and why."""

    mode: CaptureMode
    requested: CaptureMode
    source: str  # "run_config", "env:DIAG_CAPTURE_MODE", "policy@vN" or "default"
    reasons: list[str] = field(default_factory=list)

    @property
    def explicit(self) -> bool:
        """The mode was asked for by the run or the deployment, not taken from the policy."""
        return self.source in ("run_config", f"env:{MODE_ENV}")

    @property
    def reason(self) -> str:
        """One paragraph for logs and metadata."""
        head = f"capture mode {self.mode} (asked: {self.requested}, by {self.source})"
        return head + ("; " + "; ".join(self.reasons) if self.reasons else "") + "."


def load_policy(path: str | Path | None = None) -> CaptureModePolicy:
    """The packaged policy file, or the one at ``path``; a malformed file names the fix."""
    return load_policy_file(
        POLICY_FILE,
        CaptureModePolicy,
        what="capture mode policy",
        shape=(
            'write {"version": N, "default_mode": "full_replay"|"dataset_only", '
            '"parity_check_rate": 0..1}.'
        ),
        path=path,
    )


def parse_mode(value: str, *, what: str) -> CaptureMode:
    """A mode name as a :class:`CaptureMode`, spelled exactly; anything else names the fix.

    Nothing is trimmed or lower-cased: ``FULL_REPLAY`` or ``'single_fit '`` is refused, and
    the error says the exact spelling it probably meant.
    """
    names = [mode.value for mode in CaptureMode]
    if isinstance(value, str) and value in names:
        return CaptureMode(value)
    fix = f"set {what} to one of: {', '.join(names)}"
    meant = _meant_mode(value, names)
    if meant is not None:
        fix += f" (exactly {meant!r}: lower case, no spaces)"
    raise DiagInputError(f"{what}={quoted(value)} is not a capture mode.", f"{fix}.")


def _meant_mode(value: object, names: list[str]) -> str | None:
    """The mode a near miss (case, spaces, dashes, a small typo) probably meant."""
    if not isinstance(value, str):
        return None
    folded = "_".join(value.strip().lower().replace("-", " ").split())
    if folded in names:
        return folded
    close = difflib.get_close_matches(folded, names, n=1, cutoff=0.8)
    return close[0] if close else None


def release_gate_refusal(
    policy: CaptureModePolicy, gate: ReleaseGateRecord | None, recipe_version: str
) -> str | None:
    """Why the policy may not make dataset_only the default now, or ``None`` if it may."""
    if gate is None:
        return "the release parity gate has never run"
    if gate.recipe_version != recipe_version:
        return (
            f"the latest release parity gate ran on recipe {gate.recipe_version}, not the "
            f"current {recipe_version}"
        )
    if not gate.passed:
        return f"the latest release parity gate ({gate.evaluated_at:%Y-%m-%d %H:%M}) failed"
    if gate.folds < policy.release_gate_min_folds:
        return (
            f"the latest release parity gate covered {gate.folds} fold(s), fewer than the "
            f"{policy.release_gate_min_folds} the policy requires"
        )
    return None


def resolve_capture_mode(
    *,
    config_mode: str | None,
    env_mode: str | None,
    policy: CaptureModePolicy,
    release_gate: ReleaseGateRecord | None,
    seam: SeamRecord | None,
    consumers: Mapping[str, CaptureRequirement],
    recipe_version: str,
) -> ModeDecision:
    """Apply the rules of the module docstring.

    Args:
        config_mode: The run config's mode, if set.
        env_mode: ``DIAG_CAPTURE_MODE``, if set.
        policy: The policy file.
        release_gate: The latest release parity gate record, if any.
        seam: The latest prep/train seam record, if any.
        consumers: The diagnostics this capture is for, with their requirements.
        recipe_version: The recipe's code version, which gate and seam records must match.

    Raises:
        DiagInputError: a mode name is not a mode.
        CaptureModeRefused: the explicit mode cannot serve these consumers, or dataset_only
            was asked for a recipe without a proven seam.
    """
    reasons: list[str] = []
    if config_mode is not None:
        requested, source = parse_mode(config_mode, what="capture_mode"), "run_config"
    elif env_mode is not None and env_mode.strip():  # a blank variable is an unset one
        requested, source = parse_mode(env_mode, what=MODE_ENV), f"env:{MODE_ENV}"
    else:
        requested, source = policy.default_mode, f"policy@v{policy.version}"
        if requested is CaptureMode.DATASET_ONLY:
            refusal = release_gate_refusal(policy, release_gate, recipe_version)
            if refusal is not None:
                return ModeDecision(
                    CaptureMode.FULL_REPLAY,
                    requested,
                    source,
                    [f"the policy's dataset_only default is refused: {refusal}"],
                )
    decision = ModeDecision(requested, requested, source, reasons)
    if requested is CaptureMode.FULL_REPLAY:
        return decision

    needing_all = {
        name: requirement
        for name, requirement in sorted(consumers.items())
        if requirement is not CaptureRequirement.XY_ONLY
    }
    if needing_all:
        named = ", ".join(f"{name} ({requirement})" for name, requirement in needing_all.items())
        if decision.explicit:
            raise CaptureModeRefused(
                CONSUMER_NEEDS_FULL_REPLAY,
                f"{requested} was asked for ({source}) but {named} read more than X/y; "
                f"{requested} serves xy_only consumers only.",
                "leave those diagnostics out of this run, or ask for capture_mode "
                "full_replay (or unset the override to let the policy decide).",
            )
        reasons.append(f"forced to full_replay: {named} need(s) a full replay")
        return ModeDecision(CaptureMode.FULL_REPLAY, requested, source, reasons)

    if requested is CaptureMode.DATASET_ONLY:
        if seam is None or seam.recipe_version != recipe_version:
            checked = "never" if seam is None else f"only for recipe {seam.recipe_version}"
            raise CaptureModeRefused(
                SEAM_NOT_CHECKED,
                "dataset_only needs the prep/train seam gate to have found a seam for "
                f"recipe {recipe_version}; the seam gate ran {checked}.",
                "materialize g_c4b_seam (it reads the shared fixture set through the capture "
                "cache), then ask again.",
            )
        if not seam.seam:
            raise CaptureModeRefused(
                DESIGN_REVIEW_REQUIRED,
                f"The prep/train seam gate found no seam in recipe {recipe_version} "
                f"({seam.evaluated_at:%Y-%m-%d %H:%M}): {' '.join(seam.reasons)}",
                "dataset_only is unreachable for this recipe; take it back to design "
                "review. single_fit is not a fallback: ask for it explicitly only after "
                "that review.",
            )
    return decision
