"""The task a recipe trains for: binary, multiclass or regression.

A recipe declares its task (:attr:`~diag_assets.core.recipe.protocol.Recipe.task`); the
capture records it, and the fits of the harness's own (the s22a1 anchor, the s40 probe) take
their LightGBM objective and validation metric from it (:func:`lightgbm_params`). A
capture's labels are checked against its task before anything is trained
(:func:`validate_labels`).

The probe's statistic for each task is named here (:attr:`TaskSpec.statistic`); it is
computed in :mod:`diag_assets.core.diagnostics.probe`, so that the metric libraries stay out
of the recipe package, whose code is part of every capture key.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from diag_assets.core.errors import DiagInputError

LABEL_COLUMN = "label"


class TaskKind(StrEnum):
    """What the label is."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"


@dataclass(frozen=True)
class TaskSpec:
    """How the harness fits and scores a model of one task.

    ``objective`` and ``metric`` are LightGBM's (the metric is the validation loss, lower is
    better); ``statistic`` names the probe's score of the validation predictions, higher is
    better.
    """

    kind: TaskKind
    objective: str
    metric: str
    statistic: str


TASK_SPECS: Mapping[TaskKind, TaskSpec] = {
    # The binary statistic keeps the name s40 verdicts have always recorded.
    TaskKind.BINARY: TaskSpec(TaskKind.BINARY, "binary", "binary_logloss", "validation_auc"),
    TaskKind.MULTICLASS: TaskSpec(
        TaskKind.MULTICLASS, "multiclass", "multi_logloss", "auc_ovr_macro"
    ),
    TaskKind.REGRESSION: TaskSpec(TaskKind.REGRESSION, "regression", "l2", "spearman_ic"),
}


def task_spec(task: TaskKind | str) -> TaskSpec:
    """The spec of ``task``.

    Raises:
        DiagInputError: ``task`` is not a known task.
    """
    try:
        return TASK_SPECS[TaskKind(task)]
    except ValueError:
        raise DiagInputError(
            f"Unknown recipe task {task!r}.",
            f"declare task as one of {', '.join(TaskKind)}.",
        ) from None


def num_classes(y_train: np.ndarray, y_val: np.ndarray | None = None) -> int:
    """The number of classes K of a multiclass fold: its largest label + 1.

    Raises:
        DiagInputError: a class 0..K-1 has no training row (LightGBM cannot learn it).
    """
    labels = [np.asarray(y_train)] + ([] if y_val is None else [np.asarray(y_val)])
    k = int(max(float(np.max(part)) for part in labels if len(part))) + 1
    missing = sorted(set(range(k)) - {int(v) for v in np.unique(labels[0])})
    if missing:
        raise DiagInputError(
            f"The multiclass labels run 0..{k - 1}, but the training rows hold no row of "
            f"class {', '.join(map(str, missing))}.",
            "number the classes 0..K-1 by the classes the training rows hold, or merge the "
            "rare classes.",
        )
    return k


def lightgbm_params(
    task: TaskKind | str, y_train: np.ndarray, y_val: np.ndarray | None = None
) -> dict[str, Any]:
    """LightGBM's objective and validation metric for ``task`` (and ``num_class``)."""
    spec = task_spec(task)
    params: dict[str, Any] = {"objective": spec.objective, "metric": spec.metric}
    if spec.kind is TaskKind.MULTICLASS:
        params["num_class"] = num_classes(y_train, y_val)
    return params


def validate_labels(task: TaskKind | str, y: pd.DataFrame, n_train: int | None = None) -> None:
    """Refuse labels that do not fit ``task``, before anything is trained.

    Binary labels are 0/1; multiclass labels are the integers 0..K-1, K >= 3, each class
    with training rows (and validation rows, which the probe scores per class); regression
    labels are finite numbers. With ``n_train`` the training/validation split is checked too.

    Raises:
        DiagInputError: ``y`` has no ``label`` column, or a label does not fit the task.
    """
    spec = task_spec(task)
    if LABEL_COLUMN not in y.columns:
        raise DiagInputError(
            f"The recipe's y has no {LABEL_COLUMN!r} column (columns: {list(y.columns)}).",
            f"return y with the label in a column named {LABEL_COLUMN!r}.",
        )
    column = y[LABEL_COLUMN]
    values = column.to_numpy()
    if spec.kind is TaskKind.REGRESSION:
        _check_regression(column, values)
    elif spec.kind is TaskKind.BINARY:
        _check_binary(column, values)
    else:
        _check_multiclass(column, values, n_train)


def _numeric(column: pd.Series, values: np.ndarray, task: TaskKind) -> np.ndarray:
    is_bool = pd.api.types.is_bool_dtype(column)
    if is_bool or not pd.api.types.is_numeric_dtype(column):
        raise DiagInputError(
            f"The {task} labels have dtype {column.dtype}, not a number.",
            "declare task binary for true/false labels."
            if is_bool
            else f"give {task} labels as numbers.",
        )
    return values.astype(np.float64)


def _check_regression(column: pd.Series, values: np.ndarray) -> None:
    numbers = _numeric(column, values, TaskKind.REGRESSION)
    bad = ~np.isfinite(numbers)
    if bad.any():
        raise DiagInputError(
            f"{int(bad.sum())} regression labels are not finite (NaN or inf), the first at "
            f"row {int(np.flatnonzero(bad)[0])}.",
            "drop the rows whose target cannot be computed (e.g. the last horizon bars) in prep.",
        )


def _check_binary(column: pd.Series, values: np.ndarray) -> None:
    if pd.api.types.is_bool_dtype(column):
        return
    numbers = _numeric(column, values, TaskKind.BINARY)
    bad = ~np.isin(numbers, (0.0, 1.0))
    if bad.any():
        found = ", ".join(str(v) for v in pd.unique(values[bad])[:5])
        raise DiagInputError(
            f"{int(bad.sum())} binary labels are not 0 or 1 (found {found}).",
            "give binary labels as 0/1, or declare task multiclass (classes 0..K-1) or "
            "regression (a float target).",
        )


def _check_multiclass(column: pd.Series, values: np.ndarray, n_train: int | None) -> None:
    numbers = _numeric(column, values, TaskKind.MULTICLASS)
    bad = ~np.isfinite(numbers) | (numbers < 0) | (numbers != np.round(numbers))
    if bad.any():
        found = ", ".join(str(v) for v in pd.unique(values[bad])[:5])
        raise DiagInputError(
            f"{int(bad.sum())} multiclass labels are not class numbers 0, 1, 2, ... "
            f"(found {found}).",
            "number the classes 0..K-1 as integers, or declare task regression for a float target.",
        )
    k = int(numbers.max()) + 1 if len(numbers) else 0
    if k < 3:
        raise DiagInputError(
            f"The multiclass labels hold {k} classes (0..{k - 1}); multiclass needs at least 3.",
            "declare task binary for a two-class label.",
        )
    parts = [("", numbers)]
    if n_train is not None:
        parts = [("training ", numbers[:n_train]), ("validation ", numbers[n_train:])]
    for part, labels in parts:
        missing = sorted(set(range(k)) - {int(v) for v in np.unique(labels)})
        if missing:
            raise DiagInputError(
                f"The multiclass labels run 0..{k - 1}, but the {part}rows hold no row of "
                f"class {', '.join(map(str, missing))}.",
                "number the classes 0..K-1 by the classes every part of the fold holds, or "
                "merge the rare classes.",
            )
