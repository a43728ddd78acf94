"""The capture manifest: everything known about one stored capture, written last."""

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from diag_assets.core.capture.modes import CaptureConfig, CaptureMode
from diag_assets.core.recipe.tasks import TaskKind
from diag_assets.core.window_gaps import WindowGap

# Version 2 added the capture modes and the replay trace, version 3 the gaps of the fold's
# window (and the rows they cost); it is part of the capture key, so a capture written under
# another schema is never served.
MANIFEST_SCHEMA_VERSION = 3
X_FILE, Y_FILE, TRIAL_LOG_FILE, TRACE_FILE, MANIFEST_FILE = (
    "X.parquet",
    "y.parquet",
    "trial_log.json",
    "replay_trace.json",
    "manifest.json",
)


# An attempt id names the folder of an attempt's data files: no dot, so it is never a file name.
ATTEMPT_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# What each mode stores; a capture listing other files is not one of ours.
MODE_FILES: dict[CaptureMode, frozenset[str]] = {
    CaptureMode.FULL_REPLAY: frozenset({X_FILE, Y_FILE, TRIAL_LOG_FILE, TRACE_FILE}),
    CaptureMode.DATASET_ONLY: frozenset({X_FILE, Y_FILE}),
    CaptureMode.SINGLE_FIT: frozenset({X_FILE, Y_FILE, TRIAL_LOG_FILE}),
}


class FileEntry(BaseModel):
    """One stored file of a capture."""

    bytes: int
    digest: str


class ParityCheck(BaseModel):
    """A dataset_only capture's parity check.

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


class CaptureManifest(BaseModel):
    """Everything known about one stored capture; written last, read first.

    The trial fields are empty for ``dataset_only`` (nothing was trained); ``single_fit``
    has one trial. ``attempt`` names the folder of the data files, ``captures/<key>/<attempt>/``
    (empty: directly in ``captures/<key>/``, where captures were stored before attempts).
    """

    model_config = ConfigDict(frozen=True)

    schema_version: int = MANIFEST_SCHEMA_VERSION
    capture_key: str
    cell_ref: str
    mode: CaptureMode
    recipe: str
    recipe_version: str
    # The recipe's task; manifests written before tasks existed are binary.
    task: TaskKind = TaskKind.BINARY
    config: CaptureConfig
    fold_spec: dict[str, int | float | str]
    fold: dict[str, int]
    source: str
    source_version: str
    window_first: str
    window_last: str
    window_bars: int
    # The gaps inside the window, and the rows they cost (see diag_assets.core.window_gaps).
    gaps: list[WindowGap] = []
    gap_rows_dropped: int = 0
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
    # Not part of the capture key (nor of MANIFEST_SCHEMA_VERSION): where, not what.
    attempt: str = Field(default="", pattern=rf"{ATTEMPT_PATTERN}|^$")

    @property
    def total_bytes(self) -> int:
        """Bytes of the stored files, manifest excluded."""
        return sum(entry.bytes for entry in self.files.values())


def parse_manifest(raw: bytes) -> CaptureManifest:
    """The manifest ``raw`` holds.

    Raises:
        ValueError: the bytes are not a capture manifest. The message says where it fails,
            never what the bytes were: a stored manifest is data, not a message to echo.
    """
    try:
        return CaptureManifest.model_validate_json(raw)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False, include_context=False)
        first = problems[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        raise ValueError(
            f"cannot be read as a capture manifest ({len(problems)} problem(s); first: "
            f"{where}: {first['msg']})"
        ) from None
