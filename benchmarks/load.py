"""How long a team's code location takes to load with 1 and with 5 audits of 25 cells each.

Each figure is measured in a fresh Python process, as ``dagster dev`` or a code server loads a
location: from before ``import dagster`` until the repository's every definition is built
(Dagster's component loader reads the ``defs.yaml`` files, each audit component resolves its
recipe and diagnostics, hashes the recipe's code and builds its assets, checks, jobs and
sensors). Each audit is the reference recipe on the five synthetic defi_top5 symbols with
five folds: 25 cells. ``import_s`` is the part spent importing Dagster and the harness, the
same for any number of audits.

    python -m benchmarks load --json [--repeats N]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

AUDIT = """type: diag_assets.component.AuditComponent
attributes:
  prefix: audit_{index}
  market_data: {{kind: synthetic, universe: defi_top5}}
  folds: {{n_folds: 5}}
  recipe: reference
"""

PROBE = """
import json, sys, time
started = time.perf_counter()
import dagster as dg
import diag_assets.component
imported = time.perf_counter()
from pathlib import Path
defs = dg.load_from_defs_folder(path_within_project=Path(sys.argv[1]))
repository = defs.get_repository_def()
repository.load_all_definitions()
loaded = time.perf_counter()
print(json.dumps({
    "import_s": imported - started,
    "load_s": loaded - started,
    "assets": len(repository.asset_graph.get_all_asset_keys()),
    "jobs": len(repository.get_all_jobs()),
}))
"""


def write_project(root: Path, audits: int) -> Path:
    """A dg project with ``audits`` audit components."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "bench"\nversion = "0"\n\n[tool.dg]\ndirectory_type = "project"\n\n'
        '[tool.dg.project]\nroot_module = "bench"\ndefs_module = "bench.defs"\n'
    )
    (root / "bench" / "defs").mkdir(parents=True)
    (root / "bench" / "__init__.py").write_text("")
    for index in range(audits):
        folder = root / "bench" / "defs" / f"audit_{index}"
        folder.mkdir()
        (folder / "defs.yaml").write_text(AUDIT.format(index=index))
    return root


def measure(audits: int, repeats: int) -> dict[str, float]:
    """Median load figures of ``repeats`` fresh processes."""
    with tempfile.TemporaryDirectory() as tmp:
        root = write_project(Path(tmp) / "project", audits)
        runs = []
        for _ in range(repeats):
            done = subprocess.run(
                [sys.executable, "-c", PROBE, str(root)],
                capture_output=True,
                text=True,
                check=True,
                env={
                    **_environment(),
                    "PYTHONPATH": str(root),
                    "DIAG_STORAGE_DIR": str(Path(tmp) / "store"),
                },
            )
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "load_s": round(statistics.median(r["load_s"] for r in runs), 3),
        "import_s": round(statistics.median(r["import_s"] for r in runs), 3),
        "assets": runs[0]["assets"],
        "jobs": runs[0]["jobs"],
    }


def _environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def run(argv: list[str]) -> dict[str, float | int]:
    """The load figures with 1 and with 5 audits."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks load")
    parser.add_argument("--repeats", type=int, default=3, help="Fresh processes per figure.")
    args = parser.parse_args(argv)
    one = measure(1, args.repeats)
    five = measure(5, args.repeats)
    return {
        "one_audit_s": one["load_s"],
        "five_audits_s": five["load_s"],
        "import_s": one["import_s"],
        "per_extra_audit_s": round((five["load_s"] - one["load_s"]) / 4, 3),
        "cells_per_audit": 25,
        "one_audit_assets": one["assets"],
        "five_audits_assets": five["assets"],
        "five_audits_jobs": five["jobs"],
        "repeats": args.repeats,
    }
