"""A recipe's code version moves with any module of its package and its dependencies' versions.

A team's recipe package is written into ``tmp_path`` and imported from there; each edit is
followed by a fresh import (a new class, as in a new process), so nothing is served from the
per-class cache unless the test says so.
"""

import importlib
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from diag_assets.core.capture.artifacts import CaptureArtifacts
from diag_assets.core.capture.cache import CaptureService
from diag_assets.core.capture.outcomes import CaptureOutcome, ColdCaptureRequiresOperator
from diag_assets.core.capture.replay import prepare_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.recipe import code_version
from diag_assets.core.recipe.code_version import (
    absolute_imports,
    distribution_versions,
    forget_recipe_code_digests,
    package_files,
    recipe_code_version,
    recipe_scope,
    recipe_scopes,
)
from diag_assets.core.recipe.reference import ReferenceRecipe
from diag_assets.core.storage.blob import LocalBlobStore
from diag_assets.core.storage.catalog.catalog import SqliteCatalog
from diag_assets.core.storage.lease.file import FileLease
from tests.conftest import TINY_CAPTURE, TINY_FOLDS

CELL = CellRef.parse("defi_top5/UNIUSDC/fold-3")

FEATURES = """\
import xxhash

CLIP = 3.0


def finish(data):
    return data
"""

RECIPE_MODULE = """\
from diag_assets.core.recipe.reference import ReferenceRecipe
from team_recipe import features


class TeamRecipe(ReferenceRecipe):
    name = "team"
    version = "1"

    def prep(self, bars, fold):
        return features.finish(super().prep(bars, fold))
"""


class TeamPackage:
    """A team's recipe package on disk: ``team_recipe.models.recipe`` imports ``features``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.write("team_recipe/__init__.py", "")
        self.write("team_recipe/features.py", FEATURES)
        self.write("team_recipe/models/__init__.py", "")
        self.write("team_recipe/models/recipe.py", RECIPE_MODULE)
        self.write("other_pkg/__init__.py", "VALUE = 1\n")

    def write(self, relative: str, text: str) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))

    def load(self):
        """A fresh import of the recipe, as a new process would see the files."""
        for name in [n for n in sys.modules if n.split(".")[0] in {"team_recipe", "other_pkg"}]:
            del sys.modules[name]
        importlib.invalidate_caches()
        return importlib.import_module("team_recipe.models.recipe").TeamRecipe()


@pytest.fixture
def team(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield TeamPackage(tmp_path)
    for name in [n for n in sys.modules if n.split(".")[0] in {"team_recipe", "other_pkg"}]:
        del sys.modules[name]


def keys(recipe, source) -> tuple[str, str]:
    """The recipe's code version and the capture key of a request made with it."""
    return recipe_code_version(recipe), prepare_cell(
        CELL, source, TINY_FOLDS, recipe, TINY_CAPTURE
    ).key


def test_editing_a_helper_module_of_the_recipe_changes_its_version_and_capture_key(
    team, tiny_source
):
    version, key = keys(team.load(), tiny_source)
    assert version.startswith("team-v1-")
    assert keys(team.load(), tiny_source) == (version, key)  # nothing edited: same key

    team.write("team_recipe/features.py", FEATURES.replace("CLIP = 3.0", "CLIP = 2.5"))
    edited_version, edited_key = keys(team.load(), tiny_source)
    assert edited_version != version
    assert edited_key != key


def test_adding_a_module_anywhere_in_the_package_changes_the_version(team):
    version = recipe_code_version(team.load())
    team.write("team_recipe/models/extra.py", "UNUSED = True\n")
    assert recipe_code_version(team.load()) != version


def test_edits_outside_the_package_and_in_pycache_do_not_change_the_version(team):
    version = recipe_code_version(team.load())
    team.write("other_pkg/__init__.py", "VALUE = 2\n")
    team.write("team_recipe/__pycache__/stale.py", "JUNK = 1\n")
    team.write("team_recipe/notes.txt", "not python\n")
    assert recipe_code_version(team.load()) == version


def test_a_dependency_version_change_changes_the_version(team, monkeypatch):
    recipe = team.load()
    version = recipe_code_version(recipe)
    real = code_version.installed_version
    monkeypatch.setattr(
        code_version,
        "installed_version",
        lambda dist: "999.0" if dist == "xxhash" else real(dist),
    )
    forget_recipe_code_digests()
    assert recipe_code_version(recipe) != version
    forget_recipe_code_digests()


def test_a_version_change_of_an_unimported_distribution_leaves_the_version(team, monkeypatch):
    recipe = team.load()
    version = recipe_code_version(recipe)
    real = code_version.installed_version
    monkeypatch.setattr(
        code_version,
        "installed_version",
        lambda dist: "999.0" if dist == "dagster" else real(dist),
    )
    forget_recipe_code_digests()
    assert recipe_code_version(recipe) == version
    forget_recipe_code_digests()


def test_prep_settings_and_declared_version_still_count(team):
    recipe = team.load()
    version = recipe_code_version(recipe)
    recipe.prep_settings = type(recipe.prep_settings)(dead_zone_sigma=0.3)
    assert recipe_code_version(recipe) != version
    bumped = team.load()
    type(bumped).version = "2"
    assert recipe_code_version(bumped).startswith("team-v2-")


def test_a_recipe_is_scoped_to_its_top_level_package_or_in_the_product_to_the_recipe_subpackage():
    assert recipe_scope("team_pkg.sub.mod") == "team_pkg"
    assert recipe_scope("single_module") == "single_module"
    assert recipe_scope("diag_assets.core.recipe.reference") == "diag_assets.core.recipe"
    assert recipe_scope("diag_assets.gates.fixture_set") == "diag_assets.core.recipe"
    assert recipe_scopes(ReferenceRecipe) == ["diag_assets.core.recipe"]
    names = [name for name, _ in package_files("diag_assets.core.recipe")]
    assert names == sorted(names)
    assert {"diag_assets.core.recipe/prep.py", "diag_assets.core.recipe/reference.py"} <= set(names)
    assert all(name.startswith("diag_assets.core.recipe/") for name in names)


def test_a_team_recipe_covers_its_package_and_the_reference_it_inherits(team):
    recipe = team.load()
    assert recipe_scopes(type(recipe)) == ["diag_assets.core.recipe", "team_recipe"]
    names = [name for name, _ in package_files("team_recipe")]
    assert names == [
        "team_recipe/__init__.py",
        "team_recipe/features.py",
        "team_recipe/models/__init__.py",
        "team_recipe/models/recipe.py",
    ]


def test_imports_map_to_distributions_without_stdlib_or_relative_imports():
    source = b"import os, json\nimport numpy.linalg\nfrom team_recipe import x\nfrom . import y\n"
    assert absolute_imports(source) == {"numpy", "team_recipe"}
    versions = distribution_versions({"numpy", "team_recipe", "xxhash"})
    assert list(versions) == ["numpy", "xxhash"]


def test_the_code_part_is_computed_once_per_class_even_under_threads(team, monkeypatch):
    recipe = team.load()
    reads = []
    real = code_version.package_files
    monkeypatch.setattr(code_version, "package_files", lambda s: reads.append(s) or real(s))
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(recipe_code_version(recipe)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 8
    assert sorted(reads) == ["diag_assets.core.recipe", "team_recipe"]  # one walk per package


def test_a_capture_is_not_served_after_the_recipe_helper_changes(team, tiny_source, tmp_path):
    """Edit the helper, ask again: a MISS that needs approval, never the old capture."""
    service = CaptureService(
        CaptureArtifacts(LocalBlobStore(tmp_path / "store")),
        SqliteCatalog(tmp_path / "catalog.sqlite"),
        FileLease(tmp_path / "leases"),
    )

    def ask(recipe, *, allow_cold):
        return service.get(
            CELL, tiny_source, TINY_FOLDS, recipe, TINY_CAPTURE, allow_cold=allow_cold
        )

    with service:
        assert ask(team.load(), allow_cold=True).outcome is CaptureOutcome.MISS
        assert ask(team.load(), allow_cold=False).outcome is CaptureOutcome.HIT

        team.write("team_recipe/features.py", FEATURES.replace("CLIP = 3.0", "CLIP = 2.5"))
        with pytest.raises(ColdCaptureRequiresOperator, match="COLD_CAPTURE_REQUIRES_OPERATOR"):
            ask(team.load(), allow_cold=False)
