"""A team's Dagster project, loaded through Dagster's component loader as ``dagster dev`` does."""

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from diag_assets.core.names import ALLOW_COLD_CAPTURE_TAG

PROJECT = Path(__file__).resolve().parents[1] / "component_project"

TINY_PROBE = {"num_rounds": 20, "max_permutations": 4, "alpha": 0.2}
APPROVED = {ALLOW_COLD_CAPTURE_TAG: "true"}


def audit_cell(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    prefix: str,
    symbols: list[str],
    cell: dg.MultiPartitionKey,
    *,
    tiny_probe: bool = True,
) -> dg.ExecuteInProcessResult:
    """Run the ``prefix__audit`` job for ``cell``, with the operator's approval of a cold capture.

    ``symbols`` are registered first, as the audit's sensor would; ``tiny_probe`` gives the s40
    probe a small budget.
    """
    instance.add_dynamic_partitions(f"{prefix}__symbols", symbols)
    probe = {"ops": {f"{prefix}__anchor_and_consumers": {"config": TINY_PROBE}}}
    return defs.resolve_job_def(f"{prefix}__audit").execute_in_process(
        instance=instance,
        partition_key=cell,
        tags=APPROVED,
        run_config=probe if tiny_probe else {},
    )


def load_project(root: Path) -> dg.Definitions:
    """The definitions of the dg project at ``root`` (its defs folder, through the loader)."""
    return dg.load_from_defs_folder(path_within_project=root)


@pytest.fixture
def storage(tmp_path, monkeypatch) -> Path:
    """The shared resources of the embedded profile under a fresh folder."""
    monkeypatch.setenv("DIAG_ENV", "local")
    monkeypatch.setenv("DIAG_STORAGE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("DIAG_REQUESTS_DIR", str(tmp_path / "requests"))
    return tmp_path / "store"


@pytest.fixture
def team_project(storage) -> Iterator[dg.Definitions]:
    """The team project under tests/component_project, imported as its own package."""
    sys.path.insert(0, str(PROJECT))
    try:
        module = importlib.import_module("team_audits.definitions")
        yield module.defs()
    finally:
        sys.path.remove(str(PROJECT))
        for name in [n for n in sys.modules if n == "team_audits" or n.startswith("team_audits.")]:
            del sys.modules[name]


def write_project(root: Path, audits: dict[str, str], package: str = "proj") -> Path:
    """A dg project at ``root`` whose defs folder has one ``defs.yaml`` per entry."""
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{package}"\nversion = "0"\n\n[tool.dg]\ndirectory_type = '
        f'"project"\n\n[tool.dg.project]\nroot_module = "{package}"\n'
        f'defs_module = "{package}.defs"\n'
    )
    (root / package / "defs").mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    for folder, text in audits.items():
        (root / package / "defs" / folder).mkdir()
        (root / package / "defs" / folder / "defs.yaml").write_text(text)
    return root


@pytest.fixture
def project_dir(tmp_path, storage) -> Iterator[Path]:
    """A folder for a throwaway project, importable while the test runs."""
    root = tmp_path / "project"
    root.mkdir()
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == "proj" or n.startswith("proj.")]:
            del sys.modules[name]
