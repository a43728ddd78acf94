"""Cold capture: replay one cell of a profile and store it, from nothing.

``python -m benchmarks capture --profile small --json``
prints ``{"cold_capture_s", "rows", "features", "trials", ...}``.
"""

import tempfile
import time

from benchmarks.profiles import profile_from_args
from diag_assets.core.capture.artifacts import CaptureArtifacts
from diag_assets.core.capture.replay import prepare_cell, replay_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.recipe.reference import ReferenceRecipe
from diag_assets.core.storage.blob import LocalBlobStore


def run(argv: list[str]) -> dict:
    """Time one cold capture (input checks + prep + trials + verified write)."""
    profile = profile_from_args(argv)
    source = profile.source()
    cell = CellRef(source.universe, source.symbols()[0], profile.fold)
    recipe = ReferenceRecipe()
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        prepared = prepare_cell(cell, source, profile.fold_spec, recipe, profile.capture_config())
        captured = replay_cell(prepared, recipe)
        manifest = CaptureArtifacts(LocalBlobStore(root)).write(captured)
        cold = time.perf_counter() - started
    return {
        "profile": profile.name,
        "cell_ref": str(cell),
        "cold_capture_s": round(cold, 3),
        "rows": manifest.rows,
        "features": len(manifest.feature_names),
        "trials": manifest.n_trials,
        "trials_s": round(manifest.trials_s, 3),
        "bytes": manifest.total_bytes,
    }
