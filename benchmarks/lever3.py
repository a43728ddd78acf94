"""The capture modes: one cell captured cold in full_replay vs in dataset_only mode.

``python -m benchmarks lever3 --profile small --json`` prints
``{"full_replay_s", "dataset_only_s", "ratio", "hash_parity", ...}``.

Both timed captures go through the capture cache with ``allow_cold=True``, each into a
fresh cache of its own (local blob store, SQLite catalog, file leases in a temporary folder),
so both are cold (outcome MISS): source load, prep, the mode's training (every trial of the
profile for full_replay, none for dataset_only), verified write and catalog commit.
``ratio`` is ``full_replay_s / dataset_only_s``; ``hash_parity`` is true when both manifests
have the same ``x_hash``, ``y_hash`` and ``n_train``.

Before them, a dataset_only capture with the parity check on (``parity_check_rate=1.0``: one
independent prep + trial 0) runs into a third fresh cache. It is not part of the ratio; its
time and verdict are ``dataset_only_with_parity_check_s`` and ``parity_check_matches``. It
runs first so that process warm-up (first prep, first LightGBM fit) is paid by neither timed
capture.
"""

import tempfile
import time
from pathlib import Path

from benchmarks.profiles import Profile, profile_from_args
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.outcomes import CaptureOutcome, CaptureResult
from diag_assets.core.cells import CellRef
from diag_assets.core.recipe.reference import ReferenceRecipe
from resources.capture_cache import CaptureCacheResource
from resources.environment import embedded_capture_cache
from resources.storage import LocalArtifactStore

RUN_ID = "benchmark-capture-modes"


def _cache(root: Path, parity_check_rate: float = 0.0) -> CaptureCacheResource:
    artifacts = LocalArtifactStore(root=str(root / "store"))
    return embedded_capture_cache(artifacts, root, parity_check_rate=parity_check_rate)


def _cold(
    profile: Profile, cell: CellRef, mode: CaptureMode, root: Path, parity_check_rate: float = 0.0
) -> tuple[CaptureResult, float]:
    """One cold capture of ``cell`` in ``mode`` into a fresh cache under ``root``, timed."""
    config = profile.capture_config().with_mode(mode)
    with _cache(root, parity_check_rate).open() as cache:
        started = time.perf_counter()
        result = cache.get(
            cell,
            profile.source(),
            profile.fold_spec,
            ReferenceRecipe(),
            config,
            allow_cold=True,
            run_id=RUN_ID,
        )
        elapsed = time.perf_counter() - started
    if result.outcome is not CaptureOutcome.MISS:
        raise RuntimeError(f"{mode} capture of {cell} was {result.outcome}, not a cold MISS.")
    return result, elapsed


def run(argv: list[str]) -> dict:
    """Time a cold full_replay capture and a cold dataset_only capture of the same cell."""
    profile = profile_from_args(argv)
    cell = CellRef("defi_top5", "UNIUSDC", profile.fold)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checked, checked_s = _cold(
            profile, cell, CaptureMode.DATASET_ONLY, root / "parity", parity_check_rate=1.0
        )
        full, full_s = _cold(profile, cell, CaptureMode.FULL_REPLAY, root / "full_replay")
        dataset, dataset_s = _cold(profile, cell, CaptureMode.DATASET_ONLY, root / "dataset_only")
    full_m, dataset_m = full.manifest, dataset.manifest
    parity = checked.manifest.parity
    return {
        "profile": profile.name,
        "cell_ref": str(cell),
        "n_trials": full_m.n_trials,
        "rows": full_m.rows,
        "full_replay_s": round(full_s, 3),
        "dataset_only_s": round(dataset_s, 3),
        "ratio": round(full_s / dataset_s, 2),
        "hash_parity": (full_m.x_hash, full_m.y_hash, full_m.n_train)
        == (dataset_m.x_hash, dataset_m.y_hash, dataset_m.n_train),
        "full_replay_key": full_m.capture_key,
        "dataset_only_key": dataset_m.capture_key,
        "full_replay_prep_s": round(full_m.prep_s, 3),
        "full_replay_trials_s": round(full_m.trials_s, 3),
        "dataset_only_prep_s": round(dataset_m.prep_s, 3),
        "dataset_only_replay_s": round(dataset_m.elapsed_s, 3),
        "full_replay_bytes": full_m.total_bytes,
        "dataset_only_bytes": dataset_m.total_bytes,
        "dataset_only_with_parity_check_s": round(checked_s, 3),
        "parity_check_s": None if parity is None else round(parity.elapsed_s, 3),
        "parity_check_matches": None if parity is None else parity.matches,
    }
