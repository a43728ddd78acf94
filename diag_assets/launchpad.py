"""The fixed sets an operator picks from in the Launchpad: each a dropdown, never free text.

Dagster shows a config field typed with a Python ``Enum`` as a dropdown of its members' names,
and run config (YAML, the CLI, a sensor's run request) must spell one of those names. Each set
here is built from the domain's own (the capture modes, the drift policy's modes, the audit
kinds of the skip policy file), with every member's name equal to its value, so what an
operator picks, writes in run config or sets in an environment variable is the one spelling
the domain parses. A mode or kind added to the domain appears here without another edit.
"""

from enum import StrEnum

from diag_assets.core.audit.anchor_skip import load_policy as load_skip_policy
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.source_drift import DriftMode


class CaptureModeChoice(StrEnum):
    """A capture mode, as :class:`~diag_assets.core.capture.modes.CaptureMode` spells it."""

    _ignore_ = ["mode"]
    for mode in CaptureMode:
        vars()[mode.value] = mode.value


class DriftModeChoice(StrEnum):
    """When a warm read re-hashes the market data (:class:`DriftMode`)."""

    _ignore_ = ["mode"]
    for mode in DriftMode:
        vars()[mode.value] = mode.value


class AuditKindChoice(StrEnum):
    """An audit kind of the skip policy file ``diag_assets/policy/skip_s22a1.json``."""

    _ignore_ = ["kind"]
    for kind in load_skip_policy().audit_kinds:
        vars()[kind] = kind
