"""``captured_fold``: a cell's replayed X/y and trial log, stored as Parquet and JSON."""

import inspect
import json
import warnings
from typing import Any

import dagster as dg
from pydantic import Field

from diag_assets.capture.modes import decide_mode, run_consumers
from diag_assets.component.audit import Audit
from diag_assets.core.capture.events import CaptureEvent, EventRecorder
from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.capture.mode_policy import MODE_ENV, CaptureModeRefused, load_policy
from diag_assets.core.capture.modes import CaptureConfig, CaptureMode
from diag_assets.core.capture.outcomes import CaptureResult, ColdCaptureRequiresOperator
from diag_assets.core.diagnostics.certification import AnchorUse, certify
from diag_assets.core.metadata import CaptureMetadata
from diag_assets.core.names import ALLOW_COLD_CAPTURE_TAG, CAPTURED_FOLD, MARKET_BARS
from diag_assets.core.recipe.protocol import TrialSettings
from diag_assets.core.recipe.tasks import TaskKind
from diag_assets.market.assets import market_data_of
from diag_assets.metadata_values import contract_metadata
from diag_assets.partitions import SYMBOL_DIMENSION, cell_from_partition_key
from resources.capture_cache import CaptureCacheResource
from resources.storage import ArtifactStoreResource

AUDIT_DEFAULT = "Unset: the audit's trials setting."


class CaptureRunConfig(dg.Config):
    """How to replay the cell's fine-tune; every field is part of the capture key.

    A field left unset takes the audit's ``trials`` setting (its defaults: 8 trials, seed 0,
    300 rounds, early stopping after 30, 2 threads).
    """

    n_trials: int | None = Field(
        default=None, ge=1, le=500, description=f"Hyper-parameter trials. {AUDIT_DEFAULT}"
    )
    seed: int | None = Field(
        default=None, ge=0, description=f"Seed of the parameter draws and fits. {AUDIT_DEFAULT}"
    )
    max_rounds: int | None = Field(
        default=None, ge=1, le=5_000, description=f"Rounds per trial. {AUDIT_DEFAULT}"
    )
    early_stopping_rounds: int | None = Field(
        default=None,
        ge=1,
        description=f"Rounds without improvement before a trial stops. {AUDIT_DEFAULT}",
    )
    num_threads: int | None = Field(
        default=None, ge=1, le=64, description=f"LightGBM threads per fit. {AUDIT_DEFAULT}"
    )
    capture_mode: str | None = Field(
        default=None,
        description="Capture mode override: full_replay, dataset_only or single_fit. Unset: "
        f"{MODE_ENV}, then the policy file diag_assets/policy/capture_mode.json.",
    )

    def trials(self, defaults: TrialSettings | None = None) -> TrialSettings:
        """The trial settings: the fields given here over ``defaults`` (the audit's)."""
        given = self.model_dump(exclude={"capture_mode"}, exclude_none=True)
        return (defaults or TrialSettings()).model_copy(update=given)

    def to_core(
        self, mode: CaptureMode = CaptureMode.FULL_REPLAY, defaults: TrialSettings | None = None
    ) -> CaptureConfig:
        """The core capture config in ``mode``, over the audit's trial settings ``defaults``."""
        return CaptureConfig(mode=mode, trials=self.trials(defaults))


def capture_record(result: CaptureResult) -> CaptureMetadata:
    """What the gates' history, the demo and the benchmarks read back of a served capture."""
    manifest = result.manifest
    return CaptureMetadata(
        cell_ref=manifest.cell_ref,
        cache=result.outcome,
        served_in_s=round(result.elapsed_s, 3),
        capture_elapsed_s=manifest.elapsed_s,
        bytes=manifest.total_bytes,
        content_hash=manifest.content_hash,
        capture_events=_event_dicts(result.events),
    )


def capture_metadata(manifest: CaptureManifest, uri: str) -> dict[str, Any]:
    """What else an operator reads about a capture in the UI."""
    label = "label_balance" if manifest.task is TaskKind.BINARY else "label_mean"
    return {
        "capture_key": manifest.capture_key,
        "artifact_uri": dg.MetadataValue.path(uri),
        "rows": dg.MetadataValue.int(manifest.rows),
        "train_rows": dg.MetadataValue.int(manifest.n_train),
        "validation_rows": dg.MetadataValue.int(manifest.rows - manifest.n_train),
        "columns": dg.MetadataValue.int(len(manifest.feature_names)),
        # The manifest's label means: the share of 1s for a binary task, else the mean label.
        f"{label}_train": dg.MetadataValue.float(manifest.label_balance_train),
        f"{label}_validation": dg.MetadataValue.float(manifest.label_balance_validation),
        "task": str(manifest.task),
        "trials": dg.MetadataValue.int(manifest.n_trials),
        "best_trial": _int_or_null(manifest.best_trial),
        "best_iter": _int_or_null(manifest.best_iter),
        "best_score": dg.MetadataValue.null()
        if manifest.best_score is None
        else dg.MetadataValue.float(manifest.best_score),
        "x_hash": manifest.x_hash,
        "y_hash": manifest.y_hash,
        "trial_log_hash": manifest.trial_log_hash,
        "source_version": manifest.source_version,
        "recipe_version": manifest.recipe_version,
        "mode": str(manifest.mode),
        "parity_check": dg.MetadataValue.null()
        if manifest.parity is None
        else dg.MetadataValue.json(manifest.parity.model_dump()),
    }


def _int_or_null(value: int | None) -> dg.MetadataValue:
    return dg.MetadataValue.null() if value is None else dg.MetadataValue.int(value)


with warnings.catch_warnings():
    # The mapping is marked beta upstream; it is the documented way to map a cell to its symbol.
    warnings.simplefilter("ignore", dg.BetaWarning)
    CELL_TO_SYMBOL = dg.MultiToSingleDimensionPartitionMapping(SYMBOL_DIMENSION)


def cold_capture_approved(context: dg.AssetExecutionContext) -> bool:
    """Whether the run carries the operator's approval of cold captures."""
    return (context.op_execution_context.get_tag(ALLOW_COLD_CAPTURE_TAG) or "").lower() == "true"


def _event_dicts(events: list[CaptureEvent]) -> list[dict[str, Any]]:
    return [json.loads(event.to_json()) for event in events]


def build_capture(audit: Audit) -> dg.Definitions:
    """The audit's ``captured_fold``; its code version is the audit recipe's."""

    @dg.asset(
        key=audit.key(CAPTURED_FOLD),
        partitions_def=audit.cells_partitions,
        deps=[dg.AssetDep(audit.key(MARKET_BARS), partition_mapping=CELL_TO_SYMBOL)],
        code_version=audit.recipe_version,
        group_name=audit.group("audit"),
        kinds={"lightgbm", "parquet"},
        required_resource_keys={audit.market_data_key, "artifacts", "capture_cache"},
        description=inspect.cleandoc(capture_cell.__doc__ or ""),
    )
    def captured_fold(
        context: dg.AssetExecutionContext, config: CaptureRunConfig
    ) -> dg.MaterializeResult:
        artifacts: ArtifactStoreResource = context.resources.artifacts
        capture_cache: CaptureCacheResource = context.resources.capture_cache
        return capture_cell(context, audit, config, artifacts, capture_cache)

    return dg.Definitions(assets=[captured_fold])


def capture_cell(
    context: dg.AssetExecutionContext,
    audit: Audit,
    config: CaptureRunConfig,
    artifacts: ArtifactStoreResource,
    capture_cache: CaptureCacheResource,
) -> dg.MaterializeResult:
    """The cell's exact training data (X/y) and trial log, recovered by replaying its recipe.

    Served from the capture cache when an identical capture exists (cache=HIT, seconds, same
    data version, so downstream verdicts stay in sync). A cold capture replays the whole
    fine-tune and needs the run tag ``diag/allow_cold_capture=true``. Concurrent runs of one
    cell capture it once. Inputs are checked before any training; bad input writes nothing.

    The capture mode (``capture_mode``, then ``DIAG_CAPTURE_MODE``, then the
    policy) is checked against the diagnostics this run materializes from the capture; a
    dataset_only capture serves xy_only diagnostics only.
    """
    market_data = market_data_of(context, audit)
    source = market_data.source()
    cell = cell_from_partition_key(context.partition_key, source.universe)
    consumers = run_consumers(context, audit.key(CAPTURED_FOLD))
    policy = load_policy()
    try:
        decision = decide_mode(
            config_mode=config.capture_mode,
            consumers=consumers,
            store=audit.store(artifacts),
            recipe_version=audit.recipe_version,
            policy=policy,
        )
    except CaptureModeRefused as refused:
        raise dg.Failure(
            description=str(refused),
            metadata={
                "code": refused.code,
                "fix": refused.fix,
                "consumers": dg.MetadataValue.json({k: str(v) for k, v in consumers.items()}),
            },
        ) from refused
    context.log.info(decision.reason)
    allow_cold = cold_capture_approved(context)

    def log_event(event: CaptureEvent) -> None:
        context.log.info(event.to_json())

    recorder = EventRecorder(log_event)
    try:
        with capture_cache.open(default_parity_check_rate=policy.parity_check_rate) as cache:
            result = cache.get(
                cell,
                source,
                market_data.fold_spec(),
                audit.recipe,
                config.to_core(decision.mode, audit.trials),
                allow_cold=allow_cold,
                run_id=context.op_execution_context.run_id,
                events=recorder,
            )
    except ColdCaptureRequiresOperator as refused:
        # No capture can be trusted for this cell in this run: nothing downstream may claim
        # a verdict, so the audit is inconclusive until an operator approves a capture.
        unusable = certify(capture_mode=None, anchor=AnchorUse.NOT_NEEDED, problem=refused.reason)
        raise dg.Failure(
            description=str(refused),
            metadata={
                "code": refused.code,
                "certification": unusable.certification.value,
                "reason": unusable.reason,
                "how_to_approve": f"run tag {ALLOW_COLD_CAPTURE_TAG}=true",
                "capture_events": dg.MetadataValue.json(_event_dicts(recorder.events)),
            },
        ) from refused
    audit.results(artifacts).write(CAPTURED_FOLD, cell, result.manifest)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(result.manifest.content_hash),
        metadata={
            **contract_metadata(capture_record(result)),
            "producing_run_id": result.entry.producing_run_id or "",
            "capture_created_at": result.entry.created_at.isoformat(),
            "use_count": dg.MetadataValue.int(result.entry.use_count),
            "waited_s": dg.MetadataValue.float(round(result.waited_s, 3)),
            "drift_checked": dg.MetadataValue.bool(result.drift_checked),
            **capture_metadata(result.manifest, result.uri),
            "mode_requested": str(decision.requested),
            "mode_decided_by": decision.source,
            "mode_reason": decision.reason,
            "consumers": dg.MetadataValue.json({k: str(v) for k, v in consumers.items()}),
        },
    )
