"""``AuditComponent``: one audit of a team's fine-tune, from a ``defs.yaml`` or from Python.

In a Dagster project's defs folder::

    # defs/btc_eth/defs.yaml
    type: diag_assets.component.AuditComponent
    attributes:
      prefix: btc_eth
      market_data: {kind: directory, directory: ../../data/klines, universe: binance}
      folds: {n_folds: 3, min_train_bars: 800, validation_bars: 150, purge_bars: 12,
              label_horizon: 6}
      recipe: forward_returns            # an entry point name, or package.module:Class
      recipe_params: {horizon: 6}
      trials: {n_trials: 6, max_rounds: 200}
      diagnostics: [s22a1, s40, s22a2, s23, importance_stability]

builds the whole audit: market data, the capture, the diagnostics, the report and the
summary, the Phase-0 gates and the release gate, their jobs, sensors and schedule, under the
prefix. Every name is checked when the code location loads (``dagster definitions
validate``): a recipe or diagnostic that does not resolve, a recipe without a required method
or with an unknown task, settings that do not fit, each fails with the file, the field and
the fix, and nothing runs.
"""

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import dagster as dg
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from diag_assets.component.audit import Audit, settings_for
from diag_assets.core.capture.replay import recipe_lookback
from diag_assets.core.diagnostics.builtins import BUILT_IN_NAMES
from diag_assets.core.diagnostics.plugin import Diagnostic, resolve_diagnostic
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import FoldSpec
from diag_assets.core.plugins import RECIPES_GROUP, load_plugin
from diag_assets.core.recipe.protocol import Recipe, TrialSettings
from diag_assets.core.recipe.tasks import TaskKind
from resources.market_data import (
    DirectoryMarketDataResource,
    MarketDataResource,
    SourceMarketDataResource,
    SyntheticMarketDataResource,
)

RECIPE_METHODS = ("prep", "run_trials", "parameters")


class MarketDataSettings(dg.Resolvable, dg.Model):
    """Where the audit's bars come from."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["synthetic", "directory", "source"] = Field(
        default="synthetic",
        description="synthetic (generated bars), directory (a folder of candle files) or "
        "source (a MarketDataSource class of your own, by import path).",
    )
    universe: str | None = Field(default=None, description="Universe name used in cell_refs.")
    symbols: list[str] | None = Field(default=None, description="synthetic: symbols to generate.")
    n_bars: int | None = Field(default=None, description="synthetic: hourly bars per symbol.")
    seed: int | None = Field(default=None, description="synthetic: seed of the generator.")
    timeframe: str = Field(default="1h", description="Bar timeframe.")
    directory: str | None = Field(
        default=None, description="directory: the folder, relative to this defs.yaml or absolute."
    )
    source: str | None = Field(
        default=None, description="source: import path of the class, package.module:Class."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="source: keyword arguments of the class."
    )


_FOLDS = FoldSpec()


class FoldSettings(dg.Resolvable, dg.Model):
    """The walk-forward fold layout of every symbol, in bars or in time, and its gap limits.

    The fields are those of the market data resource (and of the core's ``FoldSpec``, which
    validates them and explains each).
    """

    model_config = ConfigDict(extra="forbid")

    n_folds: int = Field(default=5, ge=1, le=5)
    min_train_bars: int = Field(default=8_760, ge=1)
    validation_bars: int = Field(default=1_440, ge=1)
    purge_bars: int = Field(default=24, ge=0)
    label_horizon: int = Field(default=12, ge=1)
    first_validation: str = Field(default="", description="Time layout: fold 0's validation start.")
    validation_span: str = Field(default="", description="Time layout: each validation block.")
    purge_span: str = Field(default="", description="Time layout: dropped before validation.")
    min_train_span: str = Field(default="", description="Time layout: fold 0's training time.")
    gap_tolerance: str = Field(default=_FOLDS.gap_tolerance)
    max_validation_gap: str = Field(default=_FOLDS.max_validation_gap)
    max_gap_row_share: float = Field(default=_FOLDS.max_gap_row_share, ge=0, le=1)


class AuditComponent(dg.Component, dg.Resolvable, dg.Model):
    """One audit: a recipe on a universe, with its diagnostics, gates and jobs.

    Two audits live side by side in one code location when their ``prefix`` differs: their
    assets, checks, jobs, sensors, partitions and stored results are all kept apart.
    """

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(
        default="",
        description="Asset-key prefix and name prefix of the audit's jobs (lower-case "
        "identifier). Empty only for a code location with a single audit.",
    )
    description: str = Field(default="", description="What the audit is for.")
    market_data: MarketDataSettings = Field(default_factory=MarketDataSettings)
    folds: FoldSettings = Field(default_factory=FoldSettings)
    recipe: str = Field(
        default="reference",
        description="The recipe: a name registered under the diag_harness.recipes entry point "
        "group, or an import path package.module:Class.",
    )
    recipe_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the recipe class; part of the capture key.",
    )
    trials: dict[str, Any] = Field(
        default_factory=dict,
        description="Trial settings (n_trials, seed, max_rounds, early_stopping_rounds, "
        "num_threads); part of the capture key. A run's config overrides them.",
    )
    diagnostics: list[str] = Field(
        default_factory=lambda: list(BUILT_IN_NAMES),
        description="The diagnostics to run: built-in names (s22a1, s40, s27, s22a2, s23), "
        "names registered under diag_harness.diagnostics, or import paths.",
    )
    diagnostic_settings: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Settings of plug-in diagnostics, by diagnostic name.",
    )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The audit's definitions, with the code location's shared resources."""
        # The builders import the Audit from this package: imported when building, not at load.
        from diag_assets.component.location import build_location

        where = Path(context.path)
        refuse_shared_prefix(self.prefix, where, Path(context.defs_module_path))
        audit, market_data = self.resolve(where)
        return build_location([(audit, market_data)])

    def resolve(self, where: Path | None = None) -> tuple[Audit, MarketDataResource]:
        """The audit and its market data resource; ``where`` is the defs.yaml's folder.

        Raises:
            DiagInputError: a field does not resolve or does not fit; the message names the
                file and the field.
        """
        try:
            recipe = resolve_recipe(self.recipe, self.recipe_params)
            diagnostics = [resolve_diagnostic(name) for name in self.diagnostics]
            audit = Audit(
                prefix=self.prefix,
                recipe=recipe,
                diagnostics=tuple(diagnostics),
                trials=_trials(self.trials),
                diagnostic_settings=_plugin_settings(diagnostics, self.diagnostic_settings),
                description=self.description,
                n_folds=self.folds.n_folds,
            )
            market_data = self.market_data_resource(where)
            market_data.fold_spec()  # a fold layout that does not validate fails the load
            return audit, market_data
        except DiagInputError as error:
            place = f"{where / 'defs.yaml'}: " if where is not None else ""
            raise DiagInputError(f"{place}{error.problem}", error.fix) from error

    def market_data_resource(self, where: Path | None = None) -> MarketDataResource:
        """The audit's market data as a resource, with its fold layout."""
        settings = self.market_data
        folds = self.folds.model_dump()
        if settings.kind == "synthetic":
            given = settings.model_dump(
                include={"universe", "symbols", "n_bars", "seed"}, exclude_none=True
            )
            return SyntheticMarketDataResource(**given, timeframe=settings.timeframe, **folds)
        if settings.kind == "directory":
            if not settings.directory or not settings.universe:
                raise DiagInputError(
                    "market_data of kind directory needs a directory and a universe.",
                    "set market_data.directory (the folder of candle files) and "
                    "market_data.universe (the name cells use, e.g. binance).",
                )
            directory = Path(settings.directory)
            if not directory.is_absolute() and where is not None:
                directory = (where / directory).resolve()
            if not directory.is_dir():
                raise DiagInputError(
                    f"market_data.directory {directory} is not a folder.",
                    "point it at the folder of candle files (relative to this defs.yaml).",
                )
            return DirectoryMarketDataResource(
                directory=str(directory),
                universe=settings.universe,
                timeframe=settings.timeframe,
                **folds,
            )
        if not settings.source:
            raise DiagInputError(
                "market_data of kind source needs a source.",
                "set market_data.source to your MarketDataSource class, package.module:Class.",
            )
        resource = SourceMarketDataResource(
            source_class=settings.source, params=settings.params, **folds
        )
        resource.source()  # resolve it now: a wrong import path fails the load, not a run
        return resource


def refuse_shared_prefix(prefix: str, where: Path, defs_root: Path) -> None:
    """Refuse a prefix another audit component of the same defs folder already uses.

    Raises:
        DiagInputError: another ``defs.yaml`` under ``defs_root`` declares an audit with the
            same ``attributes.prefix``.
    """
    own = (where / "defs.yaml").resolve()
    for path in sorted(defs_root.rglob("defs.yaml")):
        if path.resolve() == own:
            continue
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue  # Dagster reports that file's own syntax error when it loads it
        for document in documents:
            if not isinstance(document, dict) or not str(document.get("type", "")).endswith(
                "AuditComponent"
            ):
                continue
            other = (document.get("attributes") or {}).get("prefix", "") or ""
            if other == prefix:
                shown = repr(prefix) if prefix else "'' (no prefix)"
                raise DiagInputError(
                    f"{own}: attributes.prefix {shown} is also the prefix of the audit in "
                    f"{path}; two audits with one prefix would share assets, jobs and results.",
                    "give each audit's defs.yaml its own attributes.prefix.",
                )


def resolve_recipe(reference: str, params: dict[str, Any]) -> Recipe:
    """The recipe an audit names, built with ``params``, checked against the protocol.

    Raises:
        DiagInputError: it does not resolve, lacks a method, declares an unknown task, or
            refuses its parameters.
    """
    target: Any = load_plugin(reference, RECIPES_GROUP, what="recipe")
    if not inspect.isclass(target):
        raise DiagInputError(
            f"The recipe {reference!r} is {target!r}, not a class.",
            "point recipe at the recipe class (package.module:Class).",
        )
    target = cast(Any, target)
    missing = [name for name in RECIPE_METHODS if not callable(getattr(target, name, None))]
    for attribute in ("name", "version", "task", "lookback_bars"):
        if not hasattr(target, attribute):
            missing.append(attribute)
    if missing:
        raise DiagInputError(
            f"The recipe {reference!r} ({target.__module__}.{target.__qualname__}) has no "
            f"{', '.join(missing)}.",
            "implement the Recipe protocol (diag_assets.core.recipe.protocol): name, version, "
            "task, lookback_bars, parameters(), prep(bars, fold) and "
            "run_trials(data, settings, observer).",
        )
    try:
        TaskKind(target.task)
    except ValueError:
        raise DiagInputError(
            f"The recipe {reference!r} declares the task {target.task!r}.",
            f"declare one of {', '.join(TaskKind)} (diag_assets.core.recipe.tasks.TaskKind).",
        ) from None
    try:
        recipe = cast(Recipe, target(**params))
    except (TypeError, ValueError) as error:
        if isinstance(error, DiagInputError):
            raise
        signature = inspect.signature(target)
        raise DiagInputError(
            f"The recipe {reference!r} refuses recipe_params {params}: {error}",
            f"give the keyword arguments of {target.__qualname__}{signature}.",
        ) from error
    recipe_lookback(recipe)  # an unusable lookback fails the load, not the first capture
    return recipe


def _trials(values: dict[str, Any]) -> TrialSettings:
    try:
        return TrialSettings(**values)
    except ValidationError as error:
        raise DiagInputError(
            f"trials {values} do not fit the trial settings: {error}",
            f"use the fields {', '.join(TrialSettings.model_fields)}.",
        ) from error


def _plugin_settings(
    diagnostics: Sequence[Diagnostic], given: dict[str, dict[str, Any]]
) -> dict[str, BaseModel]:
    built_in = sorted(set(given) & set(BUILT_IN_NAMES))
    if built_in:
        raise DiagInputError(
            f"diagnostic_settings names the built-in {', '.join(built_in)}.",
            "set a built-in diagnostic's knobs in the run config of the audit job (the op "
            "anchor_and_consumers, or the asset's config).",
        )
    return settings_for(diagnostics, given)
