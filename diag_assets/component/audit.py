"""One audit, resolved: its recipe, its diagnostics, and the names of everything it defines.

An :class:`Audit` is what the audit component builds its assets from. Its ``prefix`` keeps
two audits of one code location apart: the packaged audit has none, so its asset keys, job
names and stored results are the released ones (``captured_fold``, ``audit``,
``results/...``); an audit with prefix ``btc_eth`` has asset keys ``btc_eth/captured_fold``,
jobs ``btc_eth__audit``, the dynamic partitions ``btc_eth__symbols``, the resource
``btc_eth_market_data`` and its results and gate records under ``audits/btc_eth/`` of the
artifact store. Captures are content-addressed and shared by every audit of the store.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import dagster as dg
from pydantic import BaseModel

from diag_assets.core import names
from diag_assets.core.cells import fold_partition_key
from diag_assets.core.diagnostics.builtins import ANCHOR
from diag_assets.core.diagnostics.plugin import Diagnostic
from diag_assets.core.errors import DiagInputError, quoted
from diag_assets.core.names import DIAGNOSTIC_ASSETS, SYMBOLS_PARTITIONS
from diag_assets.core.recipe.code_version import recipe_code_version
from diag_assets.core.recipe.protocol import Recipe, TrialSettings
from diag_assets.core.storage.blob import BlobStore, NamespacedBlobStore
from diag_assets.core.storage.results import ResultStore
from diag_assets.partitions import FOLD_DIMENSION, MAX_FOLDS, SYMBOL_DIMENSION, folds_partitions
from resources.storage import ArtifactStoreResource

PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,40}")
MARKET_DATA_RESOURCE = "market_data"
AUDITS_NAMESPACE = "audits"
# The names an audit gives its assets, checks, jobs and sensors (names.py holds them): no
# plug-in diagnostic may take one for its asset.
RESERVED_ASSET_NAMES = frozenset(
    value
    for key, value in vars(names).items()
    if key.isupper() and isinstance(value, str) and not key.endswith(("_TAG", "_KEY"))
)


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can name an audit's assets, jobs and resources.

    Raises:
        DiagInputError: it is not a lower-case identifier.
    """
    if not isinstance(prefix, str) or (prefix and not PREFIX_PATTERN.fullmatch(prefix)):
        raise DiagInputError(
            f"The audit prefix {quoted(prefix)} cannot name assets, jobs and resources.",
            "use a lower-case identifier: a letter, then letters, digits or _ (at most 41).",
        )
    return prefix


@dataclass(frozen=True)
class Audit:
    """One audit of a code location (see the module docstring)."""

    prefix: str
    recipe: Recipe
    diagnostics: tuple[Diagnostic, ...]
    trials: TrialSettings = field(default_factory=TrialSettings)
    diagnostic_settings: Mapping[str, BaseModel] = field(default_factory=dict)
    description: str = ""
    # Folds per symbol of the audit's layout: its cells are fold-0 .. fold-{n_folds - 1}.
    n_folds: int = MAX_FOLDS

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        names = [d.name for d in self.diagnostics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise DiagInputError(
                f"The audit {self.label} lists the diagnostic(s) {', '.join(twice)} twice.",
                "list each diagnostic once.",
            )
        taken = sorted(
            d.name
            for d in self.diagnostics
            if d.name not in DIAGNOSTIC_ASSETS and d.name in RESERVED_ASSET_NAMES
        )
        if taken:
            raise DiagInputError(
                f"The diagnostic name(s) {', '.join(taken)} of the audit {self.label} are names "
                "of the audit's own assets.",
                "rename the plug-in diagnostic (its class attribute name).",
            )
        readers = [d.name for d in self.diagnostics if d.reads_anchor]
        if readers and not self.has_anchor:
            raise DiagInputError(
                f"The audit {self.label} runs {', '.join(readers)}, which read(s) the s22a1 "
                "anchor, without the anchor.",
                f"add {ANCHOR.name} to its diagnostics, or remove {', '.join(readers)}.",
            )

    @property
    def label(self) -> str:
        """How messages name the audit."""
        return repr(self.prefix) if self.prefix else "(the packaged audit)"

    # Names -------------------------------------------------------------------------------

    def key(self, name: str) -> dg.AssetKey:
        """The asset key of one of the audit's assets."""
        return dg.AssetKey([self.prefix, name]) if self.prefix else dg.AssetKey(name)

    def asset_name(self, name: str) -> str:
        """The user string of :meth:`key` (``btc_eth/captured_fold``)."""
        return self.key(name).to_user_string()

    def unprefixed(self, key: dg.AssetKey) -> str:
        """The audit-level name of one of the audit's asset keys (``captured_fold``)."""
        return key.path[-1]

    def name(self, name: str) -> str:
        """A job, op, sensor or schedule name of the audit (``btc_eth__audit``)."""
        return f"{self.prefix}__{name}" if self.prefix else name

    @property
    def market_data_key(self) -> str:
        """The resource key of the audit's market data."""
        return f"{self.prefix}_{MARKET_DATA_RESOURCE}" if self.prefix else MARKET_DATA_RESOURCE

    def group(self, group: str) -> str:
        """The asset group of the audit's assets of ``group``."""
        return f"{self.prefix}_{group}" if self.prefix else group

    # Partitions --------------------------------------------------------------------------

    @cached_property
    def symbols_partitions(self) -> dg.DynamicPartitionsDefinition:
        """The audit's dynamic symbols partitions."""
        return dg.DynamicPartitionsDefinition(name=self.name(SYMBOLS_PARTITIONS))

    @cached_property
    def cells_partitions(self) -> dg.MultiPartitionsDefinition:
        """The audit's cells: symbol x the folds of its layout."""
        folds = (
            folds_partitions
            if self.n_folds == MAX_FOLDS
            else dg.StaticPartitionsDefinition([fold_partition_key(k) for k in range(self.n_folds)])
        )
        return dg.MultiPartitionsDefinition(
            {SYMBOL_DIMENSION: self.symbols_partitions, FOLD_DIMENSION: folds}
        )

    # Storage -----------------------------------------------------------------------------

    @property
    def namespace(self) -> str | None:
        """Where the audit's results and gate records live in the artifact store."""
        return f"{AUDITS_NAMESPACE}/{self.prefix}" if self.prefix else None

    def store(self, artifacts: ArtifactStoreResource) -> BlobStore:
        """The audit's part of the artifact store (results and gate records)."""
        store = artifacts.blob_store()
        return NamespacedBlobStore(store, self.namespace) if self.namespace else store

    def results(self, artifacts: ArtifactStoreResource) -> ResultStore:
        """The audit's per-cell results."""
        return ResultStore(self.store(artifacts))

    # Recipe and diagnostics --------------------------------------------------------------

    @cached_property
    def recipe_version(self) -> str:
        """The recipe's code version: part of every capture key and the capture's code version."""
        return recipe_code_version(self.recipe)

    @property
    def has_anchor(self) -> bool:
        """Whether the audit fits the s22a1 anchor."""
        return any(d.name == ANCHOR.name for d in self.diagnostics)

    @property
    def anchor_readers(self) -> tuple[Diagnostic, ...]:
        """The diagnostics that run in the anchor's step (they read it when there is one)."""
        return tuple(d for d in self.diagnostics if d.reads_anchor)

    @property
    def standalone(self) -> tuple[Diagnostic, ...]:
        """The diagnostics with an asset of their own."""
        return tuple(d for d in self.diagnostics if not d.reads_anchor and d.name != ANCHOR.name)

    @property
    def verdicts(self) -> tuple[Diagnostic, ...]:
        """The diagnostics whose results the report weighs: all but the anchor."""
        return tuple(d for d in self.diagnostics if d.reported)

    def settings_of(self, diagnostic: Diagnostic) -> BaseModel:
        """The audit's settings of ``diagnostic`` (its defaults unless given)."""
        return self.diagnostic_settings.get(diagnostic.name) or diagnostic.settings(None)


def unique_prefixes(audits: Sequence[Audit]) -> None:
    """Refuse two audits with one prefix in a code location.

    Raises:
        DiagInputError: two audits share a prefix.
    """
    seen: dict[str, int] = {}
    for audit in audits:
        seen[audit.prefix] = seen.get(audit.prefix, 0) + 1
    twice = sorted(prefix for prefix, count in seen.items() if count > 1)
    if twice:
        shown = ", ".join(repr(p) if p else "'' (no prefix)" for p in twice)
        raise DiagInputError(
            f"Two audits of the code location use the prefix {shown}: their assets, jobs and "
            "results would collide.",
            "give every audit its own prefix in its defs.yaml (attributes.prefix).",
        )


def settings_for(
    diagnostics: Sequence[Diagnostic], given: Mapping[str, Mapping[str, Any]]
) -> dict[str, BaseModel]:
    """Each diagnostic's settings model, filled from ``given`` (by diagnostic name).

    Raises:
        DiagInputError: settings name a diagnostic the audit does not run, or do not fit.
    """
    by_name = {d.name: d for d in diagnostics}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        raise DiagInputError(
            f"diagnostic_settings names {', '.join(unknown)}, which the audit does not run.",
            f"use the names of its diagnostics ({', '.join(by_name)}).",
        )
    return {name: by_name[name].settings(values) for name, values in given.items()}
