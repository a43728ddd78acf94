"""``captured_fold``: a cell's replayed X/y and trial log, stored as Parquet and JSON."""

import inspect
import json
import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster._core.storage.tags import SCHEDULE_NAME_TAG, SENSOR_NAME_TAG
from pydantic import Field

from diag_assets.audit.approval import refuse_automated_run_approval
from diag_assets.capture.modes import decide_mode, run_consumers
from diag_assets.component.audit import Audit
from diag_assets.core.audit import anchor_skip
from diag_assets.core.capture.events import CaptureEvent, EventRecorder
from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.capture.mode_policy import MODE_ENV, CaptureModeRefused, load_policy
from diag_assets.core.capture.modes import CaptureConfig, CaptureMode
from diag_assets.core.capture.outcomes import (
    CaptureOutcome,
    CaptureResult,
    ColdCaptureRequiresOperator,
)
from diag_assets.core.diagnostics.certification import AnchorUse, certify
from diag_assets.core.errors import DiagInputError
from diag_assets.core.metadata import CaptureMetadata
from diag_assets.core.names import (
    ALLOW_COLD_CAPTURE_TAG,
    ANCHOR_AND_CONSUMERS,
    APPROVED_COLD_AUDIT_JOB,
    AUDIT_KIND_TAG,
    CAPTURED_FOLD,
    COLD_CAPTURE_APPROVAL_CHECK,
    MARKET_BARS,
    MARKET_DATA_JOB,
    REPLAYS_FINE_TUNE_KEY,
    SKIP_TAG,
)
from diag_assets.core.recipe.protocol import TrialSettings
from diag_assets.core.recipe.tasks import TaskKind
from diag_assets.launchpad import CaptureModeChoice
from diag_assets.market.assets import bars_dep, market_data_of, observed_version
from diag_assets.metadata_values import contract_metadata, run_link
from diag_assets.partitions import cell_from_partition_key
from resources.capture_cache import CaptureCacheResource
from resources.storage import ArtifactStoreResource

AUDIT_DEFAULT = "Unset: the audit's trials setting."
COLD_CAPTURE_APPROVAL_DESCRIPTION = (
    "Operator: fails (ERROR) on a cell whose capture was cold and the run had no approval to "
    "replay its fine-tune, so nothing was captured and the cell's diagnostics were skipped. "
    "Fix: launch the audit of the cell with the run tag diag/allow_cold_capture=true. Passes "
    "when the cell's capture was served from the cache or replayed with the approval."
)


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
    capture_mode: CaptureModeChoice | None = Field(
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
        # The gaps inside the fold's window and the rows they cost (every verdict lists them).
        "gaps": dg.MetadataValue.json([gap.model_dump(mode="json") for gap in manifest.gaps]),
        "gap_rows_dropped": dg.MetadataValue.int(manifest.gap_rows_dropped),
    }


def _int_or_null(value: int | None) -> dg.MetadataValue:
    return dg.MetadataValue.null() if value is None else dg.MetadataValue.int(value)


def replays_fine_tune() -> dict[str, bool]:
    """The definition metadata of an asset whose step can replay a fine-tune (capture cold).

    Automation never requests such an asset: the code location refuses, when it loads, an
    automation condition on it (:func:`diag_assets.component.automation.refuse_automated_capture`).
    """
    return {REPLAYS_FINE_TUNE_KEY: True}


def cold_capture_approved(context: dg.AssetExecutionContext) -> bool:
    """Whether the run carries the operator's approval of cold captures.

    Raises:
        DiagInputError: the tag is set to something other than ``true`` or ``false``, or the
            run was launched by a sensor or schedule (only an operator approves).
    """
    tags = context.op_execution_context
    value = tags.get_tag(ALLOW_COLD_CAPTURE_TAG)
    approved = value is not None and anchor_skip.parse_flag(value, what=ALLOW_COLD_CAPTURE_TAG)
    if approved:
        refuse_automated_run_approval(
            {tag: tags.get_tag(tag) or "" for tag in (SENSOR_NAME_TAG, SCHEDULE_NAME_TAG)}
        )
    return approved


def check_run_skip_inputs(
    context: dg.AssetExecutionContext, audit: Audit
) -> anchor_skip.SkipInputs:
    """This run's anchor skip inputs, checked by a step that runs before the anchor's.

    The run's tags and the anchor step's part of the run config are checked with the rules
    the anchor step applies (``check_skip_inputs``), so a typo fails the run before the
    capture replays a fine-tune rather than after it.

    Raises:
        DiagInputError: an input is refused; the message names the value, where it came from
            and the fix.
    """
    step = audit.name(ANCHOR_AND_CONSUMERS)
    try:
        run_config = context.run.run_config
    except dg.DagsterError:
        # A direct call (dg.build_asset_context) has no run, so no run config.
        run_config = {}
    ops = run_config.get("ops")
    op = ops.get(step) if isinstance(ops, dict) else None
    config = op.get("config") if isinstance(op, dict) else None
    config = config if isinstance(config, dict) else {}
    tags = context.op_execution_context
    return anchor_skip.check_skip_inputs(
        config_override=config.get(anchor_skip.SKIP_CONFIG),
        tag_override=tags.get_tag(SKIP_TAG),
        audit_kind=config.get(anchor_skip.AUDIT_KIND_CONFIG),
        tag_audit_kind=tags.get_tag(AUDIT_KIND_TAG),
        policy=anchor_skip.load_policy(),
        config_at=f"the run config ops.{step}.config",
    )


def bars_were_observed(context: dg.AssetExecutionContext, audit: Audit, symbol: str) -> bool:
    """Whether ``symbol``'s bars were observed before this capture, with a warning if not.

    The capture records the observation it read its bars after; without one, Dagster cannot
    mark it out of date when the candles change until the cell is audited again after an
    observation (the ``market_data_observation`` schedule observes a new symbol within 15
    minutes; the ``market_data`` job does it at once).
    """
    version, _ = observed_version(context.instance, audit.key(MARKET_BARS), symbol)
    if version is None:
        context.log.warning(
            f"The bars of {symbol} were never observed: this capture is not marked out of date "
            f"when they change until the cell is audited again after an observation. Run the "
            f"{audit.name(MARKET_DATA_JOB)} job for {symbol} first."
        )
    return version is not None


def _refused_input(error: DiagInputError) -> dg.Failure:
    return dg.Failure(description=str(error), metadata={"fix": error.fix})


def _event_dicts(events: list[CaptureEvent]) -> list[dict[str, Any]]:
    return [json.loads(event.to_json()) for event in events]


def build_capture(audit: Audit) -> dg.Definitions:
    """The audit's ``captured_fold``; its code version is the audit recipe's."""
    key = audit.key(CAPTURED_FOLD)
    with warnings.catch_warnings():
        # A partitioned check is marked preview upstream; it is what shows the refusal on the
        # cell's partition rather than on the asset as a whole.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        approval_check = dg.AssetCheckSpec(
            COLD_CAPTURE_APPROVAL_CHECK,
            asset=key,
            partitions_def=audit.cells_partitions,
            description=COLD_CAPTURE_APPROVAL_DESCRIPTION,
        )

    @dg.asset(
        key=key,
        partitions_def=audit.cells_partitions,
        deps=[bars_dep(audit)],
        code_version=audit.recipe_version,
        group_name=audit.group("audit"),
        kinds={"lightgbm", "parquet"},
        metadata=replays_fine_tune(),
        required_resource_keys={audit.market_data_key, "artifacts", "capture_cache"},
        description=inspect.cleandoc(capture_cell.__doc__ or ""),
        check_specs=[approval_check],
        # A refused cold capture yields no capture: the steps after it are skipped, not failed.
        output_required=False,
    )
    def captured_fold(
        context: dg.AssetExecutionContext, config: CaptureRunConfig
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        artifacts: ArtifactStoreResource = context.resources.artifacts
        capture_cache: CaptureCacheResource = context.resources.capture_cache
        yield from capture_cell(context, audit, config, artifacts, capture_cache)

    return dg.Definitions(assets=[captured_fold])


def capture_cell(
    context: dg.AssetExecutionContext,
    audit: Audit,
    config: CaptureRunConfig,
    artifacts: ArtifactStoreResource,
    capture_cache: CaptureCacheResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The cell's exact training data (X/y) and trial log, recovered by replaying its recipe.

    Served from the capture cache when an identical capture exists (cache=HIT, seconds, same
    data version, so downstream verdicts stay in sync). A cold capture replays the whole
    fine-tune and needs the run tag ``diag/allow_cold_capture=true``, which the
    ``approved_cold_audit`` job carries; without it the capture is refused: its check
    ``cold_capture_approved`` fails (ERROR) with the reason and how to approve, nothing is
    written, and the cell's diagnostics are skipped. Concurrent runs of one cell capture it
    once. Inputs are checked before any training; bad input writes nothing.

    The capture mode (``capture_mode``, then ``DIAG_CAPTURE_MODE``, then the
    policy) is checked against the diagnostics this run materializes from the capture; a
    dataset_only capture serves xy_only diagnostics only.

    Every input of the run is checked first, before the market data, the recipe or the cache
    is touched: the approval tag, the capture mode, and the anchor skip's tags and run config
    (a typo there would otherwise fail the run only after the replay).
    """
    try:
        allow_cold = cold_capture_approved(context)
        if audit.has_anchor:
            check_run_skip_inputs(context, audit)
    except DiagInputError as refused:
        raise _refused_input(refused) from refused
    consumers = run_consumers(context, audit.key(CAPTURED_FOLD))
    policy = load_policy()
    try:
        decision = decide_mode(
            config_mode=None if config.capture_mode is None else config.capture_mode.value,
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
    except DiagInputError as refused:
        raise _refused_input(refused) from refused
    context.log.info(decision.reason)
    market_data = market_data_of(context, audit)
    source = market_data.source()
    cell = cell_from_partition_key(context.partition_key, source.universe)
    bars_observed = bars_were_observed(context, audit, cell.symbol)

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
        # No capture exists for this cell: nothing downstream may claim a verdict, so their
        # steps are skipped and the audit is inconclusive until an operator approves one.
        unusable = certify(capture_mode=None, anchor=AnchorUse.NOT_NEEDED, problem=refused.reason)
        context.log.warning(str(refused))
        yield dg.AssetCheckResult(
            asset_key=audit.key(CAPTURED_FOLD),
            check_name=COLD_CAPTURE_APPROVAL_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=str(refused),
            metadata={
                "code": refused.code,
                "certification": unusable.certification.value,
                "reason": unusable.reason,
                "how_to_approve": f"launch the {audit.name(APPROVED_COLD_AUDIT_JOB)} job for "
                f"the cell: it carries the run tag {ALLOW_COLD_CAPTURE_TAG}=true",
                "capture_events": dg.MetadataValue.json(_event_dicts(recorder.events)),
            },
        )
        return
    audit.results(artifacts).write(CAPTURED_FOLD, cell, result.manifest)
    yield dg.AssetCheckResult(
        asset_key=audit.key(CAPTURED_FOLD),
        check_name=COLD_CAPTURE_APPROVAL_CHECK,
        passed=True,
        description="replayed cold with the operator's approval"
        if result.outcome is CaptureOutcome.MISS
        else f"served from the capture cache ({result.outcome}): no approval needed",
    )
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(result.manifest.content_hash),
        metadata={
            **contract_metadata(capture_record(result)),
            "producing_run_id": run_link(result.entry.producing_run_id),
            "capture_created_at": result.entry.created_at.isoformat(),
            "use_count": dg.MetadataValue.int(result.entry.use_count),
            "waited_s": dg.MetadataValue.float(round(result.waited_s, 3)),
            "drift_checked": dg.MetadataValue.bool(result.drift_checked),
            **capture_metadata(result.manifest, result.uri),
            "mode_requested": str(decision.requested),
            "mode_decided_by": decision.source,
            "mode_reason": decision.reason,
            "consumers": dg.MetadataValue.json({k: str(v) for k, v in consumers.items()}),
            "bars_observed": dg.MetadataValue.bool(bars_observed),
        },
    )
