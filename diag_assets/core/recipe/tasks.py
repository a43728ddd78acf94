"""The task a recipe trains for: binary, multiclass or regression.

A recipe declares its task (:attr:`~diag_assets.core.recipe.protocol.Recipe.task`); the
capture records it, and the diagnostics that fit models of their own (the s22a1 anchor, the
s40 probe) take their LightGBM objective and their metric from it.
"""

from enum import StrEnum


class TaskKind(StrEnum):
    """What the label is."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"
