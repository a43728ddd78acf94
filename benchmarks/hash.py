"""Throughput of ``canonical_hash`` against ``pandas.util.hash_pandas_object``.

Builds a deterministic ~200 MB frame (float32 features plus an int8 label), hashes it with both
in the same process and reports GB/s for each and their ratio. The project requires
``ratio >= 10``.

Usage: ``python -m benchmarks hash [--json] [--rows N] [--features N] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from pandas.util import hash_pandas_object

from diag_assets.core.hashing.table import canonical_hash


def build_frame(rows: int, features: int, seed: int = 0) -> pd.DataFrame:
    """A frame of ``features`` float32 columns (about 1% NaN) and an int8 ``label`` column."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for index in range(features):
        column = rng.standard_normal(rows, dtype=np.float32)
        # A few columns with NaN exercise the NaN-canonicalizing slow path.
        if index % 10 == 0:
            column[rng.random(rows) < 0.01] = np.nan
        data[f"f{index:03d}"] = column
    data["label"] = rng.integers(0, 2, size=rows, dtype=np.int8)
    return pd.DataFrame(data)


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls (best-of, so noise from other processes drops out)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks hash")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    frame = build_frame(args.rows, args.features)
    size = int(frame.memory_usage(index=False, deep=True).sum())
    # Best of --repeats (default 3) runs for each hasher, both in this one process.
    canonical = best_seconds(lambda: canonical_hash(frame), args.repeats)
    # pandas.util resolves its names lazily, which hides the signature from type checkers.
    pandas = best_seconds(
        lambda: hash_pandas_object(frame, index=False),  # pyright: ignore[reportCallIssue]
        args.repeats,
    )
    return {
        "bytes": size,
        "canonical_gbps": round(size / canonical / 1e9, 3),
        "pandas_gbps": round(size / pandas / 1e9, 3),
        "ratio": round(pandas / canonical, 3),
    }
