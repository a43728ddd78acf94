"""The anchor skip: does this run skip the s22a1 anchor?

Resolved in this order, first answer wins:

1. a run-level override: the run config's ``skip_s22a1`` or the run tag ``diag/skip_s22a1``
   (``true``/``false``); if both are given they must agree;
2. the default of the run's audit kind (``diag/audit_kind`` tag or run config) in the
   versioned policy file ``diag_assets/policy/skip_s22a1.json``: off for the reproduction
   missions S22 to S28, on for light s40 audits;
3. otherwise off.

Every input is checked before any of this, whichever answer wins (:func:`check_skip_inputs`):
an audit kind the policy does not know is refused even beside an override, and so is a flag
that is not exactly ``true`` or ``false`` (any case, no spaces). The capture step runs the
same check, so a typo fails the run before a replay rather than after it.

A skipped anchor downgrades every verdict that would have cross-referenced it; the decision
and where it came from travel with the verdict.
"""

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from diag_assets.core.errors import DiagInputError, quoted
from diag_assets.core.names import AUDIT_KIND_TAG, SKIP_TAG
from diag_assets.core.policy_files import load_policy_file

POLICY_FILE = "skip_s22a1.json"
# The anchor step's run config fields that the skip reads.
SKIP_CONFIG = "skip_s22a1"
AUDIT_KIND_CONFIG = "audit_kind"


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
    """``true``/``false`` (any case, nothing around it) as a bool; anything else names the fix."""
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    fix = f"set {what} to true or false"
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        fix += f" (exactly {value.strip().lower()!r}, without spaces or line breaks)"
    raise DiagInputError(f"{what}={quoted(value)} is not a boolean.", f"{fix}.")


@dataclass(frozen=True)
class SkipInputs:
    """A run's anchor skip inputs, checked: the overrides as booleans, and its audit kind."""

    config_override: bool | None
    tag_override: bool | None
    audit_kind: str | None


def check_audit_kind(kind: object, policy: SkipPolicy, *, where: str) -> str:
    """``kind`` if the skip policy knows it; ``where`` says where the value came from."""
    if isinstance(kind, str) and kind in policy.audit_kinds:
        return kind
    known = ", ".join(sorted(policy.audit_kinds))
    fix = f"use one of: {known}"
    folded = kind.strip().lower() if isinstance(kind, str) else None
    if folded in policy.audit_kinds:
        fix += f" (exactly {folded!r}: lower case, no spaces)"
    raise DiagInputError(
        f"Audit kind {quoted(kind)} ({where}) is not in the skip policy (v{policy.version}).",
        f"{fix}; or add it to diag_assets/policy/{POLICY_FILE}.",
    )


def check_skip_inputs(
    *,
    config_override: object,
    tag_override: str | None,
    audit_kind: object,
    policy: SkipPolicy,
    tag_audit_kind: str | None = None,
    config_at: str = "the run config",
) -> SkipInputs:
    """Check every input of the anchor skip, whichever of them decides.

    Args:
        config_override: The run config's ``skip_s22a1`` (a boolean), if set.
        tag_override: The run tag ``diag/skip_s22a1`` (``true``/``false``), if set.
        audit_kind: The run config's ``audit_kind``, if set; it wins over the tag's.
        policy: The skip policy, which lists the audit kinds.
        tag_audit_kind: The run tag ``diag/audit_kind``, if set.
        config_at: How a message names the run config the config values come from.

    Raises:
        DiagInputError: a value is not a boolean or not a known audit kind, or the two
            overrides disagree; the message names the value, where it came from and the fix.
    """
    if config_override is not None and not isinstance(config_override, bool):
        raise DiagInputError(
            f"{SKIP_CONFIG}={quoted(config_override)} in {config_at} is not a boolean.",
            f"set {SKIP_CONFIG} to true or false, or leave it out.",
        )
    tag_value = None if tag_override is None else parse_flag(tag_override, what=SKIP_TAG)
    if config_override is not None and tag_value is not None and config_override != tag_value:
        raise DiagInputError(
            f"{SKIP_CONFIG}={config_override} in {config_at} but the tag {SKIP_TAG} says "
            f"{tag_value}.",
            "give one override, or make them agree.",
        )
    kinds = [
        check_audit_kind(kind, policy, where=where)
        for kind, where in (
            (audit_kind, f"{AUDIT_KIND_CONFIG} in {config_at}"),
            (tag_audit_kind, f"the run tag {AUDIT_KIND_TAG}"),
        )
        if kind is not None
    ]
    return SkipInputs(config_override, tag_value, kinds[0] if kinds else None)


def resolve_skip_s22a1(
    *,
    config_override: bool | None,
    tag_override: str | None,
    audit_kind: str | None,
    policy: SkipPolicy,
    tag_audit_kind: str | None = None,
) -> SkipDecision:
    """Apply the resolution order of the module docstring, once every input is checked.

    ``audit_kind`` is the run config's, ``tag_audit_kind`` the run tag's (the config wins);
    see :func:`check_skip_inputs` for what is refused.
    """
    inputs = check_skip_inputs(
        config_override=config_override,
        tag_override=tag_override,
        audit_kind=audit_kind,
        tag_audit_kind=tag_audit_kind,
        policy=policy,
    )
    kind = inputs.audit_kind
    if inputs.config_override is not None:
        return SkipDecision(inputs.config_override, "run_config", kind)
    if inputs.tag_override is not None:
        return SkipDecision(inputs.tag_override, "run_tag", kind)
    if kind is not None:
        return SkipDecision(policy.audit_kinds[kind], f"policy:{kind}@v{policy.version}", kind)
    return SkipDecision(False, "default", None)
