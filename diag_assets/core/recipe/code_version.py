"""A recipe's code version: its declared version plus a hash of the code it runs."""

import dataclasses
import inspect
from typing import Any

from diag_assets.core.hashing.digests import hash_json
from diag_assets.core.recipe import prep as prep_module
from diag_assets.core.recipe import protocol as protocol_module
from diag_assets.core.recipe import reference as reference_module
from diag_assets.core.recipe import training as training_module


def recipe_code_version(recipe: Any) -> str:
    """The recipe's declared version plus a hash of its code and its prep settings.

    The code is the source of the recipe's module and of the prep and training modules it
    runs, so a change there changes this value even when nobody bumped ``version``; the prep
    settings (e.g. the dead zone) change X/y, so they count too.
    """
    # Whole modules, not just the recipe class: the trial body and the search space live
    # beside it (fit_trial, draw_params). Module source comes from linecache; a class's
    # source would need an AST parse, which CPython 3.11 does not make thread-safe.
    modules = [prep_module, training_module, protocol_module, reference_module]
    recipe_module = inspect.getmodule(type(recipe))
    if recipe_module is not None and recipe_module not in modules:
        modules.append(recipe_module)
    settings = getattr(recipe, "prep_settings", None)
    payload = {
        "sources": [inspect.getsource(module) for module in modules],
        "prep_settings": dataclasses.asdict(settings)
        if dataclasses.is_dataclass(settings) and not isinstance(settings, type)
        else None,
    }
    return f"{recipe.name}-v{recipe.version}-{hash_json(payload)[:16]}"
