"""Capture keys: the hash of everything a capture depends on, and its data version."""

import importlib.metadata

from diag_assets.core.capture.manifest import MANIFEST_SCHEMA_VERSION
from diag_assets.core.capture.modes import CaptureConfig, CaptureMode
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import FoldSpec
from diag_assets.core.hashing.digests import combine_digests, hash_json


def check_cell_universe(cell: CellRef, universe: str) -> None:
    """Refuse a cell of another universe than the market data serves, before any work.

    Raises:
        DiagInputError: ``cell.universe`` is not ``universe``.
    """
    if cell.universe != universe:
        raise DiagInputError(
            f"Cell {cell} belongs to universe {cell.universe!r}, but the market data source "
            f"serves {universe!r}.",
            f"audit a cell of {universe!r} or point the market data at that universe.",
        )


def library_versions() -> dict[str, str]:
    """major.minor of the libraries whose behaviour shapes a capture.

    Read from the installed distributions' metadata, so loading a code location does not
    import them.
    """

    def major_minor(distribution: str) -> str:
        return ".".join(importlib.metadata.version(distribution).split(".")[:2])

    return {name: major_minor(name) for name in ("lightgbm", "pandas", "pyarrow")}


def _request_payload(
    cell: CellRef,
    recipe_version: str,
    fold_spec: FoldSpec,
    config: CaptureConfig,
    libraries: dict[str, str] | None,
) -> dict[str, object]:
    return {
        "capture_schema": MANIFEST_SCHEMA_VERSION,
        "cell_ref": str(cell),
        "recipe_version": recipe_version,
        "fold_spec": vars(fold_spec),
        "config": config.model_dump(mode="json"),
        "libraries": library_versions() if libraries is None else libraries,
    }


def request_key(
    cell: CellRef,
    recipe_version: str,
    fold_spec: FoldSpec,
    config: CaptureConfig,
    *,
    libraries: dict[str, str] | None = None,
) -> str:
    """What an audit asks for: the capture key's inputs minus the source data version.

    A warm re-audit finds its capture by this key without reading the market data; the drift
    policy decides when the source is re-hashed to check the capture still matches it.
    ``libraries`` defaults to the installed ones (a manifest's proof passes its own).
    """
    payload = _request_payload(cell, recipe_version, fold_spec, config, libraries)
    return "rk-" + hash_json(payload)


def capture_key(
    cell: CellRef,
    source_version: str,
    recipe_version: str,
    fold_spec: FoldSpec,
    config: CaptureConfig,
    *,
    libraries: dict[str, str] | None = None,
) -> str:
    """One hash over everything a capture depends on; any change gives a new key.

    Inputs: the manifest schema, the cell, the canonical hash of the bar window the fold uses,
    the recipe's code version, the fold layout, the capture config (mode, trials, seeds) and
    the major.minor versions of lightgbm, pandas and pyarrow (the installed ones unless
    ``libraries`` is given). Dagster does not fold run config into data versions on its own,
    so the key carries it.
    """
    payload = _request_payload(cell, recipe_version, fold_spec, config, libraries)
    return "ck-" + hash_json({**payload, "source_version": source_version})


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
