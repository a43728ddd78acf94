"""Plug-ins: recipes and diagnostics named in an audit, by import path or by entry point.

An audit names a plug-in either by import path, ``team_pkg.module:Name``, or by a name its
distribution registers under an entry point group (``diag_harness.recipes`` or
``diag_harness.diagnostics``) in its ``pyproject.toml``::

    [project.entry-points."diag_harness.recipes"]
    momentum = "team_pkg.recipes:MomentumRecipe"

Both resolve to the object itself. A name that does not resolve is refused with what was
looked for and what is installed, before anything runs.
"""

import importlib
import importlib.metadata
from typing import Any

from diag_assets.core.errors import DiagInputError

RECIPES_GROUP = "diag_harness.recipes"
DIAGNOSTICS_GROUP = "diag_harness.diagnostics"


def registered_names(group: str) -> list[str]:
    """The names installed distributions register under the entry point ``group``."""
    return sorted({entry.name for entry in importlib.metadata.entry_points(group=group)})


def load_plugin(reference: str, group: str, *, what: str) -> Any:
    """The object ``reference`` names: ``module.path:Name``, or a name registered in ``group``.

    Raises:
        DiagInputError: nothing resolves: the module or name does not exist, or no installed
            distribution registers the name.
    """
    reference = reference.strip()
    if ":" in reference:
        return _import(reference, what=what)
    entries = [e for e in importlib.metadata.entry_points(group=group) if e.name == reference]
    if not entries:
        names = ", ".join(registered_names(group)) or "none"
        raise DiagInputError(
            f"No {what} is registered as {reference!r} under the entry point group {group!r} "
            f"(registered: {names}).",
            f"name the {what} by import path ('package.module:Name'), or install the "
            f"distribution that registers {reference!r} under {group!r}.",
        )
    if len({entry.value for entry in entries}) > 1:
        targets = ", ".join(sorted({entry.value for entry in entries}))
        raise DiagInputError(
            f"The {what} name {reference!r} is registered more than once ({targets}).",
            "name it by import path instead, or uninstall one of the distributions.",
        )
    try:
        return entries[0].load()
    except (ImportError, AttributeError) as error:
        raise DiagInputError(
            f"The {what} {reference!r} is registered as {entries[0].value!r}, which does not "
            f"load: {error}",
            "reinstall the distribution that registers it, or fix its entry point.",
        ) from error


def _import(reference: str, *, what: str) -> Any:
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise DiagInputError(
            f"The {what} {reference!r} is not an import path.",
            "write it as 'package.module:Name'.",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise DiagInputError(
            f"The {what} {reference!r} does not resolve: module {module_name!r} cannot be "
            f"imported ({error}).",
            f"install the package that provides {module_name!r}, or correct the import path.",
        ) from error
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise DiagInputError(
                f"The {what} {reference!r} does not resolve: {module_name!r} has no {attribute!r}.",
                f"check the name after ':' (defined in {module_name!r}: "
                f"{', '.join(n for n in dir(module) if not n.startswith('_'))[:300]}).",
            )
        target = getattr(target, part)
    return target
