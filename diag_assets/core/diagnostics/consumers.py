"""The consumer registry: what each diagnostic needs of a capture, enforced at run time.

``DIAGNOSTIC_CAPTURE_REQUIREMENTS`` maps a diagnostic's name to what it reads:

- ``xy_only``: the fold's X/y and nothing else; it may run on a reduced capture and with the
  s22a1 anchor skipped;
- ``trial_dynamics``: also the trial log or the anchor's model;
- ``unknown``: not declared; treated as needing everything (a full replay).

A diagnostic declares its requirement where it is defined, with :func:`diagnostic`; the
package imports every diagnostic's module, so the registry is complete as soon as any module
of it (this one included) is imported. The decorator hands the function a
:class:`CaptureView` cut to that requirement: an ``xy_only`` diagnostic that touches the
trial log or the anchor raises :class:`ConsumerContractViolation`, in production as in
tests. A reduced capture (the capture modes ``dataset_only`` and ``single_fit``) is refused
to every diagnostic that is not ``xy_only`` before it runs, whichever way the capture got
there.
"""

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Concatenate, ParamSpec, TypeVar

from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.replay import CapturedFold
from diag_assets.core.diagnostics.verdicts import AnchorResult
from diag_assets.core.recipe.prep import FoldData
from diag_assets.core.recipe.protocol import TrialLog


class CaptureRequirement(StrEnum):
    """What a diagnostic reads of a capture."""

    XY_ONLY = "xy_only"
    TRIAL_DYNAMICS = "trial_dynamics"
    UNKNOWN = "unknown"


DIAGNOSTIC_CAPTURE_REQUIREMENTS: dict[str, CaptureRequirement] = {}


class ConsumerContractViolation(RuntimeError):
    """A diagnostic read something its registered requirement does not allow."""


def requirement_of(name: str) -> CaptureRequirement:
    """The registered requirement of ``name``; an undeclared diagnostic is ``unknown``."""
    return DIAGNOSTIC_CAPTURE_REQUIREMENTS.get(name, CaptureRequirement.UNKNOWN)


@dataclass(frozen=True, order=True)
class CaptureReader:
    """An asset that reads a capture, and the diagnostic it declares it runs.

    ``diagnostic`` is ``None`` when the asset declares none: it is an ``unknown`` consumer.
    """

    asset: str
    diagnostic: str | None

    @property
    def consumer(self) -> str:
        """The name the capture modes know this reader by: its diagnostic, else its asset."""
        return self.diagnostic or self.asset

    def requirement(
        self, requirements: Mapping[str, CaptureRequirement] = DIAGNOSTIC_CAPTURE_REQUIREMENTS
    ) -> CaptureRequirement:
        """What this reader needs: its diagnostic's registered requirement, else ``unknown``."""
        if self.diagnostic is None:
            return CaptureRequirement.UNKNOWN
        return CaptureRequirement(requirements.get(self.diagnostic, CaptureRequirement.UNKNOWN))


def consumers_of(readers: Iterable[CaptureReader]) -> dict[str, CaptureRequirement]:
    """The requirement of each reader, by the name the capture modes know it by."""
    return {reader.consumer: reader.requirement() for reader in readers}


@dataclass(frozen=True)
class CaptureView:
    """A captured fold as one diagnostic may see it."""

    diagnostic: str
    requirement: CaptureRequirement
    _captured: CapturedFold
    _anchor: AnchorResult | None = None

    @property
    def data(self) -> FoldData:
        """X/y and the train/validation split: every diagnostic may read these."""
        return self._captured.data

    @property
    def manifest(self) -> CaptureManifest:
        """Hashes and provenance of the capture."""
        return self._captured.manifest

    @property
    def trial_log(self) -> TrialLog:
        """The trial log; refused to an ``xy_only`` diagnostic."""
        self._refuse_if_xy_only("the trial log")
        log = self._captured.trial_log
        if log is None:
            raise ConsumerContractViolation(
                f"{self.diagnostic}: capture {self.manifest.capture_key} is "
                f"{self.manifest.mode} and has no trial log."
            )
        return log

    @property
    def anchor(self) -> AnchorResult:
        """The s22a1 anchor's result; refused to ``xy_only``, absent when it was skipped."""
        self._refuse_if_xy_only("the s22a1 anchor")
        if self._anchor is None:
            raise LookupError(f"{self.diagnostic}: no s22a1 anchor was given to this run.")
        return self._anchor

    def _refuse_if_xy_only(self, what: str) -> None:
        if self.requirement is CaptureRequirement.XY_ONLY:
            raise ConsumerContractViolation(
                f"{self.diagnostic} is registered xy_only but read {what}. Either compute it "
                "from X/y alone, or register it as trial_dynamics (then it can no longer run "
                "with the anchor skipped or on a dataset_only capture)."
            )


def refuse_reduced_capture(
    diagnostic_name: str, requirement: CaptureRequirement, manifest: CaptureManifest
) -> None:
    """Raise unless ``diagnostic_name`` may read a capture of ``manifest``'s mode.

    Raises:
        ConsumerContractViolation: the capture is dataset_only or single_fit and the
            diagnostic is not registered xy_only.
    """
    if manifest.mode is CaptureMode.FULL_REPLAY or requirement is CaptureRequirement.XY_ONLY:
        return
    raise ConsumerContractViolation(
        f"{diagnostic_name} is registered {requirement} but the capture of "
        f"{manifest.cell_ref} ({manifest.capture_key}) is {manifest.mode}, which serves "
        "xy_only diagnostics only. Re-materialize captured_fold for the cell with "
        "capture_mode full_replay."
    )


P = ParamSpec("P")
R = TypeVar("R")


def diagnostic(
    name: str, requirement: CaptureRequirement
) -> Callable[[Callable[Concatenate[CaptureView, P], R]], Callable[..., R]]:
    """Register ``name`` with its requirement; the function receives a guarded view.

    The decorated function is called with a :class:`CapturedFold` (and, optionally,
    ``anchor=``) in place of the view.
    """
    if name in DIAGNOSTIC_CAPTURE_REQUIREMENTS:
        raise ValueError(f"Diagnostic {name!r} is registered twice.")
    DIAGNOSTIC_CAPTURE_REQUIREMENTS[name] = requirement

    def decorate(function: Callable[Concatenate[CaptureView, P], R]) -> Callable[..., R]:
        @functools.wraps(function)
        def run(
            captured: CapturedFold, *args: Any, anchor: AnchorResult | None = None, **kwargs: Any
        ) -> R:
            refuse_reduced_capture(name, requirement, captured.manifest)
            view = CaptureView(name, requirement, captured, anchor)
            return function(view, *args, **kwargs)

        run.diagnostic_name = name  # type: ignore[attr-defined]
        run.requirement = requirement  # type: ignore[attr-defined]
        return run

    return decorate
