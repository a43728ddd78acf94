"""Single-flight under contention: N processes ask for the same cold cell at once.

``python -m benchmarks contention --n 8 --json`` prints
``{"requests", "captures", "waited", "max_wait_s", "backend", ...}``.

Backend ``postgres`` (default): catalog and leases in a fresh database on the local
PostgreSQL server (``DIAG_BENCH_PG`` holds libpq options for the server, default
``host=127.0.0.1 port=5432 user=postgres``); ``file``: SQLite catalog and file locks. The
artifacts are in a local folder either way. Exactly one process must capture.
"""

import argparse
import multiprocessing as mp
import os
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.profiles import PROFILES

DEFAULT_SERVER = "host=127.0.0.1 port=5432 user=postgres"


def _service(backend: str, dsn: str, root: Path):
    from diag_assets.core.capture.artifacts import CaptureArtifacts
    from diag_assets.core.capture.cache import CaptureService
    from diag_assets.core.storage.blob import LocalBlobStore
    from diag_assets.core.storage.catalog.catalog import PostgresCatalog, SqliteCatalog
    from diag_assets.core.storage.lease.file import FileLease
    from diag_assets.core.storage.lease.postgres import PostgresLease

    artifacts = CaptureArtifacts(LocalBlobStore(root / "artifacts"))
    if backend == "postgres":
        return CaptureService(artifacts, PostgresCatalog(dsn), PostgresLease(dsn), lease_wait_s=900)
    return CaptureService(
        artifacts,
        SqliteCatalog(root / "catalog.sqlite"),
        FileLease(root / "leases"),
        lease_wait_s=900,
    )


def _request(args: tuple) -> dict:
    backend, dsn, root, profile_name, start_at, number = args
    from diag_assets.core.cells import CellRef
    from diag_assets.core.recipe.reference import ReferenceRecipe

    profile = PROFILES[profile_name]
    source = profile.source()
    service = _service(backend, dsn, Path(root))
    cell = CellRef(source.universe, source.symbols()[0], profile.fold)
    time.sleep(max(0.0, start_at - time.time()))  # everyone asks at the same moment
    started = time.perf_counter()
    result = service.get(
        cell,
        source,
        profile.fold_spec,
        ReferenceRecipe(),
        profile.capture_config(),
        allow_cold=True,
        run_id=f"bench-{number}",
    )
    service.catalog.close()
    return {
        "outcome": result.outcome.value,
        "waited_s": result.waited_s,
        "elapsed_s": time.perf_counter() - started,
        "content_hash": result.manifest.content_hash,
    }


def _fresh_database(server: str) -> tuple[str, str]:
    import psycopg2

    name = f"diag_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(f"{server} dbname=postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return name, f"{server} dbname={name}"


def _drop_database(server: str, name: str) -> None:
    import psycopg2

    admin = psycopg2.connect(f"{server} dbname=postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def run(argv: list[str]) -> dict:
    """N concurrent requests for one cold cell; count captures and waits."""
    parser = argparse.ArgumentParser(prog="contention")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--backend", choices=["postgres", "file"], default="postgres")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="small")
    args = parser.parse_args(argv)
    server = os.environ.get("DIAG_BENCH_PG", DEFAULT_SERVER)
    database, dsn = _fresh_database(server) if args.backend == "postgres" else ("", "")
    try:
        with tempfile.TemporaryDirectory() as root:
            # Enough head start for every process to import and open its connections.
            start_at = time.time() + 4 + 0.5 * args.n
            context = mp.get_context("spawn")
            with context.Pool(args.n) as pool:
                results = pool.map(
                    _request,
                    [(args.backend, dsn, root, args.profile, start_at, i) for i in range(args.n)],
                )
    finally:
        if database:
            _drop_database(server, database)
    outcomes = [r["outcome"] for r in results]
    return {
        "backend": args.backend,
        "profile": args.profile,
        "requests": len(results),
        "captures": outcomes.count("MISS"),
        "waited": outcomes.count("WAITED"),
        "hits": outcomes.count("HIT"),
        "max_wait_s": round(max(r["waited_s"] for r in results), 3),
        "max_elapsed_s": round(max(r["elapsed_s"] for r in results), 3),
        "same_capture": len({r["content_hash"] for r in results}) == 1,
    }
