"""A recipe's code version: its declared version plus a hash of the code it runs.

The code version is part of every capture key, so it must move whenever the code that makes a
capture changes; otherwise an old capture is served as a verified HIT for a recipe that no
longer produces it. What it covers:

* **The recipe's own package**: every ``.py`` file under it, walked on disk in the order of
  the files' relative paths (``__pycache__`` skipped), each hashed with its relative path.
  For a recipe class defined in ``team_pkg.sub.mod`` that is the top-level package
  ``team_pkg``; a recipe that is a top-level module on its own is just that file. A recipe
  inside the product package ``diag_assets`` is scoped to the subpackage
  ``diag_assets.core.recipe`` (the reference recipe, its prep, training and protocol), not to
  all of ``diag_assets``, so an edit elsewhere in the product does not invalidate every
  capture.
* **The packages it inherits from**, by the same rule, and always ``diag_assets.core.recipe``:
  the harness's recipe protocol and the reference prep and trials that recipes build on.
* **The distributions that code imports**: the top-level names of its absolute imports,
  minus the standard library and the hashed packages themselves, mapped to installed
  distributions (``importlib.metadata.packages_distributions``) as ``{distribution:
  version}``. An imported module that no installed distribution provides (a loose module on
  ``sys.path``) is not covered: keep such code inside the recipe's package.
* **The recipe's parameters** (:meth:`Recipe.parameters`, e.g. the reference prep's dead
  zone) and its task, which change X/y and what is trained.

The code part is computed once per recipe class per process: the code that runs does not
change while the process lives, even if its files do.
"""

import ast
import importlib
import importlib.metadata
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from diag_assets.core.errors import DiagInputError
from diag_assets.core.hashing.digests import bytes_digest, hash_json

PRODUCT_PACKAGE = "diag_assets"
BUILT_IN_RECIPE_PACKAGE = "diag_assets.core.recipe"

# ast.parse is not thread-safe in CPython 3.11; the first computation for a class parses
# under this lock (cached lookups do not take it).
_PARSE_LOCK = threading.Lock()
_CODE_DIGESTS: dict[type, str] = {}


def recipe_code_version(recipe: Any) -> str:
    """The recipe's declared version plus a hash of its code, its task and its parameters.

    Returns ``{name}-v{version}-{hash16}``. The hash moves with any edit to a module of the
    recipe's package (see the module docstring for what that is), a change of an imported
    distribution's version, or different parameters, even when nobody bumped ``version``.

    Raises:
        DiagInputError: the recipe's code cannot be read from disk (a class defined outside
            any file), so no capture of it could be told apart from a stale one.
    """
    payload = {
        "code": recipe_code_digest(type(recipe)),
        "task": str(recipe.task),
        "parameters": dict(recipe.parameters()),
    }
    return f"{recipe.name}-v{recipe.version}-{hash_json(payload)[:16]}"


def recipe_code_digest(recipe_class: type) -> str:
    """Hash of the files of a recipe class's packages and of the distributions they import.

    Computed once per class per process (:func:`forget_recipe_code_digests` forgets them);
    concurrent first requests for a class compute it once.

    Raises:
        DiagInputError: a package of the class has no files on disk.
    """
    digest = _CODE_DIGESTS.get(recipe_class)
    if digest is None:
        with _PARSE_LOCK:
            digest = _CODE_DIGESTS.get(recipe_class)
            if digest is None:
                digest = _CODE_DIGESTS[recipe_class] = _code_digest(recipe_class)
    return digest


def forget_recipe_code_digests() -> None:
    """Forget every cached code digest, so the next request re-reads the files."""
    with _PARSE_LOCK:
        _CODE_DIGESTS.clear()


def _code_digest(recipe_class: type) -> str:
    scopes = recipe_scopes(recipe_class)
    files = [entry for scope in scopes for entry in package_files(scope)]
    own_names = {scope.split(".")[0] for scope in scopes}
    imported = set().union(*(absolute_imports(source) for _, source in files))
    payload = {
        "files": [[name, bytes_digest(source)] for name, source in files],
        "distributions": distribution_versions(imported - own_names),
    }
    return hash_json(payload)


def recipe_scope(module_name: str) -> str:
    """The package a recipe defined in ``module_name`` is versioned by.

    Its top-level package (``team_pkg`` for ``team_pkg.sub.mod``), except inside the product
    package ``diag_assets``, where it is the built-in recipe subpackage
    ``diag_assets.core.recipe``.
    """
    top = module_name.split(".")[0]
    return BUILT_IN_RECIPE_PACKAGE if top == PRODUCT_PACKAGE else top


def recipe_scopes(recipe_class: type) -> list[str]:
    """The packages whose code a recipe class runs: its own, its bases', the built-in one."""
    scopes = {BUILT_IN_RECIPE_PACKAGE}
    for cls in recipe_class.__mro__:
        top = cls.__module__.split(".")[0]
        if top == "builtins" or top in sys.stdlib_module_names:
            continue
        scopes.add(recipe_scope(cls.__module__))
    return sorted(scopes)


def package_files(scope: str) -> list[tuple[str, bytes]]:
    """``(scope/relative path, bytes)`` of every ``.py`` file of a package, sorted by path.

    Raises:
        DiagInputError: the package has no files on disk.
    """
    module = sys.modules.get(scope) or importlib.import_module(scope)
    found: list[tuple[str, bytes]] = []
    for root in _roots(module):
        if root.is_file():
            found.append((f"{scope}/{root.name}", root.read_bytes()))
            continue
        paths = sorted(
            (path for path in root.rglob("*.py") if "__pycache__" not in path.parts),
            key=lambda path: path.relative_to(root).as_posix(),
        )
        found.extend(
            (f"{scope}/{path.relative_to(root).as_posix()}", path.read_bytes()) for path in paths
        )
    if not found:
        raise DiagInputError(
            f"Recipe code in {scope!r} has no source files on disk, so its code version "
            "cannot tell a current capture from a stale one.",
            "define the recipe class in a module file (a package on sys.path).",
        )
    return found


def _roots(module: ModuleType) -> list[Path]:
    search = getattr(module, "__path__", None)
    if search is not None:
        return [Path(entry) for entry in search]
    file = getattr(module, "__file__", None)
    return [Path(file)] if file else []


def absolute_imports(source: bytes) -> set[str]:
    """Top-level names of a module's absolute imports (``import a.b``, ``from a import b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names}


def distribution_versions(import_names: set[str]) -> dict[str, str]:
    """``{distribution: version}``, sorted, of the installed distributions providing names."""
    providers = importlib.metadata.packages_distributions()
    distributions = {dist for name in import_names for dist in providers.get(name, [])}
    return {dist: installed_version(dist) for dist in sorted(distributions)}


def installed_version(distribution: str) -> str:
    """The installed version of a distribution."""
    return importlib.metadata.version(distribution)
