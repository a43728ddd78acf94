"""The diagnostic assets of a cell.

``s22a1_anchor``, ``s40_verdict`` and ``s27_calibration`` are one subsettable multi-asset
because they share a decision: whether this run skips the s22a1 anchor (the anchor skip).
The step resolves it once; with the anchor skipped, ``s22a1_anchor`` is neither materialized
nor read, and both anchor consumers come out DOWNGRADED. ``s22a2_spread`` and ``s23_drift``
read only the captured fold. What each verdict may claim is decided in
:mod:`diag_assets.core.diagnostics.certification`.
"""

import json
from typing import Any

import dagster as dg
from pydantic import Field

from diag_assets.capture.assets import captured_fold
from diag_assets.capture.readers import declares_diagnostic
from diag_assets.core.audit.anchor_skip import SkipDecision, load_policy, resolve_skip_s22a1
from diag_assets.core.capture.artifacts import CaptureVerificationError
from diag_assets.core.capture.events import CaptureEvent
from diag_assets.core.capture.manifest import X_FILE, CaptureManifest
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.replay import CapturedFold
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.anchor import run_anchor
from diag_assets.core.diagnostics.calibration import (
    CalibrationSettings,
    run_s27,
    s27_without_anchor,
)
from diag_assets.core.diagnostics.certification import AnchorUse, certify
from diag_assets.core.diagnostics.drift import DriftSettings, run_s23
from diag_assets.core.diagnostics.probe import ProbeSettings, inconclusive_s40, judge_s40
from diag_assets.core.diagnostics.spread import SpreadSettings, run_s22a2
from diag_assets.core.diagnostics.verdicts import AnchorResult, S40Verdict
from diag_assets.core.metadata import AnchorMetadata
from diag_assets.core.names import (
    ANCHOR_AND_CONSUMERS,
    AUDIT_KIND_TAG,
    CAPTURED_FOLD,
    CERTIFICATION_KEY,
    ELAPSED_S_KEY,
    S22A1_ANCHOR,
    S22A2_SPREAD,
    S23_DRIFT,
    S27_CALIBRATION,
    S40_VERDICT,
    SKIP_TAG,
    VERDICT_KEY,
)
from diag_assets.metadata_values import contract_metadata
from diag_assets.partitions import cell_from_partition_key, cells_partitions
from resources.market_data import MarketDataResource
from resources.storage import ArtifactStoreResource

S40_S22A1_SKIPPED = "s40_s22a1_skipped"
DIAGNOSTICS_CODE_VERSION = "3"


def load_captured_fold(cell: CellRef, artifacts: ArtifactStoreResource) -> CapturedFold:
    """The cell's latest captured fold, with its bytes and hashes verified."""
    manifest = artifacts.results().read(CAPTURED_FOLD, cell, CaptureManifest)
    if manifest is None:
        raise dg.Failure(no_capture_message(cell))
    return artifacts.captures().load(manifest)


def no_capture_message(cell: CellRef) -> str:
    """What a diagnostic says when its cell was never captured."""
    return f"{cell} has no captured fold yet. Materialize captured_fold for this cell first."


def cell_of(context: dg.AssetExecutionContext, market_data: MarketDataResource) -> CellRef:
    """The validated cell of the step's partition."""
    return cell_from_partition_key(context.partition_key, market_data.source().universe)


class AuditRunConfig(dg.Config):
    """Knobs of the anchor, its consumers and the anchor skip."""

    skip_s22a1: bool | None = Field(
        default=None,
        description="Override: skip (true) or keep (false) the s22a1 anchor in this run. "
        f"Unset: the tag {SKIP_TAG}, then the audit kind's default in the skip policy.",
    )
    audit_kind: str | None = Field(
        default=None,
        description="Audit kind for the skip policy (e.g. s22..s28, light_s40); "
        f"default: the run tag {AUDIT_KIND_TAG}.",
    )
    num_threads: int = Field(default=2, ge=1, le=64, description="LightGBM threads per fit.")
    num_rounds: int = Field(default=50, ge=1, le=1_000, description="Rounds per probe fit.")
    n_permutations: int = Field(
        default=19, ge=1, le=999, description="Label permutations behind the s40 p-value."
    )
    alpha: float = Field(default=0.05, gt=0, lt=1, description="SIGNAL when p-value <= alpha.")
    seed: int = Field(default=0, ge=0, description="Seed of permutations and fits.")
    probe_max_train_rows: int = Field(
        default=20_000, ge=100, description="s40 probe: most recent training rows it fits on."
    )
    calibration_bins: int = Field(default=10, ge=2, le=100, description="s27 reliability bins.")

    def probe(self) -> ProbeSettings:
        """The s40 probe's settings."""
        return ProbeSettings(
            num_rounds=self.num_rounds,
            n_permutations=self.n_permutations,
            alpha=self.alpha,
            seed=self.seed,
            num_threads=self.num_threads,
            max_train_rows=self.probe_max_train_rows,
        )


def resolve_skip(context: dg.AssetExecutionContext, config: AuditRunConfig) -> SkipDecision:
    """The anchor skip's decision for this run (see ``diag_assets.core.audit.anchor_skip``)."""
    tags = context.op_execution_context
    return resolve_skip_s22a1(
        config_override=config.skip_s22a1,
        tag_override=tags.get_tag(SKIP_TAG),
        audit_kind=config.audit_kind or tags.get_tag(AUDIT_KIND_TAG),
        policy=load_policy(),
    )


def verdict_metadata(verdict: S40Verdict, uri: str) -> dict[str, Any]:
    """What a reader of the verdict sees in the UI; certification first."""
    metadata: dict[str, Any] = {
        CERTIFICATION_KEY: verdict.certification.value,
        "certification_reason": verdict.certification_reason,
        "signal": verdict.signal.value if verdict.signal else "NOT_RUN",
        "s22a1_crossref_status": verdict.s22a1_crossref_status.value,
        "s22a1_anchor_available": dg.MetadataValue.bool(verdict.s22a1_anchor_available),
        "anchor_best_iter": dg.MetadataValue.int(verdict.anchor_best_iter)
        if verdict.anchor_best_iter is not None
        else dg.MetadataValue.null(),
    }
    if verdict.probe is not None:
        probe = verdict.probe
        metadata |= {
            "p_value": dg.MetadataValue.float(probe.p_value),
            "observed_auc": dg.MetadataValue.float(probe.observed),
            "permutation_mean_auc": dg.MetadataValue.float(probe.permutation_mean),
            "permutation_max_auc": dg.MetadataValue.float(probe.permutation_max),
            "n_permutations": dg.MetadataValue.int(probe.n_permutations),
        }
    return metadata | {
        ELAPSED_S_KEY: dg.MetadataValue.float(verdict.elapsed_s),
        "capture_content_hash": verdict.capture_content_hash,
        "verdict_uri": dg.MetadataValue.path(uri),
        VERDICT_KEY: dg.MetadataValue.json(verdict.model_dump(mode="json")),
    }


def _skip_metadata(decision: SkipDecision) -> dict[str, Any]:
    return {
        "skip_s22a1": dg.MetadataValue.bool(decision.skip),
        "skip_decided_by": decision.source,
        "audit_kind": decision.audit_kind or "",
    }


@dg.multi_asset(
    name=ANCHOR_AND_CONSUMERS,
    specs=[
        dg.AssetSpec(
            S22A1_ANCHOR,
            deps=[captured_fold],
            skippable=True,
            group_name="audit",
            kinds={"lightgbm"},
            metadata=declares_diagnostic("s22a1"),
            code_version=DIAGNOSTICS_CODE_VERSION,
            description="The best trial re-fitted on the captured fold (300 rounds, early "
            "stopping): best_iter, curve, elapsed_s and rows. trial_dynamics.",
        ),
        dg.AssetSpec(
            S40_VERDICT,
            deps=[captured_fold, S22A1_ANCHOR],
            skippable=True,
            group_name="audit",
            kinds={"lightgbm"},
            metadata=declares_diagnostic("s40"),
            code_version=DIAGNOSTICS_CODE_VERSION,
            description="Does X carry signal about y? A permutation probe (xy_only), "
            "cross-referenced with the anchor; DOWNGRADED when the anchor was skipped or the "
            "capture is single_fit.",
        ),
        dg.AssetSpec(
            S27_CALIBRATION,
            deps=[captured_fold, S22A1_ANCHOR],
            skippable=True,
            group_name="audit",
            kinds={"lightgbm"},
            metadata=declares_diagnostic("s27"),
            code_version=DIAGNOSTICS_CODE_VERSION,
            description="Calibration of the anchor's model on validation (trial_dynamics); "
            "DOWNGRADED when the anchor was skipped or the capture is single_fit.",
        ),
    ],
    partitions_def=cells_partitions,
    can_subset=True,
)
def anchor_and_consumers(
    context: dg.AssetExecutionContext,
    config: AuditRunConfig,
    market_data: MarketDataResource,
    artifacts: ArtifactStoreResource,
):
    """The s22a1 anchor and the verdicts that cross-reference it, under one skip decision."""
    cell = cell_of(context, market_data)
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    decision = resolve_skip(context, config)
    context.log.info(decision.reason)
    extra = _skip_metadata(decision)
    manifest = artifacts.results().read(CAPTURED_FOLD, cell, CaptureManifest)
    if manifest is None and not decision.skip:
        raise dg.Failure(no_capture_message(cell))
    problem = _skip_precondition(cell, manifest, artifacts) if decision.skip else None
    captured: CapturedFold | None = None
    if problem is None and manifest is not None:
        try:
            captured = artifacts.captures().load(manifest)
        except CaptureVerificationError as error:
            problem = f"captured fold failed verification: {error}"
    if decision.skip:
        extra |= _announce_skip(context, cell, decision, selected, manifest, problem, artifacts)
    if captured is None:
        yield from _inconclusive(
            context, cell, problem or "", selected, artifacts, decision, manifest
        )
        return

    anchor: AnchorResult | None = None
    if not decision.skip and captured.mode is not CaptureMode.FULL_REPLAY:
        raise dg.Failure(
            f"The captured fold of {cell} is {captured.mode}, but this run keeps the s22a1 "
            f"anchor ({decision.source}), which reads the trial log of a full replay. Skip the "
            f"anchor (run config skip_s22a1: true, or the tag {SKIP_TAG}=true), or "
            "re-materialize captured_fold with capture_mode full_replay."
        )
    if not decision.skip:
        anchor = yield from _anchor(cell, captured, selected, decision, artifacts, config)
    if S40_VERDICT in selected:
        verdict = judge_s40(captured, anchor, config.probe())
        yield _s40_result(context, cell, verdict, artifacts, extra)
    if S27_CALIBRATION in selected:
        calibration = (
            run_s27(captured, CalibrationSettings(n_bins=config.calibration_bins), anchor=anchor)
            if anchor is not None
            else s27_without_anchor(captured)
        )
        yield _s27_result(cell, calibration, artifacts, extra)


def _anchor(cell, captured, selected, decision, artifacts, config):
    """Fit the anchor if this run materializes it, else read the stored one (a generator)."""
    results = artifacts.results()
    if S22A1_ANCHOR in selected:
        anchor = run_anchor(captured, num_threads=config.num_threads)
        uri = results.write(S22A1_ANCHOR, cell, anchor)
        yield dg.MaterializeResult(
            asset_key=S22A1_ANCHOR,
            data_version=dg.DataVersion(anchor.content_hash()),
            metadata=_anchor_metadata(anchor, uri) | _skip_metadata(decision),
        )
        return anchor
    anchor = results.read(S22A1_ANCHOR, cell, AnchorResult)
    if anchor is None:
        raise dg.Failure(
            f"{cell} has no s22a1 anchor and this run keeps the anchor ({decision.source}). "
            "Materialize s22a1_anchor for the cell, or skip it (run config skip_s22a1: true, "
            f"or the tag {SKIP_TAG}=true).",
        )
    return anchor


def _skip_precondition(
    cell: CellRef, manifest: CaptureManifest | None, artifacts: ArtifactStoreResource
) -> str | None:
    """The skip path needs the captured Parquet: why it cannot run, or ``None``."""
    if manifest is None:
        return f"{cell} has no captured fold: the skip path needs its Parquet."
    captures = artifacts.captures()
    key = captures.key_of(manifest.capture_key, X_FILE)
    if not captures.store.exists(key):
        return f"the captured Parquet {captures.store.uri(key)} does not exist."
    return None


def _announce_skip(
    context, cell, decision, selected, manifest, problem, artifacts
) -> dict[str, Any]:
    """Emit ``s40_s22a1_skipped``; returns the metadata the skipped run's verdicts carry.

    The Parquet's hash is the one the verified load just recomputed and compared with the
    manifest (a mismatch never gets this far), so it is recorded rather than hashed again.
    Nothing here reads the anchor.
    """
    parquet: dict[str, Any] = {}
    if manifest is not None and problem is None:
        captures = artifacts.captures()
        parquet = {
            "parquet_uri": captures.store.uri(captures.key_of(manifest.capture_key, X_FILE)),
            "parquet_digest_recomputed": manifest.files[X_FILE].digest,
            "parquet_digest_matches_manifest": True,
        }
    event = CaptureEvent(
        name=S40_S22A1_SKIPPED,
        capture_key=manifest.capture_key if manifest else "",
        cell_ref=str(cell),
        fields={
            "decided_by": decision.source,
            "audit_kind": decision.audit_kind,
            "s22a1_selected_in_run": S22A1_ANCHOR in selected,
            "problem": problem,
            **parquet,
        },
    )
    context.log.info(event.to_json())
    if S22A1_ANCHOR in selected:
        context.log.warning(
            f"s22a1_anchor is selected in this run but skipped ({decision.source}): it is not "
            "materialized."
        )
    return parquet | {S40_S22A1_SKIPPED: dg.MetadataValue.json(json.loads(event.to_json()))}


def _inconclusive(context, cell, reason, selected, artifacts, decision, manifest):
    context.log.error(f"{cell}: {reason}")
    if S40_VERDICT in selected:
        verdict = inconclusive_s40(str(cell), reason, manifest)
        yield _s40_result(context, cell, verdict, artifacts, _skip_metadata(decision))
    if S27_CALIBRATION in selected:
        # s27 cannot be computed without a verified fold either; it inherits the reason.
        s27 = certify(
            capture_mode=manifest.mode if manifest else None,
            anchor=AnchorUse.SKIPPED if decision.skip else AnchorUse.USED,
            problem=reason or "the captured fold could not be read.",
        )
        raise dg.Failure(f"s27_calibration for {cell} is {s27.certification}: {s27.reason}")


def _anchor_metadata(anchor: AnchorResult, uri: str) -> dict[str, Any]:
    record = AnchorMetadata(
        cell_ref=anchor.cell_ref,
        elapsed_s=anchor.elapsed_s,
        rows=anchor.rows,
        best_iter=anchor.best_iter,
    )
    return contract_metadata(record) | {
        "best_score": dg.MetadataValue.float(anchor.best_score),
        "n_rounds": dg.MetadataValue.int(anchor.n_rounds),
        "trial": dg.MetadataValue.int(anchor.trial),
        "capture_content_hash": anchor.capture_content_hash,
        "curve": dg.MetadataValue.json({"validation_logloss": anchor.curve}),
        "result_uri": dg.MetadataValue.path(uri),
    }


def _s40_result(context, cell, verdict: S40Verdict, artifacts, extra) -> dg.MaterializeResult:
    uri = artifacts.results().write(S40_VERDICT, cell, verdict)
    context.log.info(
        f"{cell}: {verdict.signal.value if verdict.signal else 'NOT_RUN'}, "
        f"{verdict.s22a1_crossref_status.value}, {verdict.certification.value}"
    )
    return dg.MaterializeResult(
        asset_key=S40_VERDICT,
        data_version=dg.DataVersion(verdict.content_hash()),
        metadata=verdict_metadata(verdict, uri) | extra,
    )


def _s27_result(cell, verdict, artifacts, extra) -> dg.MaterializeResult:
    uri = artifacts.results().write(S27_CALIBRATION, cell, verdict)
    return dg.MaterializeResult(
        asset_key=S27_CALIBRATION,
        data_version=dg.DataVersion(verdict.content_hash()),
        metadata={
            "certification": verdict.certification.value,
            "certification_reason": verdict.certification_reason,
            "calibration": verdict.calibration.value if verdict.calibration else "NOT_RUN",
            "anchor_available": dg.MetadataValue.bool(verdict.anchor_available),
            "verdict_uri": dg.MetadataValue.path(uri),
            "verdict": dg.MetadataValue.json(verdict.model_dump(mode="json")),
        }
        | extra,
    )


class SuiteRunConfig(dg.Config):
    """Knobs of the X/y and trial-log diagnostics."""

    seed: int = Field(default=0, ge=0, description="Seed of the fits.")
    num_threads: int = Field(default=2, ge=1, le=64, description="LightGBM threads per fit.")


@dg.asset(
    partitions_def=cells_partitions,
    deps=[captured_fold],
    metadata=declares_diagnostic("s22a2"),
    code_version=DIAGNOSTICS_CODE_VERSION,
    group_name="audit",
)
def s22a2_spread(
    context: dg.AssetExecutionContext,
    market_data: MarketDataResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """Does the best trial stand out from the spread of trials? Reads the trial log only."""
    cell = cell_of(context, market_data)
    verdict = run_s22a2(load_captured_fold(cell, artifacts), SpreadSettings())
    uri = artifacts.results().write(S22A2_SPREAD, cell, verdict)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(verdict.content_hash()),
        metadata={
            "certification": verdict.certification.value,
            "status": verdict.status.value,
            "verdict_uri": dg.MetadataValue.path(uri),
            "verdict": dg.MetadataValue.json(verdict.model_dump(mode="json")),
        },
    )


@dg.asset(
    partitions_def=cells_partitions,
    deps=[captured_fold],
    metadata=declares_diagnostic("s23"),
    code_version=DIAGNOSTICS_CODE_VERSION,
    group_name="audit",
    kinds={"lightgbm"},
)
def s23_drift(
    context: dg.AssetExecutionContext,
    config: SuiteRunConfig,
    market_data: MarketDataResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """Do training and validation rows differ? Adversarial validation on X (xy_only)."""
    cell = cell_of(context, market_data)
    settings = DriftSettings(seed=config.seed, num_threads=config.num_threads)
    verdict = run_s23(load_captured_fold(cell, artifacts), settings)
    uri = artifacts.results().write(S23_DRIFT, cell, verdict)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(verdict.content_hash()),
        metadata={
            "certification": verdict.certification.value,
            "drift": verdict.drift.value,
            "auc": dg.MetadataValue.float(verdict.figures.auc),
            "verdict_uri": dg.MetadataValue.path(uri),
            "verdict": dg.MetadataValue.json(verdict.model_dump(mode="json")),
        },
    )


defs = dg.Definitions(assets=[anchor_and_consumers, s22a2_spread, s23_drift])
