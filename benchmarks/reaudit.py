"""The capture cache's cold vs warm re-audit: one cell, twice, through Dagster.

``python -m benchmarks reaudit --profile small --json`` prints
``{"cold_s", "warm_s", "ratio", "captures", ...}``.

Each timed run is a ``dg.materialize`` of ``captured_fold`` + ``s40_verdict`` in the embedded
profile (SQLite catalog, file leases, local artifacts). The anchor is fitted once beforehand
and its stored result is loaded by both runs, not refit; the capture cache is then emptied,
so the cold run replays the fine-tune and the warm run is served from the cache.
"""

import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg

from benchmarks.profiles import Profile, profile_from_args
from diag_assets.audit.run_results import materialized_metadata
from diag_assets.core.cells import CellRef
from diag_assets.core.metadata import CaptureMetadata
from diag_assets.core.names import (
    ALLOW_COLD_CAPTURE_TAG,
    CAPTURED_FOLD,
    S22A1_ANCHOR,
    S40_VERDICT,
    SYMBOLS_PARTITIONS,
    VERDICT_KEY,
)
from diag_assets.definitions import defs
from diag_assets.partitions import cell_partition_key
from resources.environment import build_local_resources
from resources.market_data import SyntheticMarketDataResource

QUIET = {"console": {"config": {"log_level": "WARNING"}}}


def profile_resources(profile: Profile, root: Path) -> dict:
    """The embedded profile's resources for a benchmark profile."""
    spec = profile.fold_spec
    market_data = SyntheticMarketDataResource(
        n_bars=profile.n_bars,
        timeframe=profile.timeframe,
        n_folds=spec.n_folds,
        min_train_bars=spec.min_train_bars,
        validation_bars=spec.validation_bars,
        purge_bars=spec.purge_bars,
        label_horizon=spec.label_horizon,
    )
    return build_local_resources(root, market_data=market_data)


def capture_run_config(profile: Profile) -> dict:
    """Run config that makes captured_fold replay with the profile's trial settings."""
    return {
        "ops": {CAPTURED_FOLD: {"config": profile.trials.model_dump()}},
        "loggers": QUIET,
    }


# The packaged code location's capture and the anchor's step (the anchor and its readers).
ASSETS = [defs.get_assets_def(CAPTURED_FOLD), defs.get_assets_def(S22A1_ANCHOR)]


def _timed(selection, resources, instance, key, run_config, tags=None):
    started = time.perf_counter()
    result = dg.materialize(
        ASSETS,
        selection=selection,
        resources=resources,
        instance=instance,
        partition_key=key,
        run_config=run_config,
        tags=tags or {},
    )
    return time.perf_counter() - started, result


_metadata = materialized_metadata


def _capture(metadata: dict) -> CaptureMetadata:
    capture = CaptureMetadata.parse(metadata)
    if capture is None:
        raise LookupError("The captured_fold materialization names no cell.")
    return capture


def run(argv: list[str]) -> dict:
    """Cold then warm re-audit of one cell of the profile."""
    profile = profile_from_args(argv)
    cell = CellRef("defi_top5", "UNIUSDC", profile.fold)
    key = cell_partition_key(cell)
    approved = {ALLOW_COLD_CAPTURE_TAG: "true"}
    run_config = capture_run_config(profile)
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        root = Path(tmp)
        resources = profile_resources(profile, root)
        instance.add_dynamic_partitions(SYMBOLS_PARTITIONS, [cell.symbol])

        # Untimed: fit the anchor once, then empty the capture cache (keep the anchor result).
        dg.materialize(
            ASSETS,
            selection=[CAPTURED_FOLD, S22A1_ANCHOR],
            resources=resources,
            instance=instance,
            partition_key=key,
            run_config=run_config,
            tags=approved,
        )
        shutil.rmtree(root / "artifacts" / "captures")
        (root / "catalog.sqlite").unlink()

        audit = [CAPTURED_FOLD, S40_VERDICT]
        cold_s, cold = _timed(audit, resources, instance, key, run_config, approved)
        warm_s, warm = _timed(audit, resources, instance, key, run_config)
        cold_capture, warm_capture = (
            _capture(_metadata(cold, CAPTURED_FOLD)),
            _capture(_metadata(warm, CAPTURED_FOLD)),
        )
        cold_verdict = _metadata(cold, S40_VERDICT)[VERDICT_KEY]
        warm_verdict = _metadata(warm, S40_VERDICT)[VERDICT_KEY]
        with resources["capture_cache"].open() as cache:
            captures = len(cache.entries())
    return {
        "profile": profile.name,
        "cell_ref": str(cell),
        "cold_s": round(cold_s, 3),
        "warm_s": round(warm_s, 3),
        "ratio": round(cold_s / warm_s, 1),
        "captures": captures,
        "cold_cache": cold_capture.cache,
        "warm_cache": warm_capture.cache,
        "warm_served_in_s": warm_capture.served_in_s,
        "hash_parity": cold_capture.content_hash == warm_capture.content_hash,
        "verdict_parity": {k: v for k, v in cold_verdict.items() if k != "elapsed_s"}
        == {k: v for k, v in warm_verdict.items() if k != "elapsed_s"},
    }
