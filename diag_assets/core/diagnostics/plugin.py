"""The diagnostic plug-in API: what a diagnostic declares, and how the harness runs it.

A diagnostic is a subclass of :class:`Diagnostic` that declares

- ``name``: how audits, reports and the consumer map know it (a short identifier);
- ``requirement``: what it reads of a capture, ``xy_only`` (X/y alone: it may run on a
  dataset_only capture and with the s22a1 anchor skipped) or ``trial_dynamics`` (also the
  trial log);
- ``reads_anchor``: whether it takes the s22a1 anchor's result when the run has one (then it
  runs in the anchor's step, under the same skip decision, and gets ``anchor=None`` when the
  run skips the anchor);
- ``result_model``: the model of what it returns, a subclass of
  :class:`~diag_assets.core.diagnostics.verdicts.Verdict` (its cell, its certification from
  :func:`~diag_assets.core.diagnostics.certification.certify` and the capture it read), so
  the cell's report can weigh it;
- ``settings_model`` (optional): its settings, given per audit in ``diagnostic_settings``;
- ``tasks`` (optional): the recipe tasks it makes sense for; on another task it is not run
  and says :data:`NOT_APPLICABLE` instead;
- ``description`` and ``kinds`` (optional): what the UI shows of its asset;
- ``finding_codes`` (optional): finding codes of its own beyond the built-in vocabulary of
  :mod:`~diag_assets.core.diagnostics.findings`;

and implements :meth:`Diagnostic.run`, and (optionally) :meth:`Diagnostic.findings`, what
the result found in that vocabulary, and :meth:`Diagnostic.pictures`, figures of the result
the UI shows as images beside its metadata. :meth:`Diagnostic.run` receives a
:class:`~diag_assets.core.diagnostics.consumers.CaptureView` cut to its requirement (an
``xy_only`` diagnostic that touches the trial log raises). The built-in diagnostics (s22a1,
s40, s27, s22a2, s23) are declared the same way in
:mod:`diag_assets.core.diagnostics.builtins`; a team's diagnostic is named in an audit by
import path or by a name registered under the ``diag_harness.diagnostics`` entry point group.
"""

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, ValidationError

from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.capture.replay import CapturedFold
from diag_assets.core.diagnostics.consumers import (
    DIAGNOSTIC_CAPTURE_REQUIREMENTS,
    CaptureRequirement,
    CaptureView,
    refuse_reduced_capture,
)
from diag_assets.core.diagnostics.findings import (
    Finding,
    check_codes,
    gap_findings,
    valid_code,
)
from diag_assets.core.diagnostics.verdicts import AnchorResult, Verdict
from diag_assets.core.errors import DiagInputError
from diag_assets.core.hashing.digests import hash_json
from diag_assets.core.plugins import DIAGNOSTICS_GROUP, load_plugin
from diag_assets.core.recipe.tasks import TaskKind

NOT_APPLICABLE = "NOT_APPLICABLE"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")


class NoSettings(BaseModel):
    """A diagnostic without settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class NotApplicable(BaseModel):
    """What a diagnostic says about a capture whose task it does not apply to."""

    model_config = ConfigDict(frozen=True)

    status: str = NOT_APPLICABLE
    diagnostic: str
    cell_ref: str
    task: TaskKind
    reason: str
    capture_key: str
    capture_content_hash: str

    def content_hash(self) -> str:
        """Hash of the whole statement (it has no wall-clock field)."""
        return hash_json(self.model_dump(mode="json"))


class Diagnostic(ABC):
    """A diagnostic of a captured fold (see the module docstring for the declarations)."""

    name: ClassVar[str]
    requirement: ClassVar[CaptureRequirement]
    reads_anchor: ClassVar[bool] = False
    result_model: ClassVar[type[BaseModel]]
    # Whether the cell's report weighs the result: every verdict; not the s22a1 anchor, whose
    # result is an input of its readers.
    reported: ClassVar[bool] = True
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    tasks: ClassVar[frozenset[TaskKind]] = frozenset(TaskKind)
    description: ClassVar[str] = ""
    # What the UI badges its asset with (Dagster asset kinds), e.g. {"lightgbm"} if it fits.
    kinds: ClassVar[frozenset[str]] = frozenset()
    # Finding codes of its own, beyond the built-in vocabulary (FindingCode).
    finding_codes: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def run(self, view: CaptureView, settings: Any, anchor: AnchorResult | None) -> BaseModel:
        """The diagnostic's result for one capture.

        ``settings`` is an instance of ``settings_model``. ``anchor`` is the s22a1 anchor's
        result for a diagnostic that ``reads_anchor``, or ``None`` when the run skipped the
        anchor (the result should then say it went without it); always ``None`` for the others.
        """

    def evaluate(
        self, captured: CapturedFold, settings: Any, anchor: AnchorResult | None
    ) -> BaseModel:
        """Run on a verified capture: :meth:`run` on a view cut to the requirement.

        The built-in diagnostics override this to call their guarded core functions, which
        cut the same view.
        """
        view = CaptureView(
            self.name,
            self.requirement,
            captured,
            anchor if self.requirement is CaptureRequirement.TRIAL_DYNAMICS else None,
        )
        return self.run(view, settings, anchor if self.reads_anchor else None)

    def finding(self, result: BaseModel) -> str:
        """One line for the cell's report: what the result found."""
        for attribute in ("status", "signal", "drift", "calibration"):
            value = getattr(result, attribute, None)
            if value is not None:
                return str(value)
        return str(getattr(result, "certification_reason", ""))

    def findings(self, result: BaseModel) -> list[Finding]:
        """What the result found, in the audit's vocabulary; none by default.

        Codes are the built-in :class:`~diag_assets.core.diagnostics.findings.FindingCode`
        values or the class's ``finding_codes``. The harness adds the fold's data gaps
        (``DATA_GAP``) to every verdict itself.
        """
        return []

    def figures(self, result: BaseModel) -> Mapping[str, float | int | str | None]:
        """The result's headline figures: shown in the UI and as columns of the summary."""
        return {}

    def pictures(self, result: BaseModel) -> Mapping[str, Figure]:
        """Figures of the result, by name; none by default.

        Each is drawn from the result's own data (with
        :func:`~diag_assets.core.figures.new_figure`, titled, axes labelled with units) and
        shown in the UI as an image under its name, which must be a short identifier
        (lower case, digits and _) unlike the result's other metadata. The harness renders
        each as a PNG within :data:`~diag_assets.core.figures.MAX_FIGURE_BYTES`. A result
        with nothing to draw (an inconclusive verdict, a result stored before its data was
        kept) offers none.
        """
        return {}

    def settings(self, values: Mapping[str, Any] | None) -> BaseModel:
        """The settings model filled from an audit's ``diagnostic_settings`` entry.

        Raises:
            DiagInputError: a value does not fit ``settings_model``.
        """
        try:
            return self.settings_model(**dict(values or {}))
        except ValidationError as error:
            fields = ", ".join(self.settings_model.model_fields) or "none"
            raise DiagInputError(
                f"The settings {dict(values or {})} of diagnostic {self.name!r} do not fit "
                f"{self.settings_model.__name__}: {error}",
                f"use the fields of {self.settings_model.__name__} ({fields}).",
            ) from error


def check_declarations(cls: type) -> None:
    """Refuse a diagnostic class that does not declare what the harness needs.

    Raises:
        DiagInputError: a declaration is missing or has the wrong type.
    """
    where = f"{cls.__module__}.{cls.__qualname__}"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DiagInputError(
            f"Diagnostic {where} declares no valid name ({name!r}).",
            "set the class attribute name = 'my_check' (lower case, digits and _).",
        )
    requirement = getattr(cls, "requirement", None)
    valid = (CaptureRequirement.XY_ONLY, CaptureRequirement.TRIAL_DYNAMICS)
    if requirement not in valid:
        raise DiagInputError(
            f"Diagnostic {name!r} ({where}) declares no capture requirement "
            f"(requirement = {requirement!r}).",
            "set requirement = CaptureRequirement.XY_ONLY (reads X/y only) or "
            "CaptureRequirement.TRIAL_DYNAMICS (also reads the trial log).",
        )
    model = getattr(cls, "result_model", None)
    base = Verdict if getattr(cls, "reported", True) else BaseModel
    if not (isinstance(model, type) and issubclass(model, base)):
        raise DiagInputError(
            f"Diagnostic {name!r} ({where}) declares no {base.__name__} result model ({model!r}).",
            "set result_model to the model its run() returns, a subclass of "
            "diag_assets.core.diagnostics.verdicts.Verdict.",
        )
    settings = getattr(cls, "settings_model", None)
    if not (isinstance(settings, type) and issubclass(settings, BaseModel)):
        raise DiagInputError(
            f"Diagnostic {name!r} ({where}) has a settings_model that is not a pydantic model.",
            "set settings_model to a pydantic BaseModel subclass, or leave it out.",
        )
    codes = getattr(cls, "finding_codes", None)
    if not isinstance(codes, frozenset) or not all(valid_code(code) for code in codes):
        raise DiagInputError(
            f"Diagnostic {name!r} ({where}) declares finding_codes {codes!r}.",
            "set finding_codes to a frozenset of codes in upper case, digits and _ "
            "(e.g. frozenset({'UNSTABLE_IMPORTANCE'})), or leave it out.",
        )
    tasks = getattr(cls, "tasks", None)
    if not tasks or not all(isinstance(task, TaskKind) for task in tasks):
        raise DiagInputError(
            f"Diagnostic {name!r} ({where}) declares tasks {tasks!r}.",
            f"set tasks to a frozenset of TaskKind ({', '.join(TaskKind)}), or leave it out.",
        )


_REGISTERED: dict[str, Diagnostic] = {}


def register(diagnostic: Diagnostic) -> Diagnostic:
    """Register a diagnostic instance by name, with its capture requirement.

    Registering the same class again is a no-op; another class under a taken name is refused.

    Raises:
        DiagInputError: a declaration is missing (:func:`check_declarations`), or the name
            belongs to another diagnostic.
    """
    check_declarations(type(diagnostic))
    known = _REGISTERED.get(diagnostic.name)
    if known is not None:
        if type(known) is type(diagnostic):
            return known
        raise DiagInputError(
            f"Two diagnostics are named {diagnostic.name!r}: "
            f"{type(known).__module__}.{type(known).__qualname__} and "
            f"{type(diagnostic).__module__}.{type(diagnostic).__qualname__}.",
            "give the plug-in diagnostic another name.",
        )
    _REGISTERED[diagnostic.name] = diagnostic
    DIAGNOSTIC_CAPTURE_REQUIREMENTS[diagnostic.name] = diagnostic.requirement
    return diagnostic


def resolve_diagnostic(reference: str) -> Diagnostic:
    """The diagnostic an audit names: a registered name, an entry point, or an import path.

    Raises:
        DiagInputError: nothing resolves, or what resolves is not a :class:`Diagnostic`.
    """
    known = _REGISTERED.get(reference)
    if known is not None:
        return known
    target = load_plugin(reference, DIAGNOSTICS_GROUP, what="diagnostic")
    if isinstance(target, type) and issubclass(target, Diagnostic):
        if getattr(target, "__abstractmethods__", None):
            missing = ", ".join(sorted(target.__abstractmethods__))
            raise DiagInputError(
                f"The diagnostic {reference!r} does not implement {missing}.",
                "implement run(view, settings, anchor) on the class.",
            )
        target = target()
    if not isinstance(target, Diagnostic):
        raise DiagInputError(
            f"{reference!r} resolves to {target!r}, which is not a diagnostic.",
            "point it at a subclass of diag_assets.core.diagnostics.plugin.Diagnostic.",
        )
    return register(target)


def run_diagnostic(
    diagnostic: Diagnostic,
    captured: CapturedFold,
    settings: BaseModel,
    anchor: AnchorResult | None = None,
) -> BaseModel:
    """Run ``diagnostic`` on a verified capture, behind the consumer guard.

    A capture whose task the diagnostic does not apply to gets a :class:`NotApplicable`; a
    reduced capture is refused to a diagnostic that is not ``xy_only``
    (:func:`~diag_assets.core.diagnostics.consumers.refuse_reduced_capture`).
    """
    manifest = captured.manifest
    if manifest.task not in diagnostic.tasks:
        applies = ", ".join(sorted(diagnostic.tasks))
        return NotApplicable(
            diagnostic=diagnostic.name,
            cell_ref=manifest.cell_ref,
            task=manifest.task,
            reason=f"{diagnostic.name} applies to {applies} tasks; this recipe's task is "
            f"{manifest.task}.",
            capture_key=manifest.capture_key,
            capture_content_hash=manifest.content_hash,
        )
    refuse_reduced_capture(diagnostic.name, diagnostic.requirement, manifest)
    result = diagnostic.evaluate(captured, settings, anchor if diagnostic.reads_anchor else None)
    if not isinstance(result, diagnostic.result_model):
        raise TypeError(
            f"Diagnostic {diagnostic.name!r} returned {type(result).__name__}, not its "
            f"declared result model {diagnostic.result_model.__name__}."
        )
    if not isinstance(result, Verdict):
        return result  # the anchor's result: an input of its readers, not a verdict
    findings = verdict_findings(diagnostic, result, manifest)
    return result.model_copy(update={"findings": findings})


def verdict_findings(
    diagnostic: Diagnostic, verdict: BaseModel, manifest: CaptureManifest
) -> list[Finding]:
    """The verdict's findings: the diagnostic's own, then the gaps of the fold's window.

    Raises:
        TypeError: the diagnostic reported a code outside the audit's vocabulary.
    """
    own = list(diagnostic.findings(verdict))
    check_codes(own, diagnostic.finding_codes, who=diagnostic.name)
    return own + gap_findings(manifest, diagnostic.name)
