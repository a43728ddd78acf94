"""The anchor skip: a light s40 audit with the s22a1 anchor vs with it skipped.

``python -m benchmarks lever2 --profile small --json`` prints
``{"with_anchor_s", "skip_s", "ratio", "verdict_parity", ...}``.

The cell is captured once, untimed; both timed runs are Dagster materializations that serve
``captured_fold`` from the cache. "With anchor" fits s22a1 and cross-references it; "skip"
materializes s40 alone with ``skip_s22a1: true``. Parity: the same probe verdict and figures.
"""

import tempfile
import time
from pathlib import Path

import dagster as dg

from benchmarks.profiles import profile_from_args
from benchmarks.reaudit import QUIET, capture_run_config, profile_resources
from diag_assets.audit.run_results import materialized_metadata
from diag_assets.core.cells import CellRef
from diag_assets.core.names import (
    ALLOW_COLD_CAPTURE_TAG,
    ANCHOR_AND_CONSUMERS,
    CAPTURED_FOLD,
    S22A1_ANCHOR,
    S40_VERDICT,
    SYMBOLS_PARTITIONS,
    VERDICT_KEY,
)
from diag_assets.definitions import defs
from diag_assets.partitions import cell_partition_key

# The packaged code location's capture and the anchor's step (the anchor and its readers).
ASSETS = [defs.get_assets_def(CAPTURED_FOLD), defs.get_assets_def(S22A1_ANCHOR)]


def _s40(result) -> dict:
    return materialized_metadata(result, S40_VERDICT)[VERDICT_KEY]


def run(argv: list[str]) -> dict:
    """Time the light audit with and without the anchor, on a warm capture."""
    profile = profile_from_args(argv)
    cell = CellRef("defi_top5", "UNIUSDC", profile.fold)
    key = cell_partition_key(cell)
    base = capture_run_config(profile)
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        resources = profile_resources(profile, Path(tmp))
        instance.add_dynamic_partitions(SYMBOLS_PARTITIONS, [cell.symbol])
        dg.materialize(
            ASSETS,
            selection=[CAPTURED_FOLD],
            resources=resources,
            instance=instance,
            partition_key=key,
            run_config=base,
            tags={ALLOW_COLD_CAPTURE_TAG: "true"},
        )

        def timed(selection: list[str], skip: bool):
            run_config = {
                **base,
                "ops": {**base["ops"], ANCHOR_AND_CONSUMERS: {"config": {"skip_s22a1": skip}}},
                "loggers": QUIET,
            }
            started = time.perf_counter()
            result = dg.materialize(
                ASSETS,
                selection=selection,
                resources=resources,
                instance=instance,
                partition_key=key,
                run_config=run_config,
            )
            return time.perf_counter() - started, _s40(result)

        with_anchor_s, full = timed([CAPTURED_FOLD, S22A1_ANCHOR, S40_VERDICT], False)
        skip_s, light = timed([CAPTURED_FOLD, S40_VERDICT], True)
    return {
        "profile": profile.name,
        "cell_ref": str(cell),
        "with_anchor_s": round(with_anchor_s, 3),
        "skip_s": round(skip_s, 3),
        "ratio": round(with_anchor_s / skip_s, 2),
        "verdict_parity": full["signal"] == light["signal"] and full["probe"] == light["probe"],
        "with_anchor_certification": full["certification"],
        "skip_certification": light["certification"],
    }
