"""Warm reads of the capture cache: is a cold capture served back warm, intact, and real?

For each fold of the shared fixture set the capture is requested twice in a row: the first
request is the cold leg (or already a HIT when an earlier gate captured the fold), the second
is the warm leg. A warm leg holds when it is a HIT, served within the budget, with the content
hash of the first leg and X/y whose canonical hashes were recomputed on load and matched.

That proves the cache hands back what it stored, not that what it stored is what the recipe
makes. So the gate's reproducibility leg replays some of the folds COLD (:func:`replay_cold`:
the recipe really re-run, with the cached capture's recipe, fold layout and capture config)
and compares the replay's capture key, X/y canonical hashes, trial-log hash, content hash and
training rows with the cached capture's manifest. A cold replay retrains the fold, so it runs
only in a run approved for cold captures (the run tag ``diag/allow_cold_capture=true``, the
same approval a cold capture needs).

The decision: FAIL when a warm leg fails or a replayed fold differs from its capture (naming
the fold and the hash); INSUFFICIENT_DATA when the warm legs hold but the run was not approved
to replay, so reproducibility is unproven; PASS when both legs hold.
Single-flight under contention is measured by ``python -m benchmarks contention``.
"""

import time
from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.capture.modes import CaptureConfig
from diag_assets.core.capture.replay import prepare_cell, replay_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.folds import FoldSpec
from diag_assets.core.gates.report import GateReport, Table, fmt_s
from diag_assets.core.market_data.sources import MarketDataSource
from diag_assets.core.names import ALLOW_COLD_CAPTURE_TAG
from diag_assets.core.recipe.protocol import Recipe

WARM_READ_LABEL = "warm-read gate"

REPLAYED_FIELDS = ("capture_key", "x_hash", "y_hash", "trial_log_hash", "content_hash", "n_train")
"""What a cold replay must reproduce of its cached capture's manifest, in comparison order.

The capture key first: a replay with other inputs (source, recipe version, config) than the
capture's compares nothing. Then the canonical hashes and the training rows."""

HOW_TO_APPROVE_REPLAY = (
    "A cold replay retrains the fold and needs an operator's approval: launch the run with the "
    f"tag {ALLOW_COLD_CAPTURE_TAG}=true (UI Launchpad: 'Edit tags')."
)


class WarmReadDecision(StrEnum):
    """The gate's outcome."""

    PASS = "PASS"
    FAIL = "FAIL"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class WarmRead(BaseModel):
    """One fixture fold, requested cold then warm."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    first_outcome: str
    first_s: float
    warm_outcome: str
    warm_s: float
    first_content_hash: str
    warm_content_hash: str
    verified_on_load: bool


class HashComparison(BaseModel):
    """One field of a cached capture's manifest beside the value its cold replay produced."""

    model_config = ConfigDict(frozen=True)

    field: str
    cached: str | int | None
    replayed: str | int | None

    @property
    def matches(self) -> bool:
        """Whether the replay reproduced the cached value."""
        return self.cached == self.replayed


class ColdReplay(BaseModel):
    """A fixture fold replayed cold and compared with its cached capture."""

    model_config = ConfigDict(frozen=True)

    cell_ref: str
    capture_key: str = Field(description="The cached capture the replay is compared with.")
    replay_s: float
    comparisons: list[HashComparison]

    def mismatches(self) -> list[HashComparison]:
        """The fields the replay did not reproduce."""
        return [c for c in self.comparisons if not c.matches]


def compare_replay(
    cached: CaptureManifest, replayed: CaptureManifest, replay_s: float
) -> ColdReplay:
    """The :data:`REPLAYED_FIELDS` of a cached capture's manifest against its replay's."""
    return ColdReplay(
        cell_ref=cached.cell_ref,
        capture_key=cached.capture_key,
        replay_s=round(replay_s, 3),
        comparisons=[
            HashComparison(
                field=name, cached=getattr(cached, name), replayed=getattr(replayed, name)
            )
            for name in REPLAYED_FIELDS
        ],
    )


def replay_cold(
    cached: CaptureManifest,
    source: MarketDataSource,
    fold_spec: FoldSpec,
    recipe: Recipe,
    config: CaptureConfig,
) -> ColdReplay:
    """Replay the cached capture's cell from scratch and compare the result with ``cached``.

    Nothing is read from the cache or stored: the cell is prepared from ``source`` and its
    recipe run in ``config``'s mode (the whole trial loop for full_replay), exactly as the
    capture that produced ``cached`` was. Costs a real training.

    Raises:
        DiagInputError: the cell does not fit ``source`` or ``fold_spec`` any more (see
            :func:`~diag_assets.core.capture.replay.prepare_cell`).
    """
    started = time.perf_counter()
    prepared = prepare_cell(CellRef.parse(cached.cell_ref), source, fold_spec, recipe, config)
    replayed = replay_cell(prepared, recipe)
    return compare_replay(cached, replayed.manifest, time.perf_counter() - started)


class WarmReadFigures(BaseModel):
    """The numbers behind the decision."""

    model_config = ConfigDict(frozen=True)

    folds: int
    cold_legs: int
    max_warm_s: float
    budget_s: float
    replay_approved: bool
    replayed_folds: int
    replay_s: float


def _short(value: str | int | None) -> str | int | None:
    return value[:16] if isinstance(value, str) else value


class WarmReadReport(GateReport[WarmReadDecision, WarmReadFigures]):
    """Warm reads over the fixture folds, and the cold replays of some of them."""

    gate: str = WARM_READ_LABEL
    reads: list[WarmRead] = Field(default_factory=list)
    replays: list[ColdReplay] = Field(default_factory=list)

    def replayed_cells(self) -> list[str]:
        """The cells whose fold was replayed cold, in order."""
        return [replay.cell_ref for replay in self.replays]

    def tables(self) -> list[Table]:
        """One row per fold (both legs), then one per replayed field (cached vs replayed)."""
        rows = [
            (
                read.cell_ref,
                f"{read.first_outcome} {read.first_s:.2f} s",
                f"{read.warm_outcome} {read.warm_s:.3f} s",
                "yes" if read.first_content_hash == read.warm_content_hash else "NO",
            )
            for read in self.reads
        ]
        tables = [Table(("fold", "first leg", "warm leg", "same content"), rows)]
        if self.replays:
            compared = [
                (
                    replay.cell_ref,
                    comparison.field,
                    _short(comparison.cached),
                    _short(comparison.replayed),
                    "yes" if comparison.matches else "NO",
                )
                for replay in self.replays
                for comparison in replay.comparisons
            ]
            tables.append(
                Table(("replayed fold", "field", "cached", "cold replay", "same"), compared)
            )
        return tables


def _warm_problems(reads: Sequence[WarmRead], budget_s: float) -> list[str]:
    problems = []
    for read in reads:
        if read.warm_outcome != "HIT":
            problems.append(f"{read.cell_ref}: the warm leg was {read.warm_outcome}, not HIT.")
        if read.warm_s > budget_s:
            problems.append(
                f"{read.cell_ref}: the warm leg took {read.warm_s:.1f} s, over {budget_s:g} s."
            )
        if read.warm_content_hash != read.first_content_hash:
            problems.append(f"{read.cell_ref}: the warm leg served other content.")
        if not read.verified_on_load:
            problems.append(f"{read.cell_ref}: X/y failed their canonical hashes on load.")
    if not reads:
        problems.append("The warm-read gate ran on 0 folds; nothing is proven.")
    return problems


def _replay_problems(replays: Sequence[ColdReplay]) -> list[str]:
    problems = [
        f"{replay.cell_ref}: the cold replay's {c.field} is {_short(c.replayed)}, the cached "
        f"capture {replay.capture_key} says {_short(c.cached)}: the cache holds something the "
        "recipe does not reproduce."
        for replay in replays
        for c in replay.mismatches()
    ]
    if not replays:
        problems.append("The run was approved to replay, yet 0 folds were replayed cold.")
    return problems


def warm_read_gate(
    reads: Sequence[WarmRead], replays: Sequence[ColdReplay] | None, *, budget_s: float
) -> WarmReadReport:
    """Decide the warm-read gate (see the module docstring); every failing check is a reason.

    Args:
        reads: The warm legs, one per fixture fold.
        replays: The cold replays; ``None`` when the run was not approved to replay.
        budget_s: The longest a warm leg may take.
    """
    problems = _warm_problems(reads, budget_s)
    if replays is not None:
        problems += _replay_problems(replays)
    figures = WarmReadFigures(
        folds=len(reads),
        cold_legs=sum(read.first_outcome != "HIT" for read in reads),
        max_warm_s=round(max((read.warm_s for read in reads), default=0.0), 3),
        budget_s=budget_s,
        replay_approved=replays is not None,
        replayed_folds=len(replays or ()),
        replay_s=round(sum(replay.replay_s for replay in replays or ()), 3),
    )

    def report(decision: WarmReadDecision, reasons: list[str]) -> WarmReadReport:
        return WarmReadReport(
            decision=decision,
            reasons=reasons,
            figures=figures,
            reads=list(reads),
            replays=list(replays or ()),
        )

    if problems:
        return report(WarmReadDecision.FAIL, problems)
    warm = (
        f"All {len(reads)} fixture folds were served warm (HIT) with the content of their "
        f"first request, X/y verified on load; slowest warm leg {figures.max_warm_s:.3f} s "
        f"(budget {budget_s:g} s)."
    )
    cached = (
        f"{figures.cold_legs} fold(s) were captured cold in this run; the others were already "
        "in the cache (the shared fixture set)."
    )
    if replays is None:
        unproven = (
            "Reproducibility is not proven: no fold was replayed cold, so nothing shows that the "
            f"cached captures are what the recipe makes. {HOW_TO_APPROVE_REPLAY}"
        )
        return report(WarmReadDecision.INSUFFICIENT_DATA, [unproven, warm, cached])
    reproduced = (
        f"{len(replays)} fold(s) replayed cold ({', '.join(r.cell_ref for r in replays)}, "
        f"{fmt_s(figures.replay_s)}) reproduced their cached capture: "
        f"{', '.join(REPLAYED_FIELDS)} all match."
    )
    return report(WarmReadDecision.PASS, [warm, reproduced, cached])
