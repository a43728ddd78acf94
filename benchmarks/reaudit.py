"""Gate 4 of Lever #1: one cell re-audited cold, then warm, through Dagster.

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
from diag_assets.audit.diagnostics import anchor_and_consumers
from diag_assets.audit.run_results import materialized_metadata
from diag_assets.capture.assets import captured_fold
from diag_assets.core.capture.cache import ALLOW_COLD_CAPTURE_TAG
from diag_assets.core.cells import CellRef
from diag_assets.core.storage.catalog.catalog import SqliteCatalog
from diag_assets.partitions import cell_partition_key
from resources.capture_cache import CaptureCacheResource, FileLeaseResource, SqliteCatalogResource
from resources.market_data import SyntheticMarketDataResource
from resources.requests import AuditRequestsResource
from resources.storage import LocalArtifactStore

QUIET = {"console": {"config": {"log_level": "WARNING"}}}


def profile_resources(profile: Profile, root: Path) -> dict:
    """The embedded profile's resources for a benchmark profile."""
    spec = profile.fold_spec
    artifacts = LocalArtifactStore(root=str(root / "artifacts"))
    return {
        "market_data": SyntheticMarketDataResource(
            n_bars=profile.n_bars,
            timeframe=profile.timeframe,
            n_folds=spec.n_folds,
            min_train_bars=spec.min_train_bars,
            validation_bars=spec.validation_bars,
            purge_bars=spec.purge_bars,
            label_horizon=spec.label_horizon,
        ),
        "artifacts": artifacts,
        "capture_cache": CaptureCacheResource(
            artifacts=artifacts,
            catalog=SqliteCatalogResource(path=str(root / "catalog.sqlite")),
            lease=FileLeaseResource(root=str(root / "leases")),
        ),
        "audit_requests": AuditRequestsResource(directory=str(root / "requests")),
    }


def capture_run_config(profile: Profile) -> dict:
    """Run config that makes captured_fold replay with the profile's trial settings."""
    return {
        "ops": {"captured_fold": {"config": profile.trials.model_dump()}},
        "loggers": QUIET,
    }


ASSETS = [captured_fold, anchor_and_consumers]


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
        instance.add_dynamic_partitions("symbols", [cell.symbol])

        # Untimed: fit the anchor once, then empty the capture cache (keep the anchor result).
        dg.materialize(
            ASSETS,
            selection=["captured_fold", "s22a1_anchor"],
            resources=resources,
            instance=instance,
            partition_key=key,
            run_config=run_config,
            tags=approved,
        )
        shutil.rmtree(root / "artifacts" / "captures")
        (root / "catalog.sqlite").unlink()

        audit = ["captured_fold", "s40_verdict"]
        cold_s, cold = _timed(audit, resources, instance, key, run_config, approved)
        warm_s, warm = _timed(audit, resources, instance, key, run_config)
        cold_capture, warm_capture = (
            _metadata(cold, "captured_fold"),
            _metadata(warm, "captured_fold"),
        )
        cold_verdict, warm_verdict = _metadata(cold, "s40_verdict"), _metadata(warm, "s40_verdict")
        with SqliteCatalog(root / "catalog.sqlite") as catalog:
            captures = len(catalog.entries())
    return {
        "profile": profile.name,
        "cell_ref": str(cell),
        "cold_s": round(cold_s, 3),
        "warm_s": round(warm_s, 3),
        "ratio": round(cold_s / warm_s, 1),
        "captures": captures,
        "cold_cache": cold_capture["cache"],
        "warm_cache": warm_capture["cache"],
        "warm_served_in_s": warm_capture["served_in_s"],
        "hash_parity": cold_capture["content_hash"] == warm_capture["content_hash"],
        "verdict_parity": {k: v for k, v in cold_verdict["verdict"].items() if k != "elapsed_s"}
        == {k: v for k, v in warm_verdict["verdict"].items() if k != "elapsed_s"},
    }
