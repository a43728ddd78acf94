"""The anchor skip: does this run skip the s22a1 anchor?

Resolved in this order, first answer wins:

1. a run-level override: the run config's ``skip_s22a1`` or the run tag ``diag/skip_s22a1``
   (``true``/``false``); if both are given they must agree;
2. the default of the run's audit kind (``diag/audit_kind`` tag or run config) in the
   versioned policy file ``diag_assets/policy/skip_s22a1.json``: off for the reproduction
   missions S22 to S28, on for light s40 audits;
3. otherwise off.

A skipped anchor downgrades every verdict that would have cross-referenced it; the decision
and where it came from travel with the verdict.
"""

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from diag_assets.core.errors import DiagInputError
from diag_assets.core.names import SKIP_TAG
from diag_assets.core.policy_files import load_policy_file

POLICY_FILE = "skip_s22a1.json"


class SkipPolicy(BaseModel):
    """The policy file's content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    description: str = ""
    audit_kinds: dict[str, bool]


@dataclass(frozen=True)
class SkipDecision:
    """Whether to skip s22a1, and why."""

    skip: bool
    source: str  # "run_config", "run_tag", "policy:<kind>@v<version>" or "default"
    audit_kind: str | None

    @property
    def reason(self) -> str:
        """One sentence for a report."""
        state = "skipped" if self.skip else "kept"
        return f"s22a1 anchor {state} (decided by {self.source})."


def load_policy(path: str | Path | None = None) -> SkipPolicy:
    """The packaged policy file, or the one at ``path``; a malformed file names the fix."""
    return load_policy_file(
        POLICY_FILE,
        SkipPolicy,
        what="skip policy",
        shape='write {"version": N, "audit_kinds": {"<kind>": true|false, ...}}.',
        path=path,
    )


def parse_flag(value: str, *, what: str) -> bool:
    """``true``/``false`` (any case) as a bool; anything else names the fix."""
    lowered = value.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    raise DiagInputError(f"{what}={value!r} is not a boolean.", f"set {what} to true or false.")


def resolve_skip_s22a1(
    *,
    config_override: bool | None,
    tag_override: str | None,
    audit_kind: str | None,
    policy: SkipPolicy,
) -> SkipDecision:
    """Apply the resolution order of the module docstring."""
    tag_value = None if tag_override is None else parse_flag(tag_override, what=SKIP_TAG)
    if config_override is not None and tag_value is not None and config_override != tag_value:
        raise DiagInputError(
            f"The run config says skip_s22a1={config_override} but the tag {SKIP_TAG} says "
            f"{tag_value}.",
            "give one override, or make them agree.",
        )
    if config_override is not None:
        return SkipDecision(config_override, "run_config", audit_kind)
    if tag_value is not None:
        return SkipDecision(tag_value, "run_tag", audit_kind)
    if audit_kind is not None:
        if audit_kind not in policy.audit_kinds:
            known = ", ".join(sorted(policy.audit_kinds))
            raise DiagInputError(
                f"Audit kind {audit_kind!r} is not in the skip policy (v{policy.version}).",
                f"use one of: {known}; or add it to diag_assets/policy/{POLICY_FILE}.",
            )
        return SkipDecision(
            policy.audit_kinds[audit_kind], f"policy:{audit_kind}@v{policy.version}", audit_kind
        )
    return SkipDecision(False, "default", None)
