"""The trace of a replay, and the instrumentation that records it.

A :class:`ReplayTrace` is recorded by :func:`tracing` while a recipe replays one cell (prep,
then the trial loop). Every full_replay capture stores the trace of the replay that made it,
so trial invariance and the prep/train seam (:mod:`diag_assets.core.gates`) can be judged
from the capture cache without replaying again. The trace is an ordered list of events and
holds hashes only, never a frame or an array:

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
``lightgbm.train`` (which :mod:`diag_assets.core.recipe.training` reaches as ``lgb.train``, the same
module attribute), ``lightgbm.Dataset.__init__`` and the ``prep`` attribute of the recipe
instance, so a recipe that calls ``self.prep`` inside its loop is seen too. All three are
restored when the replay ends, also when it raises. Replays are serialized by a lock, and a
fit started by another thread during a replay would be recorded in its trace. Code that
imported ``train`` by name (``from lightgbm import train``) before the replay bypasses the
patch; the seam gate then sees no ``train_called`` and refuses to declare a seam.
"""

import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
import xxhash
from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.errors import DiagInputError
from diag_assets.core.hashing.digests import combine_digests
from diag_assets.core.hashing.table import TableHash, canonical_hash
from diag_assets.core.recipe.prep import FoldData
from diag_assets.core.recipe.protocol import Recipe, TrialLog

OPAQUE_PREFIX = "opaque:"
_ARRAY_DOMAIN = "diag-invariance/array"
# Hashable numpy kinds: bool, integers, floats, complex, timedelta, datetime. An object
# array's bytes are pointers, which say nothing about its content.
_HASHABLE_KINDS = "biufcmM"
_REPLAY_LOCK = threading.Lock()
_MISSING = object()


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
        """Hash a table with :func:`~diag_assets.core.hashing.table.canonical_hash`."""
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

    def __init__(self, recipe: str) -> None:
        self.recipe = recipe
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
    import lightgbm  # imported when a replay is traced, not when the code location loads

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


class Tracer:
    """The recording side of :func:`tracing`: hand :meth:`trial_started` to the trial loop."""

    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder

    def trial_started(self, trial: int, data: FoldData) -> None:
        """The trial observer: records the X/y each trial receives."""
        self._recorder.trial_started(trial, data)

    def trace(
        self, *, cell_ref: str, recipe_version: str, trials_requested: int, trial_log: TrialLog
    ) -> ReplayTrace:
        """The events recorded so far, for the replay that produced ``trial_log``."""
        return ReplayTrace(
            cell_ref=cell_ref,
            recipe=self._recorder.recipe,
            recipe_version=recipe_version,
            trials_requested=trials_requested,
            trial_log_hash=trial_log.content_hash(),
            events=list(self._recorder.events),
        )


@contextmanager
def tracing(recipe: Recipe) -> Iterator[Tracer]:
    """Record prep, Dataset and train calls of the replay run inside the block.

    The patches are process-global (see the module docstring); traced replays in one process
    run one at a time.

    Raises:
        DiagInputError: The recipe's ``prep`` cannot be replaced on the instance.
    """
    recorder = _Recorder(recipe.name)
    with _REPLAY_LOCK, _instrumented(recipe, recorder):
        yield Tracer(recorder)
