"""Certification: what a verdict, or a cell's audit, may claim, and why.

One function, :func:`certify`, decides it from the facts, for every diagnostic and for the
cell's report:

- an input was missing or could not be verified (the ``problem``): ``INCONCLUSIVE_TOOLING``;
- otherwise the capture is ``single_fit`` (an explicit opt-in that the release parity gate
  does not cover), or the verdict needed the s22a1 anchor and this run skipped it:
  ``DOWNGRADED``, naming each of the two that holds;
- otherwise (a ``full_replay`` or ``dataset_only`` capture, the anchor used or not needed):
  ``CERTIFIED``.

A ``dataset_only`` capture does not downgrade by itself: it only exists once the release
parity gate showed that its X/y are the full replay's.
"""

from dataclasses import dataclass
from enum import StrEnum

from diag_assets.core.capture.modes import CaptureMode


class Certification(StrEnum):
    """What a verdict can claim (see the module docstring)."""

    CERTIFIED = "CERTIFIED"
    DOWNGRADED = "DOWNGRADED"
    INCONCLUSIVE_TOOLING = "INCONCLUSIVE_TOOLING"


class AnchorUse(StrEnum):
    """What the s22a1 anchor was to a verdict."""

    USED = "used"
    """The verdict read the anchor (cross-referenced it, or re-fitted its model)."""
    SKIPPED = "skipped"
    """The verdict would have read the anchor, but this run skipped it."""
    NOT_NEEDED = "not_needed"
    """The diagnostic never reads the anchor."""


SINGLE_FIT_CAPTURE = "Capture is single_fit (explicit opt-in), not release-gated."
ANCHOR_SKIPPED = "s22a1 anchor skipped"
WITHOUT_ANCHOR = "the verdict was not cross-referenced with the anchor"


@dataclass(frozen=True)
class CertificationDecision:
    """A certification with the reason an operator reads.

    ``causes`` are the sentences that keep it from CERTIFIED (the problem, or what
    downgraded it); empty when it is CERTIFIED.
    """

    certification: Certification
    reason: str
    causes: tuple[str, ...] = ()


def certify(
    *,
    capture_mode: CaptureMode | None,
    anchor: AnchorUse,
    problem: str | None = None,
    finding: str = "",
    without_anchor: str = WITHOUT_ANCHOR,
) -> CertificationDecision:
    """Decide a certification and its reason from the facts (the module docstring's rule).

    Args:
        capture_mode: The mode of the capture the verdict read; ``None`` when there was no
            capture to read (then ``problem`` must say so).
        anchor: Whether the verdict used the s22a1 anchor, went without it because this run
            skipped it, or never needs it.
        problem: The input that was missing or failed verification; ``None`` when every
            input was present and verified.
        finding: What the diagnostic found, in a sentence; it follows the causes in the
            reason. Empty for a verdict that found nothing to tell.
        without_anchor: What the verdict could not do without the anchor, completing
            "s22a1 anchor skipped: ...".

    Returns:
        The certification, the reason (causes and finding, in that order, the capture's
        mode last) and the causes.

    Raises:
        ValueError: no capture and no problem: a verdict without a capture cannot be judged.
    """
    if problem:
        return CertificationDecision(
            Certification.INCONCLUSIVE_TOOLING, _join(problem, finding), (problem,)
        )
    if capture_mode is None:
        raise ValueError("A verdict without a capture needs the problem that kept it from one.")
    anchor_cause = f"{ANCHOR_SKIPPED}: {without_anchor}." if anchor is AnchorUse.SKIPPED else ""
    mode_cause = SINGLE_FIT_CAPTURE if capture_mode is CaptureMode.SINGLE_FIT else ""
    causes = tuple(cause for cause in (anchor_cause, mode_cause) if cause)
    if causes:
        return CertificationDecision(
            Certification.DOWNGRADED, _join(anchor_cause, finding, mode_cause), causes
        )
    if not finding:
        finding = "every input was present and verified" + (
            ", and the s22a1 anchor cross-reference ran." if anchor is AnchorUse.USED else "."
        )
    return CertificationDecision(Certification.CERTIFIED, finding)


def _join(*sentences: str) -> str:
    return " ".join(sentence for sentence in sentences if sentence)
