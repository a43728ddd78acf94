"""G-C4 and G-C4b: is a recipe's X/y trial-invariant, and is there a prep/train seam?

Both gates read a :class:`ReplayTrace`, recorded by :func:`instrumented_replay` while the
recipe replays one cell exactly as :func:`diag_assets.core.capture.replay_cell` would (prep,
then the trial loop) but writes nothing. The trace is an ordered list of events and holds
hashes only, never a frame or an array:

- ``prep_called``: the recipe's ``prep`` returned; the per-column canonical hashes of the
  X and y it returned, ``n_train``, and the digests of the forms in which a recipe may hand
  that X/y to LightGBM (``FoldData.split()`` arrays, X and its train/validation slices);
- ``trial_started``: the trial observer fired; the trial index and the per-column canonical
  hashes of the X/y that trial receives;
- ``dataset_built``: ``lightgbm.Dataset.__init__`` ran; digests of its data and label, and
  whether it references another Dataset (a validation set does);
- ``train_called``: ``lightgbm.train`` ran; the digest of its training set's raw data when
  LightGBM still holds it.

Every event carries ``trial``: the index of the most recent ``trial_started`` (``None``
before the first), so a Dataset is attributed to the trial that built it.

Data handed to LightGBM is hashed by :func:`data_digest`: a DataFrame by its canonical
table digest (``table:...``); a numpy array (a Series or list is turned into one) by xxh3_128
of its dtype, shape and C-order bytes (``array:...``). The array digest is *not* the
canonical hash: it is only ever compared with digests made by the same function in the same
process, where equal content means equal bytes, and it avoids ``pd.DataFrame(array)``, whose
strided column views hash about ten times slower. Anything else (a file path, a sparse
matrix, ``None``) is recorded as ``opaque:<type>``, which no check accepts as proof.

Instrumentation patches process-global objects for the duration of one replay:
``lightgbm.train`` (which :mod:`diag_assets.core.training` reaches as ``lgb.train``, the same
module attribute), ``lightgbm.Dataset.__init__`` and the ``prep`` attribute of the recipe
instance, so a recipe that calls ``self.prep`` inside its loop is seen too. All three are
restored when the replay ends, also when it raises. Replays are serialized by a lock, and a
fit started by another thread during a replay would be recorded in its trace. Code that
imported ``train`` by name (``from lightgbm import train``) before the replay bypasses the
patch; G-C4b then sees no ``train_called`` and refuses to declare a seam.
"""

import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import xxhash
from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.capture import CaptureConfig, PreparedCell, prepare_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import FoldSpec
from diag_assets.core.hashing import TableHash, canonical_hash, combine_digests
from diag_assets.core.market_data import MarketDataSource
from diag_assets.core.prep import FoldData
from diag_assets.core.recipe import Recipe

GATE_C4 = "G-C4"
GATE_C4B = "G-C4b"
NO_SEAM = "no seam: back to design review, not an automatic single_fit"
OPAQUE_PREFIX = "opaque:"
_ARRAY_DOMAIN = "diag-invariance/array"
# Hashable numpy kinds: bool, integers, floats, complex, timedelta, datetime. An object
# array's bytes are pointers, which say nothing about its content.
_HASHABLE_KINDS = "biufcmM"
_SHOWN_COLUMNS = 8
_SHOWN_DIGEST = 16
_REPLAY_LOCK = threading.Lock()
_MISSING = object()


# --- the trace ------------------------------------------------------------------------------


class EventKind(StrEnum):
    """What happened at one point of a replay."""

    PREP_CALLED = "prep_called"
    TRIAL_STARTED = "trial_started"
    DATASET_BUILT = "dataset_built"
    TRAIN_CALLED = "train_called"


class TableDigest(BaseModel):
    """The canonical hash of a table: its digest, per-column digests and row count."""

    model_config = ConfigDict(frozen=True)

    digest: str
    columns: dict[str, str]
    rows: int

    @classmethod
    def of(cls, table: pd.DataFrame) -> "TableDigest":
        """Hash a table with :func:`~diag_assets.core.hashing.canonical_hash`."""
        hashed = canonical_hash(table)
        return cls(digest=hashed.digest, columns=dict(hashed.columns), rows=hashed.rows)

    def table_hash(self) -> TableHash:
        """The same hash as a :class:`TableHash`, to name diverging columns."""
        return TableHash(digest=self.digest, columns=dict(self.columns), rows=self.rows)


class XYDigest(BaseModel):
    """What a fold's X/y is, as hashes: X and y per column, and the train/validation split."""

    model_config = ConfigDict(frozen=True)

    x: TableDigest
    y: TableDigest
    n_train: int

    @classmethod
    def of(cls, data: FoldData) -> "XYDigest":
        """Hash a fold's X and y."""
        return cls(x=TableDigest.of(data.X), y=TableDigest.of(data.y), n_train=data.n_train)

    def diverging(self, other: "XYDigest") -> list[str]:
        """Name what differs from ``other``: X's columns, then ``"y"``, then ``"n_train"``.

        Args:
            other: The X/y to compare with.

        Returns:
            An empty list exactly when both X/y are the same.
        """
        names = self.x.table_hash().diverging_columns(other.x.table_hash())
        if not names and self.x.digest != other.x.digest:
            # Same column digests, different table: only the row count can differ (X with
            # no column at all), so the table as a whole is named.
            names.append("X")
        if self.y.digest != other.y.digest:
            names.append("y")
        if self.n_train != other.n_train:
            names.append("n_train")
        return names


class TraceEvent(BaseModel):
    """One event of a replay; hashes only (see the module docstring for each kind)."""

    model_config = ConfigDict(frozen=True)

    kind: EventKind
    trial: int | None = Field(
        default=None, description="Index of the most recent trial_started; None before it."
    )
    xy: XYDigest | None = Field(default=None, description="prep_called and trial_started.")
    forms: dict[str, str] = Field(
        default_factory=dict,
        description="prep_called: digests of the forms of the prep output LightGBM may get.",
    )
    data: str | None = Field(
        default=None,
        description="dataset_built: digest of its data; train_called: of the training set's "
        "raw data, None when LightGBM no longer holds it.",
    )
    label: str | None = Field(default=None, description="dataset_built: digest of its label.")
    reference: bool | None = Field(
        default=None, description="dataset_built: it references another Dataset."
    )


class ReplayTrace(BaseModel):
    """The ordered events of one instrumented replay of a cell."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    recipe: str
    recipe_version: str
    trials_requested: int
    trial_log_hash: str
    events: list[TraceEvent]

    def positions(self, kind: EventKind) -> list[int]:
        """0-based positions in :attr:`events` of the events of one kind."""
        return [position for position, event in enumerate(self.events) if event.kind is kind]

    def of_kind(self, kind: EventKind) -> list[TraceEvent]:
        """The events of one kind, in order."""
        return [event for event in self.events if event.kind is kind]


def data_digest(value: object) -> str:
    """Digest of data handed to LightGBM (see the module docstring for the scheme).

    Args:
        value: A DataFrame, numpy array, Series, list or anything else.

    Returns:
        ``table:<canonical digest>``, ``array:<digest>`` or ``opaque:<type name>``.
    """
    if isinstance(value, pd.DataFrame):
        try:
            return "table:" + canonical_hash(value).digest
        except (TypeError, ValueError):
            return f"{OPAQUE_PREFIX}DataFrame"
    array: object = value
    if isinstance(value, pd.Series):
        array = value.to_numpy()
    elif isinstance(value, list | tuple):
        try:
            array = np.asarray(value)
        except ValueError:
            return f"{OPAQUE_PREFIX}{type(value).__name__}"
    if isinstance(array, np.ndarray) and array.dtype.kind in _HASHABLE_KINDS:
        contiguous = np.ascontiguousarray(array)
        raw = xxhash.xxh3_128(contiguous.data).hexdigest()
        return "array:" + combine_digests(
            _ARRAY_DOMAIN, contiguous.dtype.str, repr(contiguous.shape), raw
        )
    return f"{OPAQUE_PREFIX}{type(value).__name__}"


def prep_forms(data: FoldData) -> dict[str, str]:
    """Digests of the prep output in every form a recipe may pass to ``lightgbm.Dataset``.

    Args:
        data: What prep returned.

    Returns:
        Digests of the ``FoldData.split()`` arrays (``x_train``, ``y_train``, ``x_val``,
        ``y_val``), of X and its train/validation row slices, and of the label column.
    """
    x_train, y_train, x_val, y_val = data.split()
    return {
        "x_train": data_digest(x_train),
        "y_train": data_digest(y_train),
        "x_val": data_digest(x_val),
        "y_val": data_digest(y_val),
        "X": data_digest(data.X),
        "X_train": data_digest(data.X.iloc[: data.n_train]),
        "X_val": data_digest(data.X.iloc[data.n_train :]),
        "label": data_digest(data.y["label"]),
    }


class _Recorder:
    """Collects the events of one replay."""

    def __init__(self) -> None:
        self.events: list[TraceEvent] = []
        self.trial: int | None = None

    def prep_called(self, data: FoldData) -> None:
        self.events.append(
            TraceEvent(
                kind=EventKind.PREP_CALLED,
                trial=self.trial,
                xy=XYDigest.of(data),
                forms=prep_forms(data),
            )
        )

    def trial_started(self, trial: int, data: FoldData) -> None:
        self.trial = trial
        self.events.append(
            TraceEvent(kind=EventKind.TRIAL_STARTED, trial=trial, xy=XYDigest.of(data))
        )

    def dataset_built(self, data: object, label: object, reference: object) -> None:
        self.events.append(
            TraceEvent(
                kind=EventKind.DATASET_BUILT,
                trial=self.trial,
                data=data_digest(data),
                label=None if label is None else data_digest(label),
                reference=reference is not None,
            )
        )

    def train_called(self, train_set: object) -> None:
        # The label is left out on purpose: once a Dataset is constructed LightGBM replaces
        # it by a float32 copy, so its digest would not be comparable; dataset_built has it.
        raw = getattr(train_set, "data", None)
        self.events.append(
            TraceEvent(
                kind=EventKind.TRAIN_CALLED,
                trial=self.trial,
                data=None if raw is None else data_digest(raw),
            )
        )


def _swap(owner: object, name: str, replacement: object) -> Callable[[], None]:
    """Set ``owner.name`` and return the function that puts back exactly what was there."""
    own = vars(owner).get(name, _MISSING)
    setattr(owner, name, replacement)

    def restore() -> None:
        if own is _MISSING:
            # The attribute came from the class: removing ours uncovers it again.
            delattr(owner, name)
        else:
            setattr(owner, name, own)

    return restore


def _arguments(signature: inspect.Signature, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    try:
        return dict(signature.bind(*args, **kwargs).arguments)
    except TypeError:
        # The call itself is wrong; the original raises the proper error, nothing to record.
        return None


@contextmanager
def _instrumented(recipe: Recipe, recorder: _Recorder) -> Iterator[None]:
    """Record prep, Dataset and train calls while the block runs; always restore them."""
    original_prep = recipe.prep
    original_init = lightgbm.Dataset.__init__
    original_train = lightgbm.train
    init_signature = inspect.signature(original_init)
    train_signature = inspect.signature(original_train)

    @functools.wraps(original_prep)
    def recording_prep(*args: Any, **kwargs: Any) -> Any:
        data = original_prep(*args, **kwargs)
        recorder.prep_called(data)
        return data

    @functools.wraps(original_init)
    def recording_init(dataset: Any, *args: Any, **kwargs: Any) -> None:
        arguments = _arguments(init_signature, dataset, *args, **kwargs)
        if arguments is not None:
            recorder.dataset_built(
                arguments.get("data"), arguments.get("label"), arguments.get("reference")
            )
        original_init(dataset, *args, **kwargs)

    @functools.wraps(original_train)
    def recording_train(*args: Any, **kwargs: Any) -> Any:
        arguments = _arguments(train_signature, *args, **kwargs)
        if arguments is not None:
            recorder.train_called(arguments.get("train_set"))
        return original_train(*args, **kwargs)

    restores: list[Callable[[], None]] = []
    try:
        try:
            restores.append(_swap(recipe, "prep", recording_prep))
        except (AttributeError, TypeError) as error:
            raise DiagInputError(
                f"Recipe {recipe.name!r} ({type(recipe).__name__}) cannot be instrumented: "
                f"its prep cannot be replaced on the instance ({error}).",
                "give the recipe class a __dict__ (no __slots__, not frozen) so the replay "
                "can record every prep call.",
            ) from error
        restores.append(_swap(lightgbm.Dataset, "__init__", recording_init))
        restores.append(_swap(lightgbm, "train", recording_train))
        yield
    finally:
        for restore in reversed(restores):
            restore()


def instrumented_replay(prepared: PreparedCell, recipe: Recipe) -> ReplayTrace:
    """Replay a cell like ``replay_cell`` (prep, then the trial loop), recording a trace.

    Nothing is written and no X/y is kept: the trace holds hashes only. The patches are
    process-global (see the module docstring); replays in one process run one at a time.

    Args:
        prepared: The cell, from :func:`~diag_assets.core.capture.prepare_cell`.
        recipe: The recipe to replay; its ``prep`` is patched on the instance meanwhile.

    Returns:
        The ordered events of the replay.

    Raises:
        DiagInputError: The recipe's ``prep`` cannot be replaced on the instance.
    """
    recorder = _Recorder()
    with _REPLAY_LOCK, _instrumented(recipe, recorder):
        data = recipe.prep(prepared.window, prepared.fold)
        trial_log = recipe.run_trials(data, prepared.config.trials, recorder.trial_started)
    return ReplayTrace(
        cell_ref=str(prepared.cell),
        recipe=recipe.name,
        recipe_version=prepared.recipe_version,
        trials_requested=prepared.config.trials.n_trials,
        trial_log_hash=trial_log.content_hash(),
        events=recorder.events,
    )


# --- report helpers -------------------------------------------------------------------------


def _names(columns: Sequence[str]) -> str:
    shown = ", ".join(columns[:_SHOWN_COLUMNS])
    hidden = len(columns) - _SHOWN_COLUMNS
    return f"{shown} and {hidden} more" if hidden > 0 else shown


def _short(digest: str | None) -> str:
    return "-" if digest is None else digest[:_SHOWN_DIGEST]


def _positions(positions: Sequence[int]) -> str:
    return ", ".join(str(position) for position in positions)


def _markdown(
    title: str, decision: str, reasons: Sequence[str], figures: Sequence[tuple[str, str]]
) -> list[str]:
    lines = [f"## {title}: **{decision}**", ""]
    lines.extend(f"- {reason}" for reason in reasons)
    lines.extend(["", "| figure | value |", "|---|---|"])
    lines.extend(f"| {name} | {value} |" for name, value in figures)
    return lines


# --- G-C4 -----------------------------------------------------------------------------------


class C4Decision(StrEnum):
    """G-C4's outcome: X/y is trial-invariant on every fold, or it is not."""

    PASS = "PASS"
    STOP = "STOP"


class StructuralRule(StrEnum):
    """G-C4 (a): the structural rules a fold's trace must satisfy."""

    PREP_ONCE = "prep_once"
    PREP_BEFORE_TRIALS = "prep_before_trials"
    TRIALS_RECEIVE_PREP_OUTPUT = "trials_receive_prep_output"
    EVERY_TRIAL_OBSERVED = "every_trial_observed"


RULE_TEXT: dict[StructuralRule, str] = {
    StructuralRule.PREP_ONCE: "prep runs exactly once",
    StructuralRule.PREP_BEFORE_TRIALS: "prep returns before the first trial starts",
    StructuralRule.TRIALS_RECEIVE_PREP_OUTPUT: "every trial receives the prep output's X/y",
    StructuralRule.EVERY_TRIAL_OBSERVED: "the trial observer sees every requested trial",
}


class Divergence(BaseModel):
    """A trial whose X/y differs from a baseline, and what differs."""

    model_config = ConfigDict(frozen=True)

    trial: int
    baseline: str = Field(description="'trial 0' or 'the prep output'.")
    columns: list[str] = Field(description="X's diverging columns, then 'y' and 'n_train'.")


class FoldInvariance(BaseModel):
    """G-C4 on one fold."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    recipe: str
    prep_calls: int
    trials: int
    trials_requested: int
    x_digest: str | None = Field(description="Canonical digest of the prep output's X.")
    y_digest: str | None = Field(description="Canonical digest of the prep output's y.")
    failed_rules: list[StructuralRule]
    findings: list[str] = Field(description="One sentence per failed rule or divergence.")
    prep_divergence: Divergence | None = Field(
        description="The first trial whose X/y differs from the prep output."
    )
    trial_divergence: Divergence | None = Field(
        description="The first trial whose X/y differs from trial 0's."
    )
    structural_ok: bool
    empirical_ok: bool

    @property
    def passed(self) -> bool:
        """Both checks passed."""
        return self.structural_ok and self.empirical_ok


class StopPoint(BaseModel):
    """Where G-C4 stopped: the first failing fold, its diverging trial and columns."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    trial: int | None
    columns: list[str]
    failed_rules: list[StructuralRule]


class C4Figures(BaseModel):
    """The numbers behind G-C4."""

    model_config = ConfigDict(frozen=True)

    folds: int
    trials_per_fold: dict[str, int]
    prep_calls_per_fold: dict[str, int]


class C4Report(BaseModel):
    """G-C4, trial invariance over K folds."""

    model_config = ConfigDict(frozen=True)

    gate: str = GATE_C4
    decision: C4Decision
    reasons: list[str]
    figures: C4Figures
    folds: list[FoldInvariance]
    stop: StopPoint | None

    def markdown(self) -> str:
        """The report as Markdown: decision, reasons, figures and one row per fold."""
        prep_calls = self.figures.prep_calls_per_fold
        figures = [
            ("folds", str(self.figures.folds)),
            *(
                (f"trials / prep calls, {cell}", f"{trials} / {prep_calls[cell]}")
                for cell, trials in self.figures.trials_per_fold.items()
            ),
        ]
        lines = _markdown(f"{self.gate} trial invariance", self.decision, self.reasons, figures)
        lines.extend(
            [
                "",
                "| fold | prep calls | trials | structural | empirical | first divergence |",
                "|---|---|---|---|---|---|",
            ]
        )
        for fold in self.folds:
            divergence = fold.trial_divergence or fold.prep_divergence
            where = (
                "-"
                if divergence is None
                else f"trial {divergence.trial}: {_names(divergence.columns)}"
            )
            structural = "ok" if fold.structural_ok else ", ".join(fold.failed_rules)
            lines.append(
                f"| {fold.cell_ref} | {fold.prep_calls} | {fold.trials}/{fold.trials_requested} "
                f"| {structural} | {'ok' if fold.empirical_ok else 'diverges'} | {where} |"
            )
        return "\n".join(lines) + "\n"


def _first_divergence(
    baseline: XYDigest, events: Sequence[TraceEvent], label: str
) -> Divergence | None:
    for event in events:
        if event.xy is None or event.trial is None:
            continue
        columns = baseline.diverging(event.xy)
        if columns:
            return Divergence(trial=event.trial, baseline=label, columns=columns)
    return None


def check_fold(cell_ref: str, trace: ReplayTrace) -> FoldInvariance:
    """G-C4's two checks on one fold's trace.

    Args:
        cell_ref: The fold's cell.
        trace: Its instrumented replay.

    Returns:
        Which structural rules failed and the first diverging trial, if any.
    """
    prep_positions = trace.positions(EventKind.PREP_CALLED)
    trial_positions = trace.positions(EventKind.TRIAL_STARTED)
    trials = [trace.events[position] for position in trial_positions]
    prep = trace.events[prep_positions[0]] if prep_positions else None
    failed: list[StructuralRule] = []
    findings: list[str] = []

    if len(prep_positions) != 1:
        failed.append(StructuralRule.PREP_ONCE)
        findings.append(
            f"{cell_ref}: prep ran {len(prep_positions)} times; the rule "
            f"'{RULE_TEXT[StructuralRule.PREP_ONCE]}' failed."
        )
    first_trial = trial_positions[0] if trial_positions else None
    late = [p for p in prep_positions if first_trial is not None and p > first_trial]
    if not prep_positions or late:
        failed.append(StructuralRule.PREP_BEFORE_TRIALS)
        detail = (
            "prep never ran"
            if not prep_positions
            else f"prep ran at trace position(s) {_positions(late)}, after trial "
            f"{trials[0].trial} started at position {first_trial}"
        )
        findings.append(
            f"{cell_ref}: {detail}; the rule "
            f"'{RULE_TEXT[StructuralRule.PREP_BEFORE_TRIALS]}' failed."
        )
    if not trials or len(trials) != trace.trials_requested:
        failed.append(StructuralRule.EVERY_TRIAL_OBSERVED)
        findings.append(
            f"{cell_ref}: the trial observer saw {len(trials)} of the {trace.trials_requested} "
            f"requested trials; the rule '{RULE_TEXT[StructuralRule.EVERY_TRIAL_OBSERVED]}' "
            "failed, so the unseen trials' X/y are unproven."
        )
    prep_divergence = None
    if prep is not None and prep.xy is not None:
        prep_divergence = _first_divergence(prep.xy, trials, "the prep output")
        if prep_divergence is not None:
            failed.append(StructuralRule.TRIALS_RECEIVE_PREP_OUTPUT)
            findings.append(
                f"{cell_ref}: trial {prep_divergence.trial} received X/y that differ from the "
                f"prep output in {_names(prep_divergence.columns)}; the rule "
                f"'{RULE_TEXT[StructuralRule.TRIALS_RECEIVE_PREP_OUTPUT]}' failed."
            )
    trial_divergence = None
    if trials and trials[0].xy is not None:
        trial_divergence = _first_divergence(trials[0].xy, trials[1:], f"trial {trials[0].trial}")
        if trial_divergence is not None:
            findings.append(
                f"{cell_ref}: trial {trial_divergence.trial} received X/y that differ from "
                f"{trial_divergence.baseline}'s in {_names(trial_divergence.columns)} "
                "(per-column canonical hashes)."
            )
    return FoldInvariance(
        cell_ref=cell_ref,
        recipe=trace.recipe,
        prep_calls=len(prep_positions),
        trials=len(trials),
        trials_requested=trace.trials_requested,
        x_digest=None if prep is None or prep.xy is None else prep.xy.x.digest,
        y_digest=None if prep is None or prep.xy is None else prep.xy.y.digest,
        failed_rules=failed,
        findings=findings,
        prep_divergence=prep_divergence,
        trial_divergence=trial_divergence,
        structural_ok=not failed,
        empirical_ok=bool(trials) and trial_divergence is None,
    )


def gate_c4(traces: Sequence[tuple[str, ReplayTrace]]) -> C4Report:
    """G-C4: on K folds, is every trial's X/y the same, by construction and by hash?

    (a) Structural, per fold: prep ran exactly once, returned before the first trial started,
    the observer saw every requested trial, and every trial received the prep output's X/y.
    (b) Empirical, per fold: every trial's per-column canonical hashes equal trial 0's.

    Args:
        traces: ``(cell_ref, trace)`` per fold, from :func:`instrumented_replay`.

    Returns:
        PASS when every fold passes both checks; STOP otherwise (also on zero folds), naming
        the first failing fold, its diverging trial and columns, and the failed rules.
    """
    folds = [check_fold(cell_ref, trace) for cell_ref, trace in traces]
    figures = C4Figures(
        folds=len(folds),
        trials_per_fold={fold.cell_ref: fold.trials for fold in folds},
        prep_calls_per_fold={fold.cell_ref: fold.prep_calls for fold in folds},
    )
    failing = [fold for fold in folds if not fold.passed]
    if not folds:
        return C4Report(
            decision=C4Decision.STOP,
            reasons=["G-C4 ran on 0 folds, so nothing is proven; run it on K >= 1 folds."],
            figures=figures,
            folds=[],
            stop=None,
        )
    if not failing:
        reasons = [
            f"All {len(folds)} folds pass both checks: in each, prep ran once and returned "
            "before trial 0, and every trial's per-column X/y hashes equal the prep output's "
            "and trial 0's."
        ]
        reasons.extend(
            f"{fold.cell_ref}: {fold.trials} of {fold.trials_requested} trials received X "
            f"{_short(fold.x_digest)} / y {_short(fold.y_digest)}, the prep output."
            for fold in folds
        )
        reasons.append(
            "X/y is trial-invariant on these folds, so dataset_only is sound for this recipe; "
            "G-C4b decides whether it is reachable."
        )
        return C4Report(
            decision=C4Decision.PASS, reasons=reasons, figures=figures, folds=folds, stop=None
        )

    first = failing[0]
    divergence = first.trial_divergence or first.prep_divergence
    stop = StopPoint(
        cell_ref=first.cell_ref,
        trial=None if divergence is None else divergence.trial,
        columns=[] if divergence is None else divergence.columns,
        failed_rules=first.failed_rules,
    )
    headline = f"STOP at fold {first.cell_ref}, the first of {len(failing)} failing fold(s)"
    if divergence is not None:
        headline += (
            f": trial {divergence.trial} received X/y different from {divergence.baseline} "
            f"in {_names(divergence.columns)}"
        )
    if first.failed_rules:
        rules = "; ".join(f"'{RULE_TEXT[rule]}'" for rule in first.failed_rules)
        headline += f"; structural rule(s) failed: {rules}"
    reasons = [headline + "."]
    for fold in failing:
        reasons.extend(fold.findings)
    reasons.append(
        "X/y is not proven trial-invariant: dataset_only is not sound for this recipe until "
        "the divergence is explained."
    )
    return C4Report(
        decision=C4Decision.STOP, reasons=reasons, figures=figures, folds=folds, stop=stop
    )


def run_gate_c4(
    cells: Sequence[CellRef],
    source: MarketDataSource,
    fold_spec: FoldSpec,
    recipe: Recipe,
    config: CaptureConfig,
) -> C4Report:
    """Replay each cell under instrumentation and run G-C4 on the traces.

    Args:
        cells: The K folds (cells) to check.
        source: Their market data.
        fold_spec: The fold layout.
        recipe: The recipe to check.
        config: The trial settings of the replays.

    Returns:
        The G-C4 report.
    """
    traces = []
    for cell in cells:
        prepared = prepare_cell(cell, source, fold_spec, recipe, config)
        traces.append((str(cell), instrumented_replay(prepared, recipe)))
    return gate_c4(traces)


# --- G-C4b ----------------------------------------------------------------------------------


class SeamDecision(StrEnum):
    """G-C4b's outcome; never single_fit, which is a design decision, not a fallback."""

    SEAM = "SEAM"
    DESIGN_REVIEW_REQUIRED = "DESIGN_REVIEW_REQUIRED"


class SeamRule(StrEnum):
    """What a clean prep/train seam requires of a trace."""

    PREP_ONCE = "prep_once"
    TRAIN_OBSERVED = "train_observed"
    PREP_BEFORE_TRAIN = "prep_before_train"
    XY_FINAL = "xy_final"
    DATASETS_FROM_PREP = "datasets_from_prep"
    DATASETS_TRIAL_INVARIANT = "datasets_trial_invariant"


SEAM_RULE_TEXT: dict[SeamRule, str] = {
    SeamRule.PREP_ONCE: "prep runs exactly once",
    SeamRule.TRAIN_OBSERVED: "at least one lightgbm.train call is observed",
    SeamRule.PREP_BEFORE_TRAIN: "prep returns before the first Dataset and lightgbm.train call",
    SeamRule.XY_FINAL: "the X/y hash is final when prep returns",
    SeamRule.DATASETS_FROM_PREP: "every Dataset is built from the prep output",
    SeamRule.DATASETS_TRIAL_INVARIANT: "the Datasets' data does not change across trials",
}


class C4bFigures(BaseModel):
    """The numbers behind G-C4b; positions are 0-based indexes into the trace's events."""

    model_config = ConfigDict(frozen=True)

    prep_calls: int
    prep_position: int | None
    first_dataset_position: int | None
    first_train_position: int | None
    datasets_built: int
    train_calls: int
    distinct_dataset_hashes: int


class C4bReport(BaseModel):
    """G-C4b, the prep/train seam of one replay."""

    model_config = ConfigDict(frozen=True)

    gate: str = GATE_C4B
    cell_ref: str
    recipe: str
    decision: SeamDecision
    reasons: list[str]
    figures: C4bFigures
    failed_rules: list[SeamRule]

    def markdown(self) -> str:
        """The report as Markdown: decision, reasons and figures."""
        figures = [
            (name, "-" if value is None else str(value))
            for name, value in self.figures.model_dump().items()
        ]
        title = f"{self.gate} prep/train seam, {self.cell_ref} ({self.recipe})"
        return "\n".join(_markdown(title, self.decision, self.reasons, figures)) + "\n"


def _untraceable_dataset(trace: ReplayTrace, forms: set[str]) -> tuple[int, TraceEvent, str] | None:
    """The first Dataset or train call whose data or label is not a form of the prep output."""
    for position, event in enumerate(trace.events):
        if event.kind is EventKind.DATASET_BUILT:
            for what, digest in (("data", event.data), ("label", event.label)):
                if digest is None or digest not in forms:
                    return position, event, what
        elif event.kind is EventKind.TRAIN_CALLED and event.data not in (None, *forms):
            return position, event, "data"
    return None


def _trial_signatures(trace: ReplayTrace) -> dict[int, frozenset[tuple[str, str, str]]]:
    """Per trial, the (kind, data, label) digests of the Datasets built and fits run in it."""
    signatures: dict[int, set[tuple[str, str, str]]] = {}
    for event in trace.events:
        if event.trial is None or event.kind not in (
            EventKind.DATASET_BUILT,
            EventKind.TRAIN_CALLED,
        ):
            continue
        if event.kind is EventKind.TRAIN_CALLED and event.data is None:
            continue
        signatures.setdefault(event.trial, set()).add(
            (event.kind.value, event.data or "", event.label or "")
        )
    return {trial: frozenset(signature) for trial, signature in signatures.items()}


def gate_c4b(trace: ReplayTrace) -> C4bReport:
    """G-C4b: is X/y fully materialized, its hash final, before the first ``lightgbm.train``?

    A seam requires: prep ran exactly once; at least one ``lightgbm.train`` call was seen;
    prep returned before the first Dataset was built and before the first train call; every
    trial received X/y equal to the prep output; every Dataset's data and label (and every
    training set's raw data still held at ``train`` time) is a form of the prep output; and
    the Datasets each trial builds are the same in every trial.

    The decision is SEAM (``dataset_only`` is reachable) or DESIGN_REVIEW_REQUIRED. It never
    selects ``single_fit``: without a seam the recipe goes back to design review, because a
    single fit can still trigger training side effects; it is not an automatic fallback.

    Args:
        trace: One instrumented replay.

    Returns:
        The G-C4b report.
    """
    events = trace.events
    prep_positions = trace.positions(EventKind.PREP_CALLED)
    dataset_positions = trace.positions(EventKind.DATASET_BUILT)
    train_positions = trace.positions(EventKind.TRAIN_CALLED)
    prep = events[prep_positions[0]] if prep_positions else None
    figures = C4bFigures(
        prep_calls=len(prep_positions),
        prep_position=prep_positions[0] if prep_positions else None,
        first_dataset_position=dataset_positions[0] if dataset_positions else None,
        first_train_position=train_positions[0] if train_positions else None,
        datasets_built=len(dataset_positions),
        train_calls=len(train_positions),
        distinct_dataset_hashes=len({events[p].data for p in dataset_positions}),
    )
    failed: list[SeamRule] = []
    findings: list[str] = []

    def fail(rule: SeamRule, detail: str) -> None:
        failed.append(rule)
        findings.append(f"{detail}; the rule '{SEAM_RULE_TEXT[rule]}' failed.")

    if len(prep_positions) != 1:
        fail(SeamRule.PREP_ONCE, f"Prep ran {len(prep_positions)} times")
    if not train_positions:
        fail(
            SeamRule.TRAIN_OBSERVED,
            "No lightgbm.train call was observed, so the training cannot be located",
        )
    first_use = min(dataset_positions[:1] + train_positions[:1], default=None)
    late = [p for p in prep_positions if first_use is not None and p > first_use]
    if not prep_positions or late:
        detail = (
            "Prep never ran"
            if not prep_positions
            else f"Prep ran at trace position(s) {_positions(late)}, after the first Dataset "
            f"(position {figures.first_dataset_position}) or lightgbm.train call (position "
            f"{figures.first_train_position})"
        )
        fail(SeamRule.PREP_BEFORE_TRAIN, detail)
    if prep is not None and prep.xy is not None:
        divergence = _first_divergence(
            prep.xy, trace.of_kind(EventKind.TRIAL_STARTED), "the prep output"
        )
        if divergence is not None:
            fail(
                SeamRule.XY_FINAL,
                f"Trial {divergence.trial} received X/y that differ from the prep output in "
                f"{_names(divergence.columns)}",
            )
    untraceable = _untraceable_dataset(trace, set(prep.forms.values()) if prep else set())
    if untraceable is not None:
        position, event, what = untraceable
        digest = event.data if what == "data" else event.label
        name = "Dataset" if event.kind is EventKind.DATASET_BUILT else "lightgbm.train call"
        fail(
            SeamRule.DATASETS_FROM_PREP,
            f"The {name} at trace position {position} (trial {event.trial}) got {what} "
            f"{_short(digest)}, which is none of the prep output's forms (X, its train or "
            "validation rows, the FoldData.split() arrays, the label column)",
        )
    signatures = _trial_signatures(trace)
    if signatures:
        first_trial = min(signatures)
        changed = [t for t in sorted(signatures) if signatures[t] != signatures[first_trial]]
        if changed:
            fail(
                SeamRule.DATASETS_TRIAL_INVARIANT,
                f"Trial {changed[0]} built its Datasets from data other than trial "
                f"{first_trial}'s ({figures.distinct_dataset_hashes} distinct Dataset data "
                f"hashes over {figures.datasets_built} Datasets)",
            )

    if not failed:
        reasons = [
            f"Prep ran once and returned at trace position {figures.prep_position}, before the "
            f"first Dataset (position {figures.first_dataset_position}) and the first "
            f"lightgbm.train call (position {figures.first_train_position}).",
            f"All {figures.datasets_built} Datasets of the {figures.train_calls} fits were "
            f"built from the prep output ({figures.distinct_dataset_hashes} distinct data "
            "hashes), the same in every trial, and every trial's X/y hash equals the prep "
            "output's.",
            "dataset_only is reachable: X/y can be captured at the seam without training; "
            "whether it is sound is G-C4's decision.",
        ]
        decision = SeamDecision.SEAM
    else:
        reasons = [
            *findings,
            f"{NO_SEAM} (a single fit can still trigger training side effects, so it is a "
            "design decision, never a fallback).",
        ]
        decision = SeamDecision.DESIGN_REVIEW_REQUIRED
    return C4bReport(
        cell_ref=trace.cell_ref,
        recipe=trace.recipe,
        decision=decision,
        reasons=reasons,
        figures=figures,
        failed_rules=failed,
    )
