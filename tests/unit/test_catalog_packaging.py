"""A non-editable install ships the catalog's migrations and migrates from them."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = Path("diag_assets/core/storage/catalog/migrations")

# Runs on the built files only: it fails if the catalog resolves to this checkout.
OPEN_A_CATALOG = """
import sys
from pathlib import Path
from diag_assets.core.storage.catalog import upgrade
from diag_assets.core.storage.catalog.catalog import SqliteCatalog
assert Path(upgrade.__file__).is_relative_to(sys.argv[1]), upgrade.__file__
with SqliteCatalog(Path(sys.argv[2]) / "catalog.sqlite") as catalog:
    print(catalog.migrate())
"""


@pytest.mark.slow
def test_the_built_package_holds_the_migrations_and_they_run(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("diag_assets", "resources", "sensors", "benchmarks"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    built = tmp_path / "lib"
    # build_py lays out exactly the files a wheel of the project contains.
    subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py"]
        + ["--build-lib", str(built)],
        cwd=source,
        check=True,
        capture_output=True,
    )
    shipped = {
        path.relative_to(built / MIGRATIONS).as_posix()
        for path in (built / MIGRATIONS).rglob("*")
        if path.is_file()
    }
    assert {
        "env.py",
        "script.py.mako",
        "versions/0001_diagnostic_capture.py",
        "versions/0002_drift_checks.py",
        "versions/0003_capture_attempts.py",
    } <= shipped
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    opened = subprocess.run(
        [sys.executable, "-c", OPEN_A_CATALOG, str(built), str(elsewhere)],
        cwd=elsewhere,
        env={"PYTHONPATH": str(built), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
    )
    assert opened.stdout.strip() == "3"
