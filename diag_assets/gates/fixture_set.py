"""The gates judged on the shared fixture set: invariance, seam, release parity, warm reads.

Trial invariance and the prep/train seam say whether dataset_only is sound and reachable,
release parity says whether the capture modes may make it the default, and the warm-read
gate is the capture cache's cold-to-warm check. All of them need full_replay captures of the
same K folds. They get them through the capture cache, so the fixture set is captured once and
reused: the first gate to run captures it (a cold capture, with the operator's approval
tag), every later gate is served from the cache and needs no approval; only the warm-read
gate's reproducibility leg, which replays folds cold on purpose, needs the approval again
to pass. A full_replay capture keeps the trace of the replay that made it, which is what
invariance and seam judge.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from diag_assets.capture.assets import cold_capture_approved, replays_fine_tune
from diag_assets.component.audit import Audit
from diag_assets.core.capture.artifacts import CaptureVerificationError
from diag_assets.core.capture.events import CaptureEvent, EventRecorder
from diag_assets.core.capture.mode_policy import load_policy
from diag_assets.core.capture.modes import CaptureConfig, CaptureMode
from diag_assets.core.capture.outcomes import CaptureResult, ColdCaptureRequiresOperator
from diag_assets.core.capture.replay import CapturedFold
from diag_assets.core.capture.trace import ReplayTrace
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.probe import DEFAULT_MAX_PERMUTATIONS, ProbeSettings, judge_s40
from diag_assets.core.errors import DiagInputError
from diag_assets.core.gates.records import (
    GateVerdict,
    SeamRecord,
    read_seam,
    write_record,
    write_report,
)
from diag_assets.core.gates.release_parity import (
    RELEASE_PARITY_LABEL,
    ReleaseParityDecision,
    compare_fold,
    release_parity_gate,
)
from diag_assets.core.gates.seam import SEAM_LABEL, SeamDecision, seam_gate
from diag_assets.core.gates.trial_invariance import (
    INVARIANCE_LABEL,
    InvarianceDecision,
    trial_invariance_gate,
)
from diag_assets.core.gates.warm_reads import (
    WARM_READ_LABEL,
    WarmRead,
    WarmReadDecision,
    replay_cold,
    warm_read_gate,
)
from diag_assets.core.names import (
    ALLOW_COLD_CAPTURE_TAG,
    FIXTURE_CAPTURES_KEY,
    FIXTURE_GATES_JOB,
    HASH_PARITY_CHECK,
    INVARIANCE_GATE,
    RELEASE_PARITY_GATE,
    RELEASE_PARITY_JOB,
    SEAM_GATE,
    TRIAL_INVARIANCE_CHECK,
    VERDICT_PARITY_CHECK,
    WARM_READ_GATE,
)
from diag_assets.core.recipe.protocol import TrialSettings
from diag_assets.gates.phase0 import gate_result
from diag_assets.market.assets import market_data_of
from resources.capture_cache import CaptureCacheResource
from resources.market_data import MarketDataResource
from resources.storage import ArtifactStoreResource


class FixtureSetConfig(dg.Config):
    """The shared fixture set: K folds, replayed in full with a small trial budget."""

    cell_refs: list[str] = Field(
        default_factory=list,
        description="Cells of the fixture set (K folds); default: folds 1 and 3 of the first "
        "symbol (the last two folds when the layout has fewer than 4). Every gate of one "
        "release must use the same set to share its captures.",
    )
    n_trials: int = Field(default=4, ge=2, le=100, description="Trials per fixture replay.")
    max_rounds: int = Field(default=60, ge=1, le=5_000, description="Rounds per trial.")

    def cells(self, market_data: MarketDataResource) -> list[CellRef]:
        """The fixture cells."""
        if self.cell_refs:
            return [CellRef.parse(ref) for ref in self.cell_refs]
        source = market_data.source()
        n_folds = market_data.fold_spec().n_folds
        folds = (1, 3) if n_folds > 3 else tuple(range(max(0, n_folds - 2), n_folds))
        return [CellRef(source.universe, source.symbols()[0], fold) for fold in folds]

    def capture_config(self, mode: CaptureMode) -> CaptureConfig:
        """The capture request of the fixture set in ``mode``."""
        trials = TrialSettings(n_trials=self.n_trials, max_rounds=self.max_rounds)
        return CaptureConfig(mode=mode, trials=trials)


def fixture_captures(
    context: dg.AssetExecutionContext,
    audit: Audit,
    config: FixtureSetConfig,
    capture_cache: CaptureCacheResource,
    mode: CaptureMode,
    gate: str,
) -> list[CaptureResult]:
    """The fixture set's captures in ``mode``, from the cache or captured once.

    Raises:
        dg.Failure: a full_replay fixture is not cached and the run has no approval tag.
    """
    allow_cold = cold_capture_approved(context)

    def log_event(event: CaptureEvent) -> None:
        context.log.info(event.to_json())

    market_data = market_data_of(context, audit)
    source = market_data.source()
    results = []
    try:
        with capture_cache.open() as cache:
            for cell in config.cells(market_data):
                results.append(
                    cache.get(
                        cell,
                        source,
                        market_data.fold_spec(),
                        audit.recipe,
                        config.capture_config(mode),
                        allow_cold=allow_cold,
                        run_id=context.op_execution_context.run_id,
                        events=EventRecorder(log_event),
                    )
                )
    except ColdCaptureRequiresOperator as refused:
        raise dg.Failure(
            description=f"The {gate} needs the fixture set in full_replay. {refused}",
            metadata={"code": refused.code, "cell_ref": str(refused.cell)},
        ) from refused
    for result in results:
        context.log.info(
            f"{gate}: fixture {result.manifest.cell_ref} ({mode}) served {result.outcome.value}"
        )
    return results


def _fixture_metadata(results: list[CaptureResult]) -> dict[str, Any]:
    return {
        FIXTURE_CAPTURES_KEY: dg.MetadataValue.json(
            [
                {
                    "cell_ref": r.manifest.cell_ref,
                    "mode": str(r.manifest.mode),
                    "cache": r.outcome.value,
                    "capture_key": r.manifest.capture_key,
                }
                for r in results
            ]
        )
    }


def _traces(results: list[CaptureResult], artifacts: ArtifactStoreResource) -> list[ReplayTrace]:
    traces = []
    for result in results:
        trace = artifacts.captures().load_trace(result.manifest)
        if trace is None:
            raise dg.Failure(
                f"Capture {result.manifest.capture_key} of {result.manifest.cell_ref} has no "
                "replay trace; only full_replay captures carry one."
            )
        traces.append(trace)
    return traces


class ReleaseGateConfig(FixtureSetConfig):
    """The fixture set and the s40 probe both captures are judged with."""

    probe_rounds: int = Field(default=50, ge=1, le=1_000, description="Rounds per probe fit.")
    max_permutations: int = Field(
        default=DEFAULT_MAX_PERMUTATIONS,
        ge=1,
        le=9_999,
        description="Most label permutations behind the s40 p-value (a fold without signal "
        "stops early).",
    )
    seed: int = Field(default=0, ge=0, description="Seed of the probe.")


def _loaded(results: list[CaptureResult], artifacts: ArtifactStoreResource) -> list[CapturedFold]:
    captures = artifacts.captures()
    return [captures.load(result.manifest) for result in results]


class WarmGateConfig(FixtureSetConfig):
    """The fixture set, the warm leg's time budget and how many folds are replayed cold."""

    warm_budget_s: float = Field(
        default=120.0, gt=0, description="Longest a warm read of a fixture fold may take."
    )
    replay_folds: int = Field(
        default=1,
        ge=1,
        description="Fixture folds (the first ones of the set) replayed cold and compared with "
        "their cached capture, in a run approved for cold captures; at most the fixture "
        "set's size. Each one retrains the fold.",
    )

    def replayed(self, cells: list[CellRef]) -> list[CellRef]:
        """The fixture cells whose fold is replayed cold: the first ``replay_folds``.

        Raises:
            DiagInputError: ``replay_folds`` is larger than the fixture set.
        """
        if self.replay_folds > len(cells):
            raise DiagInputError(
                f"replay_folds is {self.replay_folds}, but the fixture set holds only "
                f"{len(cells)} fold(s) ({', '.join(map(str, cells))}).",
                f"set replay_folds to at most {len(cells)}, or add cells to cell_refs.",
            )
        return cells[: self.replay_folds]


def _verified(result: CaptureResult, artifacts: ArtifactStoreResource) -> bool:
    try:
        artifacts.captures().load(result.manifest)
    except CaptureVerificationError:
        return False
    return True


def build_fixture_gates(audit: Audit) -> dg.Definitions:
    """The audit's gates judged on its fixture set, and the release parity and fixture jobs."""

    @dg.asset(
        key=audit.key(INVARIANCE_GATE),
        group_name=audit.group("phase0"),
        kinds={"lightgbm"},
        check_specs=[
            dg.AssetCheckSpec(
                TRIAL_INVARIANCE_CHECK,
                asset=audit.key(INVARIANCE_GATE),
                blocking=True,
                description="Blocks the release parity gate unless every trial of every "
                "fixture fold received the same X/y; on failure it names the fold, trial and "
                "column that diverged.",
            )
        ],
        metadata=replays_fine_tune(),
        required_resource_keys={audit.market_data_key, "artifacts", "capture_cache"},
    )
    def g_c4_invariance(
        context: dg.AssetExecutionContext, config: FixtureSetConfig
    ) -> dg.MaterializeResult:
        """Trial invariance: is X/y the same for every trial, on each of K folds?

        Judged on the traces of the fixture set's full_replay captures: structural (prep once,
        before the trials, every trial the same frozen X/y) and empirical (per-trial canonical
        hashes). Any divergence is STOP, naming the fold, trial and column. Capturing the fixture
        set cold needs the approval tag; once cached, no approval is needed.
        """
        artifacts: ArtifactStoreResource = context.resources.artifacts
        capture_cache: CaptureCacheResource = context.resources.capture_cache
        results = fixture_captures(
            context, audit, config, capture_cache, CaptureMode.FULL_REPLAY, INVARIANCE_LABEL
        )
        traces = _traces(results, artifacts)
        report = trial_invariance_gate([(trace.cell_ref, trace) for trace in traces])
        passed = report.decision is InvarianceDecision.PASS
        verdict = GateVerdict(
            decision=report.decision.value, passed=passed, markdown=report.markdown()
        )
        uri = write_report(audit.store(artifacts), INVARIANCE_GATE, verdict)
        return gate_result(
            report,
            uri,
            check_results=[
                dg.AssetCheckResult(
                    check_name=TRIAL_INVARIANCE_CHECK,
                    passed=passed,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "decision": report.decision.value,
                        "reasons": "; ".join(report.reasons),
                    },
                )
            ],
            **_fixture_metadata(results),
        )

    @dg.asset(
        key=audit.key(SEAM_GATE),
        group_name=audit.group("phase0"),
        kinds={"lightgbm"},
        metadata=replays_fine_tune(),
        required_resource_keys={audit.market_data_key, "artifacts", "capture_cache"},
    )
    def g_c4b_seam(
        context: dg.AssetExecutionContext, config: FixtureSetConfig
    ) -> dg.MaterializeResult:
        """The prep/train seam: are X/y fully materialized before the first LightGBM fit?

        Judged on the trace of the fixture set's first full_replay capture. SEAM makes
        dataset_only reachable for this recipe version; otherwise DESIGN_REVIEW_REQUIRED, never
        an automatic single_fit. The record it stores is what the capture mode resolver reads.
        """
        artifacts: ArtifactStoreResource = context.resources.artifacts
        capture_cache: CaptureCacheResource = context.resources.capture_cache
        results = fixture_captures(
            context, audit, config, capture_cache, CaptureMode.FULL_REPLAY, SEAM_LABEL
        )
        trace = _traces(results[:1], artifacts)[0]
        report = seam_gate(trace)
        passed = report.decision is SeamDecision.SEAM
        verdict = GateVerdict(
            decision=report.decision.value, passed=passed, markdown=report.markdown()
        )
        uri = write_report(audit.store(artifacts), SEAM_GATE, verdict)
        write_record(
            audit.store(artifacts),
            SeamRecord(
                recipe_version=trace.recipe_version,
                decision=report.decision.value,
                reasons=report.reasons,
                evaluated_at=datetime.now(UTC),
            ),
        )
        return gate_result(report, uri, **_fixture_metadata(results))

    @dg.asset(
        key=audit.key(RELEASE_PARITY_GATE),
        group_name=audit.group("release"),
        kinds={"lightgbm"},
        deps=[g_c4_invariance, g_c4b_seam],
        check_specs=[
            dg.AssetCheckSpec(
                HASH_PARITY_CHECK,
                asset=audit.key(RELEASE_PARITY_GATE),
                blocking=True,
                description="Release owner: passes only when every fixture fold's dataset_only "
                "capture has the canonical X and y hashes of its full_replay capture; a "
                "failure keeps dataset_only from becoming the capture mode policy's default.",
            ),
            dg.AssetCheckSpec(
                VERDICT_PARITY_CHECK,
                asset=audit.key(RELEASE_PARITY_GATE),
                blocking=True,
                description="Release owner: passes only when the s40 verdict on every fixture "
                "fold's dataset_only capture agrees with the verdict on its full_replay "
                "capture; a failure keeps dataset_only from becoming the default.",
            ),
        ],
        metadata=replays_fine_tune(),
        required_resource_keys={audit.market_data_key, "artifacts", "capture_cache"},
    )
    def lever3_release_gate(
        context: dg.AssetExecutionContext, config: ReleaseGateConfig
    ) -> dg.MaterializeResult:
        """Release parity: may dataset_only become the default? Parity with full_replay on K folds.

        Each fixture fold is read in full_replay (from the shared fixture set) and captured in
        dataset_only; their X/y canonical hashes and their s40 verdicts must agree. Two blocking
        checks carry the result; the stored record is what the capture mode policy reads before
        it honours a dataset_only default.
        """
        artifacts: ArtifactStoreResource = context.resources.artifacts
        capture_cache: CaptureCacheResource = context.resources.capture_cache
        full = fixture_captures(
            context, audit, config, capture_cache, CaptureMode.FULL_REPLAY, RELEASE_PARITY_LABEL
        )
        reduced = fixture_captures(
            context, audit, config, capture_cache, CaptureMode.DATASET_ONLY, RELEASE_PARITY_LABEL
        )
        probe = ProbeSettings(
            num_rounds=config.probe_rounds,
            max_permutations=config.max_permutations,
            seed=config.seed,
        )
        folds = [
            compare_fold(f, r, judge_s40(f, None, probe), judge_s40(r, None, probe))
            for f, r in zip(_loaded(full, artifacts), _loaded(reduced, artifacts), strict=True)
        ]
        recipe_version = audit.recipe_version
        report = release_parity_gate(
            folds,
            recipe_version=recipe_version,
            seam=read_seam(audit.store(artifacts)),
            min_folds=load_policy().release_gate_min_folds,
        )
        write_record(audit.store(artifacts), report.record(datetime.now(UTC)))
        uri = write_report(audit.store(artifacts), RELEASE_PARITY_GATE, report)
        passed = report.decision is ReleaseParityDecision.PASS

        def check(name: str, parity: bool) -> dg.AssetCheckResult:
            return dg.AssetCheckResult(
                check_name=name,
                # A parity that holds still fails the check when the gate as a whole failed
                # (too few folds, no seam): the checks are what blocks the release.
                passed=parity and passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "parity": dg.MetadataValue.bool(parity),
                    "gate_decision": report.decision.value,
                    "recipe_version": recipe_version,
                    "reasons": "; ".join(report.reasons),
                },
            )

        return gate_result(
            report,
            uri,
            check_results=[
                check(HASH_PARITY_CHECK, report.hash_parity),
                check(VERDICT_PARITY_CHECK, report.verdict_parity),
            ],
            recipe_version=recipe_version,
            **_fixture_metadata(full + reduced),
        )

    @dg.asset(
        key=audit.key(WARM_READ_GATE),
        group_name=audit.group("phase0"),
        kinds={"python"},
        metadata=replays_fine_tune(),
        required_resource_keys={audit.market_data_key, "artifacts", "capture_cache"},
    )
    def lever1_gate4_warm(
        context: dg.AssetExecutionContext, config: WarmGateConfig
    ) -> dg.MaterializeResult:
        """Warm reads of the capture cache: each fixture fold served warm, intact and real.

        The first request captures the fold (with approval) or finds it already cached by
        another gate; the second must be a HIT within the budget, with the same content and X/y
        that pass their canonical hashes on load. In a run approved for cold captures the first
        replay_folds folds are also replayed cold and must reproduce their cached capture's
        hashes; without approval the decision is INSUFFICIENT_DATA, never PASS.
        """
        artifacts: ArtifactStoreResource = context.resources.artifacts
        capture_cache: CaptureCacheResource = context.resources.capture_cache
        approved = cold_capture_approved(context)
        market_data = market_data_of(context, audit)
        to_replay = {str(cell) for cell in config.replayed(config.cells(market_data))}
        first = fixture_captures(
            context, audit, config, capture_cache, CaptureMode.FULL_REPLAY, WARM_READ_LABEL
        )
        warm = fixture_captures(
            context, audit, config, capture_cache, CaptureMode.FULL_REPLAY, WARM_READ_LABEL
        )
        reads = [
            WarmRead(
                cell_ref=cold.manifest.cell_ref,
                first_outcome=cold.outcome.value,
                first_s=round(cold.elapsed_s, 3),
                warm_outcome=hot.outcome.value,
                warm_s=round(hot.elapsed_s, 3),
                first_content_hash=cold.manifest.content_hash,
                warm_content_hash=hot.manifest.content_hash,
                verified_on_load=_verified(hot, artifacts),
            )
            for cold, hot in zip(first, warm, strict=True)
        ]
        replays = None
        if approved:
            replays = [
                replay_cold(
                    hot.manifest,
                    market_data.source(),
                    market_data.fold_spec(),
                    audit.recipe,
                    config.capture_config(CaptureMode.FULL_REPLAY),
                )
                for hot in warm
                if hot.manifest.cell_ref in to_replay
            ]
            for replay in replays:
                context.log.info(
                    f"{WARM_READ_LABEL}: {replay.cell_ref} replayed cold in {replay.replay_s} s, "
                    f"{len(replay.mismatches())} field(s) differ from its capture"
                )
        report = warm_read_gate(reads, replays, budget_s=config.warm_budget_s)
        verdict = GateVerdict(
            decision=report.decision.value,
            passed=report.decision is WarmReadDecision.PASS,
            markdown=report.markdown(),
        )
        uri = write_report(audit.store(artifacts), WARM_READ_GATE, verdict)
        return gate_result(
            report,
            uri,
            replayed_cells=dg.MetadataValue.json(report.replayed_cells()),
            replays=dg.MetadataValue.json([r.model_dump(mode="json") for r in report.replays]),
            **_fixture_metadata(first),
        )

    release_parity_job = dg.define_asset_job(
        audit.name(RELEASE_PARITY_JOB),
        selection=[g_c4_invariance, g_c4b_seam, lever3_release_gate],
        description="The release parity gate of the capture modes: trial invariance and the "
        "prep/train seam on the shared fixture set, then dataset_only vs full_replay parity. "
        "Capturing the fixture set cold needs the tag "
        f"{ALLOW_COLD_CAPTURE_TAG}=true.",
    )

    fixture_gates_job = dg.define_asset_job(
        audit.name(FIXTURE_GATES_JOB),
        selection=[g_c4_invariance, g_c4b_seam, lever1_gate4_warm],
        description="The gates that replay the shared fixture set: trial invariance, the "
        "prep/train seam and the capture cache's warm reads. The first run needs the tag "
        f"{ALLOW_COLD_CAPTURE_TAG}=true; later runs read the fixture set from the cache, but "
        "the warm-read gate passes only with the tag, which lets it replay folds cold "
        "(INSUFFICIENT_DATA without).",
    )

    return dg.Definitions(
        assets=[g_c4_invariance, g_c4b_seam, lever3_release_gate, lever1_gate4_warm],
        jobs=[release_parity_job, fixture_gates_job],
    )
