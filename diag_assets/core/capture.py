"""Captured folds: replay a cell's recipe, store its X/y and trial log, load them verified.

Where things are decided:

- :func:`capture_key` — the hash of everything a capture depends on, the mode included;
- :func:`replay_cell` — runs the capture mode: prep and the trial loop (``full_replay``),
  prep alone (``dataset_only``) or prep and one trial (``single_fit``);
- :class:`CaptureArtifacts` — writes a capture (data files first, ``manifest.json`` last, so
  a capture without a manifest is never visible) and reads one back, verifying the bytes of
  every file and the canonical hashes of X and y before handing them out.

Artifacts are Parquet and JSON, never pickle: a shared cache must not run code on load.
"""

import io
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import lightgbm
import pandas as pd
import pyarrow
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import Fold, FoldSpec, make_fold
from diag_assets.core.hashing import bytes_digest, canonical_hash, combine_digests, hash_json
from diag_assets.core.market_data import MarketDataSource
from diag_assets.core.prep import FoldData
from diag_assets.core.recipe import Recipe, TrialLog, TrialSettings, recipe_code_version
from diag_assets.core.replay_trace import ReplayTrace, tracing
from diag_assets.core.store import BlobStore

# Version 2 added the capture modes and the replay trace; it is part of the capture key, so
# a capture written under another schema is never served.
MANIFEST_SCHEMA_VERSION = 2
X_FILE, Y_FILE, TRIAL_LOG_FILE, TRACE_FILE, MANIFEST_FILE = (
    "X.parquet",
    "y.parquet",
    "trial_log.json",
    "replay_trace.json",
    "manifest.json",
)


class CaptureMode(StrEnum):
    """How much of the fine-tune a capture replays (Lever #3).

    - ``full_replay``: prep and every trial; any diagnostic may read it;
    - ``dataset_only``: prep until X/y exist, no training; ``xy_only`` readers only;
    - ``single_fit``: prep and one trial; explicit opt-in only, ``xy_only`` readers only.
    """

    FULL_REPLAY = "full_replay"
    DATASET_ONLY = "dataset_only"
    SINGLE_FIT = "single_fit"


# What each mode stores; a capture listing other files is not one of ours.
MODE_FILES: dict[CaptureMode, frozenset[str]] = {
    CaptureMode.FULL_REPLAY: frozenset({X_FILE, Y_FILE, TRIAL_LOG_FILE, TRACE_FILE}),
    CaptureMode.DATASET_ONLY: frozenset({X_FILE, Y_FILE}),
    CaptureMode.SINGLE_FIT: frozenset({X_FILE, Y_FILE, TRIAL_LOG_FILE}),
}


class CaptureConfig(BaseModel):
    """What a capture run is asked to do; all of it is part of the capture key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: CaptureMode = CaptureMode.FULL_REPLAY
    trials: TrialSettings = Field(default_factory=TrialSettings)

    def with_mode(self, mode: CaptureMode) -> "CaptureConfig":
        """The same request in another mode."""
        return self.model_copy(update={"mode": CaptureMode(mode)})


class CaptureVerificationError(RuntimeError):
    """A stored capture does not match its manifest: its bytes must not be used."""


def library_versions() -> dict[str, str]:
    """major.minor of the libraries whose behaviour shapes a capture."""

    def major_minor(version: str) -> str:
        return ".".join(version.split(".")[:2])

    return {
        "lightgbm": major_minor(lightgbm.__version__),
        "pandas": major_minor(pd.__version__),
        "pyarrow": major_minor(pyarrow.__version__),
    }


def _request_payload(
    cell: CellRef, recipe_version: str, fold_spec: FoldSpec, config: CaptureConfig
) -> dict[str, object]:
    return {
        "capture_schema": MANIFEST_SCHEMA_VERSION,
        "cell_ref": str(cell),
        "recipe_version": recipe_version,
        "fold_spec": vars(fold_spec),
        "config": config.model_dump(mode="json"),
        "libraries": library_versions(),
    }


def request_key(
    cell: CellRef, recipe_version: str, fold_spec: FoldSpec, config: CaptureConfig
) -> str:
    """What an audit asks for: the capture key's inputs minus the source data version.

    A warm re-audit finds its capture by this key without reading the market data; the drift
    policy decides when the source is re-hashed to check the capture still matches it.
    """
    return "rk-" + hash_json(_request_payload(cell, recipe_version, fold_spec, config))


def capture_key(
    cell: CellRef,
    source_version: str,
    recipe_version: str,
    fold_spec: FoldSpec,
    config: CaptureConfig,
) -> str:
    """One hash over everything a capture depends on; any change gives a new key.

    Inputs: the manifest schema, the cell, the canonical hash of the bar window the fold uses,
    the recipe's code version, the fold layout, the capture config (mode, trials, seeds) and
    the major.minor versions of lightgbm, pandas and pyarrow. Dagster does not fold run config
    into data versions on its own, so the key carries it.
    """
    payload = _request_payload(cell, recipe_version, fold_spec, config)
    return "ck-" + hash_json({**payload, "source_version": source_version})


class FileEntry(BaseModel):
    """One stored file of a capture."""

    bytes: int
    digest: str


class ParityCheck(BaseModel):
    """A dataset_only capture's invariance assertion (the plan's C8.7).

    An independent full replay of one trial (its own prep, then trial 0): the X/y that trial
    trained on must have the canonical hashes of the captured X/y.
    """

    model_config = ConfigDict(frozen=True)

    trial: int
    x_hash: str
    y_hash: str
    n_train: int
    matches: bool
    elapsed_s: float


class CaptureParityFailed(RuntimeError):
    """A dataset_only capture's X/y differ from what a full replay trains on."""

    code = "CAPTURE_PARITY_FAILED"

    def __init__(self, cell_ref: str, check: ParityCheck, x_hash: str, y_hash: str) -> None:
        self.check = check
        super().__init__(
            f"{self.code}: {cell_ref}: the dataset_only X/y (X {x_hash[:16]}, y {y_hash[:16]}) "
            f"differ from what full_replay trial {check.trial} trained on (X "
            f"{check.x_hash[:16]}, y {check.y_hash[:16]}, n_train {check.n_train}). The capture "
            "is not stored. dataset_only is unsound for this recipe until this is explained: "
            "audit with capture_mode full_replay and re-run the release parity gate."
        )


class CaptureManifest(BaseModel):
    """Everything known about one stored capture; written last, read first.

    The trial fields are empty for ``dataset_only`` (nothing was trained); ``single_fit``
    has one trial.
    """

    model_config = ConfigDict(frozen=True)

    schema_version: int = MANIFEST_SCHEMA_VERSION
    capture_key: str
    cell_ref: str
    mode: CaptureMode
    recipe: str
    recipe_version: str
    config: CaptureConfig
    fold_spec: dict[str, int]
    fold: dict[str, int]
    source: str
    source_version: str
    window_first: str
    window_last: str
    window_bars: int
    rows: int
    n_train: int
    feature_names: list[str]
    label_balance_train: float
    label_balance_validation: float
    x_hash: str
    y_hash: str
    trial_log_hash: str | None
    content_hash: str
    n_trials: int
    best_trial: int | None
    best_iter: int | None
    best_score: float | None
    parity: ParityCheck | None = None
    prep_s: float
    trials_s: float
    elapsed_s: float
    files: dict[str, FileEntry]
    libraries: dict[str, str]
    created_at: str

    @property
    def total_bytes(self) -> int:
        """Bytes of the stored files, manifest excluded."""
        return sum(entry.bytes for entry in self.files.values())


@dataclass(frozen=True)
class PreparedCell:
    """A cell whose inputs passed every check, ready to replay; nothing has been trained."""

    cell: CellRef
    fold: Fold
    fold_spec: FoldSpec
    window: pd.DataFrame
    source: str
    source_version: str
    recipe_version: str
    config: CaptureConfig
    key: str


@dataclass(frozen=True)
class CapturedFold:
    """A replayed fold in memory: its X/y, trial log (none for dataset_only) and manifest.

    ``trace`` is the replay's trace when one was recorded (full_replay captures).
    """

    data: FoldData
    trial_log: TrialLog | None
    manifest: CaptureManifest
    trace: ReplayTrace | None = None

    @property
    def mode(self) -> CaptureMode:
        """The capture's mode."""
        return self.manifest.mode


def prepare_cell(
    cell: CellRef,
    source: MarketDataSource,
    fold_spec: FoldSpec,
    recipe: Recipe,
    config: CaptureConfig,
) -> PreparedCell:
    """Check the cell against its source and cut its window; cheap, trains nothing.

    Raises:
        DiagInputError: unknown universe or symbol, history too short for the fold, or bars
            that fail validation (duplicate timestamps, all-NaN columns, ...).
    """
    if cell.universe != source.universe:
        raise DiagInputError(
            f"Cell {cell} belongs to universe {cell.universe!r}, but the market data source "
            f"serves {source.universe!r}.",
            f"audit a cell of {source.universe!r} or point the market data at that universe.",
        )
    bars = source.load(cell.symbol)
    fold = make_fold(fold_spec, cell.fold, len(bars.frame), what=f"{cell.symbol} ({bars.source})")
    window = bars.frame.iloc[: fold.window_end].reset_index(drop=True)
    source_version = canonical_hash(window).digest
    version = recipe_code_version(recipe)
    key = capture_key(cell, source_version, version, fold_spec, config)
    return PreparedCell(
        cell=cell,
        fold=fold,
        fold_spec=fold_spec,
        window=window,
        source=bars.source,
        source_version=source_version,
        recipe_version=version,
        config=config,
        key=key,
    )


def replay_cell(
    prepared: PreparedCell, recipe: Recipe, *, check_parity: bool = False
) -> CapturedFold:
    """Run the prepared cell's capture mode.

    ``full_replay`` runs prep, then the trial loop, under a replay tracer: the capture keeps
    the trace, from which G-C4 and G-C4b can be judged later. ``single_fit`` runs prep, then
    trial 0 alone; ``dataset_only`` runs prep and trains nothing. With ``check_parity`` a
    ``dataset_only`` capture also runs :func:`full_replay_parity` and raises
    :class:`CaptureParityFailed` when its X/y is not what a full replay trains on.

    Args:
        prepared: The cell, from :func:`prepare_cell`.
        recipe: The recipe to replay.
        check_parity: Run the invariance assertion (``dataset_only`` only).
    """
    mode = prepared.config.mode
    started = time.perf_counter()
    trial_log: TrialLog | None = None
    trace: ReplayTrace | None = None
    if mode is CaptureMode.FULL_REPLAY:
        with tracing(recipe) as tracer:
            data = recipe.prep(prepared.window, prepared.fold)
            prep_s = time.perf_counter() - started
            trial_log = recipe.run_trials(data, prepared.config.trials, tracer.trial_started)
        trace = tracer.trace(
            cell_ref=str(prepared.cell),
            recipe_version=prepared.recipe_version,
            trials_requested=prepared.config.trials.n_trials,
            trial_log=trial_log,
        )
    else:
        data = recipe.prep(prepared.window, prepared.fold)
        prep_s = time.perf_counter() - started
        if mode is CaptureMode.SINGLE_FIT:
            trial_log = recipe.run_trials(data, _one_trial(prepared.config.trials))
    trials_s = time.perf_counter() - started - prep_s
    x_hash = canonical_hash(data.X).digest
    y_hash = canonical_hash(data.y).digest
    parity = None
    if check_parity and mode is CaptureMode.DATASET_ONLY:
        parity = full_replay_parity(prepared, recipe, x_hash, y_hash, data.n_train)
        if not parity.matches:
            raise CaptureParityFailed(str(prepared.cell), parity, x_hash, y_hash)
    trial_log_hash = None if trial_log is None else trial_log.content_hash()
    best = None if trial_log is None else trial_log.best_trial
    labels = data.y["label"]
    fold = prepared.fold
    manifest = CaptureManifest(
        capture_key=prepared.key,
        cell_ref=str(prepared.cell),
        mode=mode,
        recipe=recipe.name,
        recipe_version=prepared.recipe_version,
        config=prepared.config,
        fold_spec=vars(prepared.fold_spec),
        fold={
            "index": fold.index,
            "train_end": fold.train_end,
            "val_start": fold.val_start,
            "val_end": fold.val_end,
            "window_end": fold.window_end,
        },
        source=prepared.source,
        source_version=prepared.source_version,
        window_first=prepared.window["date"].iloc[0].isoformat(),
        window_last=prepared.window["date"].iloc[-1].isoformat(),
        window_bars=len(prepared.window),
        rows=len(data.X),
        n_train=data.n_train,
        feature_names=list(data.X.columns),
        label_balance_train=round(float(labels[: data.n_train].mean()), 6),
        label_balance_validation=round(float(labels[data.n_train :].mean()), 6),
        x_hash=x_hash,
        y_hash=y_hash,
        trial_log_hash=trial_log_hash,
        content_hash=content_hash(x_hash, y_hash, trial_log_hash, data.n_train, mode),
        n_trials=0 if trial_log is None else len(trial_log.trials),
        best_trial=None if best is None else best.trial,
        best_iter=None if best is None else best.best_iter,
        best_score=None if best is None else best.best_score,
        parity=parity,
        prep_s=round(prep_s, 6),
        trials_s=round(trials_s, 6),
        elapsed_s=round(time.perf_counter() - started, 6),
        files={},
        libraries=library_versions(),
        created_at=datetime.now(UTC).isoformat(),
    )
    return CapturedFold(data=data, trial_log=trial_log, manifest=manifest, trace=trace)


def _one_trial(settings: TrialSettings) -> TrialSettings:
    return settings.model_copy(update={"n_trials": 1})


def full_replay_parity(
    prepared: PreparedCell, recipe: Recipe, x_hash: str, y_hash: str, n_train: int
) -> ParityCheck:
    """Replay one trial in full, from a prep of its own, and compare the X/y it trains on.

    The prep runs again on purpose: a prep that is not deterministic, or a trial loop that
    hands its first trial something other than the prep output, both show up as a mismatch.
    A recipe whose trial observer never fires proves nothing and fails the check.
    """
    started = time.perf_counter()
    received: dict[int, tuple[str, str, int]] = {}

    def observe(trial: int, data: FoldData) -> None:
        received.setdefault(
            trial, (canonical_hash(data.X).digest, canonical_hash(data.y).digest, data.n_train)
        )

    fresh = recipe.prep(prepared.window, prepared.fold)
    recipe.run_trials(fresh, _one_trial(prepared.config.trials), observe)
    seen_x, seen_y, seen_n_train = received.get(0, ("trial 0 never observed", "-", -1))
    return ParityCheck(
        trial=0,
        x_hash=seen_x,
        y_hash=seen_y,
        n_train=seen_n_train,
        matches=(seen_x, seen_y, seen_n_train) == (x_hash, y_hash, n_train),
        elapsed_s=round(time.perf_counter() - started, 6),
    )


def content_hash(
    x_hash: str,
    y_hash: str,
    trial_log_hash: str | None,
    n_train: int,
    mode: CaptureMode = CaptureMode.FULL_REPLAY,
) -> str:
    """The captured fold's data version: its X, y, trial log, split and mode, nothing else.

    Two modes never share a data version: a diagnostic computed on a dataset_only capture
    is a different materialization from one computed on a full replay, even with equal X/y.
    """
    if mode is CaptureMode.FULL_REPLAY and trial_log_hash is not None:
        return combine_digests("captured-fold", x_hash, y_hash, trial_log_hash, str(n_train))
    return combine_digests(
        "captured-fold", x_hash, y_hash, trial_log_hash or "-", str(n_train), str(mode)
    )


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table = pyarrow.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


class CaptureArtifacts:
    """Captures in a blob store under ``captures/<capture_key>/``."""

    def __init__(self, store: BlobStore, prefix: str = "captures") -> None:
        self.store = store
        self.prefix = prefix

    def key_of(self, capture_key: str, name: str) -> str:
        """Store key of one file of a capture."""
        return f"{self.prefix}/{capture_key}/{name}"

    def uri(self, capture_key: str) -> str:
        """URI of a capture's folder (its manifest)."""
        return self.store.uri(self.key_of(capture_key, MANIFEST_FILE))

    def write(self, captured: CapturedFold) -> CaptureManifest:
        """Store a capture: data files, then the manifest that makes it visible."""
        key = captured.manifest.capture_key
        payloads = {
            X_FILE: _parquet_bytes(captured.data.X),
            Y_FILE: _parquet_bytes(captured.data.y),
        }
        if captured.trial_log is not None:
            payloads[TRIAL_LOG_FILE] = captured.trial_log.model_dump_json().encode()
        if captured.trace is not None:
            payloads[TRACE_FILE] = captured.trace.model_dump_json().encode()
        expected = MODE_FILES[captured.mode]
        if set(payloads) != expected:
            raise ValueError(
                f"A {captured.mode} capture stores {sorted(expected)}, not {sorted(payloads)}."
            )
        files = {}
        for name, payload in payloads.items():
            self.store.write_bytes(self.key_of(key, name), payload)
            files[name] = FileEntry(bytes=len(payload), digest=bytes_digest(payload))
        manifest = captured.manifest.model_copy(update={"files": files})
        self.store.write_bytes(self.key_of(key, MANIFEST_FILE), manifest.model_dump_json().encode())
        return manifest

    def read_manifest(self, capture_key: str) -> CaptureManifest | None:
        """The manifest of a capture, or ``None`` if no complete capture has that key."""
        try:
            raw = self.store.read_bytes(self.key_of(capture_key, MANIFEST_FILE))
        except FileNotFoundError:
            return None
        return CaptureManifest.model_validate_json(raw)

    def _verified_bytes(self, manifest: CaptureManifest, name: str) -> bytes:
        entry = manifest.files.get(name)
        if entry is None:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key} has no entry for {name} in its manifest."
            )
        try:
            payload = self.store.read_bytes(self.key_of(manifest.capture_key, name))
        except FileNotFoundError as missing:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key} lists {name} but the file is missing."
            ) from missing
        digest = bytes_digest(payload)
        if len(payload) != entry.bytes or digest != entry.digest:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key}: {name} does not match its manifest "
                f"({len(payload)} bytes, digest {digest}; expected {entry.bytes} bytes, "
                f"digest {entry.digest}). Its bytes are not used."
            )
        return payload

    def verify(self, manifest: CaptureManifest) -> None:
        """Stream every file of a capture through the hash and compare with the manifest.

        Cheaper than :meth:`load` (nothing is parsed): the warm path's proof that the stored
        bytes are the ones the manifest vouches for.

        Raises:
            CaptureVerificationError: a file is missing or differs from the manifest.
        """
        if set(manifest.files) != MODE_FILES[manifest.mode]:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key} lists {sorted(manifest.files)}, not the files "
                f"of a {manifest.mode} capture."
            )
        for name, entry in manifest.files.items():
            key = self.key_of(manifest.capture_key, name)
            try:
                size, digest = self.store.digest(key)
            except FileNotFoundError as missing:
                raise CaptureVerificationError(
                    f"Capture {manifest.capture_key} lists {name} but the file is missing."
                ) from missing
            if size != entry.bytes or digest != entry.digest:
                raise CaptureVerificationError(
                    f"Capture {manifest.capture_key}: {name} does not match its manifest "
                    f"({size} bytes, digest {digest}; expected {entry.bytes} bytes, "
                    f"digest {entry.digest}). Its bytes are not used."
                )

    def delete(self, capture_key: str) -> int:
        """Remove a capture, manifest first so it is invisible before its data goes."""
        self.store.delete(self.key_of(capture_key, MANIFEST_FILE))
        keys = self.store.list_keys(f"{self.prefix}/{capture_key}")
        for key in keys:
            self.store.delete(key)
        return len(keys)

    def load(self, manifest: CaptureManifest) -> CapturedFold:
        """Read a capture back, verifying file bytes and the canonical hashes of X and y.

        Raises:
            CaptureVerificationError: a file is missing or differs from the manifest.
        """
        x = pd.read_parquet(io.BytesIO(self._verified_bytes(manifest, X_FILE)))
        y = pd.read_parquet(io.BytesIO(self._verified_bytes(manifest, Y_FILE)))
        trial_log = None
        if TRIAL_LOG_FILE in manifest.files:
            raw_log = self._verified_bytes(manifest, TRIAL_LOG_FILE)
            trial_log = TrialLog.model_validate_json(raw_log)
        for what, frame, expected in (("X", x, manifest.x_hash), ("y", y, manifest.y_hash)):
            actual = canonical_hash(frame).digest
            if actual != expected:
                raise CaptureVerificationError(
                    f"Capture {manifest.capture_key}: canonical hash of {what} is {actual}, "
                    f"the manifest says {expected}. Its contents are not used."
                )
        log_hash = None if trial_log is None else trial_log.content_hash()
        if log_hash != manifest.trial_log_hash:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key}: the trial log does not match its hash."
            )
        data = FoldData(X=x, y=y, n_train=manifest.n_train, feature_names=tuple(x.columns))
        return CapturedFold(data=data, trial_log=trial_log, manifest=manifest)

    def load_trace(self, manifest: CaptureManifest) -> ReplayTrace | None:
        """The verified replay trace of a capture, or ``None`` if it has none.

        Raises:
            CaptureVerificationError: the trace differs from the manifest, or was recorded
                by a replay other than the one whose trial log the capture holds.
        """
        if TRACE_FILE not in manifest.files:
            return None
        trace = ReplayTrace.model_validate_json(self._verified_bytes(manifest, TRACE_FILE))
        if trace.trial_log_hash != manifest.trial_log_hash:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key}: its replay trace belongs to another replay."
            )
        return trace
