"""The diagnostic assets of an audit, one per diagnostic it runs.

The anchor ``s22a1_anchor`` and the diagnostics that read it (``s40_verdict``,
``s27_calibration``, and any plug-in that ``reads_anchor``) are one subsettable multi-asset,
because they share a decision: whether this run skips the s22a1 anchor (the anchor skip).
The step resolves it once; with the anchor skipped, ``s22a1_anchor`` is neither materialized
nor read, and the anchor's readers run without it (DOWNGRADED). Every other diagnostic
(``s22a2_spread``, ``s23_drift``, plug-ins) is an asset of its own that reads only the
captured fold. Each runs through :func:`~diag_assets.core.diagnostics.plugin.run_diagnostic`
behind the consumer guard; what a verdict may claim is decided in
:mod:`diag_assets.core.diagnostics.certification`.
"""

import json
import re
from typing import Any

import dagster as dg
from pydantic import BaseModel, Field

from diag_assets.audit.pointer import (
    load_captured_fold,
    load_proven,
    no_capture_message,
    read_pointer,
)
from diag_assets.capture.readers import declares_diagnostic
from diag_assets.component.audit import Audit
from diag_assets.core.audit.anchor_skip import SkipDecision, load_policy, resolve_skip_s22a1
from diag_assets.core.capture.artifacts import CaptureVerificationError
from diag_assets.core.capture.events import CaptureEvent
from diag_assets.core.capture.manifest import X_FILE, CaptureManifest
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.replay import CapturedFold
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.builtins import (
    ANCHOR,
    AnchorSettings,
    Calibration,
    SignalProbe,
)
from diag_assets.core.diagnostics.calibration import CalibrationSettings
from diag_assets.core.diagnostics.certification import AnchorUse, certify
from diag_assets.core.diagnostics.drift import DriftSettings
from diag_assets.core.diagnostics.plugin import Diagnostic, NotApplicable, run_diagnostic
from diag_assets.core.diagnostics.probe import (
    DEFAULT_MAX_PERMUTATIONS,
    ProbeSettings,
    inconclusive_s40,
)
from diag_assets.core.diagnostics.verdicts import AnchorResult, S40Verdict, Verdict
from diag_assets.core.metadata import AnchorMetadata
from diag_assets.core.names import (
    ANCHOR_AND_CONSUMERS,
    AUDIT_KIND_TAG,
    CAPTURED_FOLD,
    CERTIFICATION_KEY,
    ELAPSED_S_KEY,
    S22A1_ANCHOR,
    SKIP_TAG,
    VERDICT_KEY,
    diagnostic_asset,
)
from diag_assets.core.recipe.tasks import TaskKind, task_spec
from diag_assets.launchpad import AuditKindChoice
from diag_assets.market.assets import bars_dep, market_data_of
from diag_assets.metadata_values import contract_metadata, image_metadata, metadata_value
from diag_assets.partitions import cell_from_partition_key
from resources.capture_cache import CaptureCacheResource
from resources.storage import ArtifactStoreResource

S40_S22A1_SKIPPED = "s40_s22a1_skipped"
# What a diagnostic's picture may be named: the key of its image in the metadata.
_PICTURE_NAME = re.compile(r"[a-z][a-z0-9_]{0,60}")
# 4: s23 deals its folds with scikit-learn, and the fits follow the recipe's task.
# 5: the s22a1 anchor fits a fixed 300 rounds without early stopping, and the s40 probe
#    runs up to 99 permutations with sequential (Besag-Clifford) early stopping.
# 6: the s40 verdict keeps the permutations' statistics (the null its picture shows).
DIAGNOSTICS_CODE_VERSION = "6"


def cell_of(context: dg.AssetExecutionContext, audit: Audit) -> CellRef:
    """The validated cell of the step's partition."""
    universe = market_data_of(context, audit).source().universe
    return cell_from_partition_key(context.partition_key, universe)


class AuditRunConfig(dg.Config):
    """Knobs of the anchor, its consumers and the anchor skip."""

    skip_s22a1: bool | None = Field(
        default=None,
        description="Override: skip (true) or keep (false) the s22a1 anchor in this run. "
        f"Unset: the tag {SKIP_TAG}, then the audit kind's default in the skip policy.",
    )
    audit_kind: AuditKindChoice | None = Field(
        default=None,
        description="Audit kind for the skip policy (its kinds: s22..s28, light_s40); "
        f"default: the run tag {AUDIT_KIND_TAG}.",
    )
    num_threads: int = Field(default=2, ge=1, le=64, description="LightGBM threads per fit.")
    num_rounds: int = Field(default=50, ge=1, le=1_000, description="Rounds per probe fit.")
    max_permutations: int = Field(
        default=DEFAULT_MAX_PERMUTATIONS,
        ge=1,
        le=9_999,
        description="Most label permutations behind the s40 p-value (a fold without signal "
        "stops early); 1 / (max_permutations + 1) must not exceed alpha.",
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
            max_permutations=self.max_permutations,
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
        audit_kind=None if config.audit_kind is None else config.audit_kind.value,
        tag_audit_kind=tags.get_tag(AUDIT_KIND_TAG),
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
        # The binary probe's statistic is the validation AUC: observed_auc, as released.
        name = "auc" if probe.statistic == "validation_auc" else probe.statistic
        metadata |= {
            "statistic": probe.statistic,
            "p_value": dg.MetadataValue.float(probe.p_value),
            f"observed_{name}": dg.MetadataValue.float(probe.observed),
            f"permutation_mean_{name}": dg.MetadataValue.float(probe.permutation_mean),
            f"permutation_max_{name}": dg.MetadataValue.float(probe.permutation_max),
            "permutations_run": dg.MetadataValue.int(probe.permutations_run),
            "max_permutations": dg.MetadataValue.int(probe.max_permutations),
            "p_value_resolution": dg.MetadataValue.float(probe.p_value_resolution),
            "stopped_early": dg.MetadataValue.bool(probe.stopped_early),
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


class SuiteRunConfig(dg.Config):
    """Knobs of the diagnostics with an asset of their own (s22a2, s23, plug-ins)."""

    seed: int = Field(default=0, ge=0, description="Seed of the s23 fits.")
    num_threads: int = Field(default=2, ge=1, le=64, description="LightGBM threads per fit.")


def run_settings(
    audit: Audit, diagnostic: Diagnostic, config: AuditRunConfig | SuiteRunConfig
) -> BaseModel:
    """The settings ``diagnostic`` runs with.

    The built-ins with run-config knobs take them from the run config; every other
    diagnostic takes the audit's ``diagnostic_settings`` (or its defaults).
    """
    if isinstance(config, AuditRunConfig):
        if diagnostic.name == ANCHOR.name:
            return AnchorSettings(num_threads=config.num_threads)
        if isinstance(diagnostic, SignalProbe):
            return config.probe()
        if isinstance(diagnostic, Calibration):
            return CalibrationSettings(n_bins=config.calibration_bins)
    if diagnostic.settings_model is DriftSettings and isinstance(config, SuiteRunConfig):
        return DriftSettings(seed=config.seed, num_threads=config.num_threads)
    return audit.settings_of(diagnostic)


def result_metadata(diagnostic: Diagnostic, result: BaseModel, uri: str) -> dict[str, Any]:
    """What the UI shows of any diagnostic's result: certification first, then its figures."""
    if isinstance(result, NotApplicable):
        return {
            CERTIFICATION_KEY: result.status,
            "certification_reason": result.reason,
            "finding": result.status,
            "capture_content_hash": result.capture_content_hash,
            "verdict_uri": dg.MetadataValue.path(uri),
            VERDICT_KEY: dg.MetadataValue.json(result.model_dump(mode="json")),
        }
    findings = (
        {
            # What the verdict found, beside its certification (codes; the details are in it).
            "findings": dg.MetadataValue.json([f.code for f in result.findings])
        }
        if isinstance(result, Verdict)
        else {}
    )
    if isinstance(result, S40Verdict):
        return verdict_metadata(result, uri) | findings
    certification = getattr(result, "certification", None)
    metadata: dict[str, Any] = {}
    if certification is not None:
        metadata[CERTIFICATION_KEY] = str(certification)
        metadata["certification_reason"] = str(getattr(result, "certification_reason", ""))
    metadata["finding"] = diagnostic.finding(result)
    for name, value in diagnostic.figures(result).items():
        metadata[name] = metadata_value(value)
    elapsed = getattr(result, "elapsed_s", None)
    if elapsed is not None:
        metadata[ELAPSED_S_KEY] = dg.MetadataValue.float(float(elapsed))
    return (
        metadata
        | findings
        | {
            "capture_content_hash": str(getattr(result, "capture_content_hash", "")),
            "verdict_uri": dg.MetadataValue.path(uri),
            VERDICT_KEY: dg.MetadataValue.json(result.model_dump(mode="json")),
        }
    )


def picture_metadata(
    diagnostic: Diagnostic, result: BaseModel, metadata: dict[str, Any]
) -> dict[str, Any]:
    """The pictures ``diagnostic`` offers of ``result``, as image entries beside ``metadata``.

    Raises:
        TypeError: a picture's name is not a short identifier, or is already a key of the
            result's metadata (the diagnostic's code must rename it).
    """
    if isinstance(result, NotApplicable):
        return {}
    pictures = diagnostic.pictures(result)
    for name in pictures:
        if not _PICTURE_NAME.fullmatch(name) or name in metadata:
            raise TypeError(
                f"Diagnostic {diagnostic.name!r} offers a picture named {name!r}, which is "
                f"{'taken by its metadata' if name in metadata else 'not a short identifier'}: "
                "name it in lower case, digits and _, unlike its other metadata keys."
            )
    return image_metadata(pictures)


def _diagnostic_spec(audit: Audit, diagnostic: Diagnostic, deps: list[dg.AssetKey]) -> dg.AssetSpec:
    return dg.AssetSpec(
        audit.key(diagnostic_asset(diagnostic.name)),
        # The cell's bars too: new bars mark the verdict out of date, naming market_bars.
        deps=[*deps, bars_dep(audit)],
        skippable=True,
        group_name=audit.group("audit"),
        kinds=set(diagnostic.kinds) or None,
        metadata=declares_diagnostic(diagnostic.name),
        code_version=DIAGNOSTICS_CODE_VERSION,
        description=diagnostic.description or None,
    )


def build_diagnostics(audit: Audit) -> dg.Definitions:
    """The audit's diagnostic assets: the anchor's step, and one asset per other diagnostic."""
    assets: list[dg.AssetsDefinition] = []
    if audit.has_anchor:
        assets.append(_anchor_step(audit))
    assets.extend(_standalone(audit, diagnostic) for diagnostic in audit.standalone)
    return dg.Definitions(assets=assets)


def _anchor_step(audit: Audit) -> dg.AssetsDefinition:
    capture = audit.key(CAPTURED_FOLD)
    anchor_key = audit.key(S22A1_ANCHOR)
    readers = audit.anchor_readers
    specs = [_diagnostic_spec(audit, ANCHOR, [capture])]
    specs += [_diagnostic_spec(audit, reader, [capture, anchor_key]) for reader in readers]

    @dg.multi_asset(
        name=audit.name(ANCHOR_AND_CONSUMERS),
        specs=specs,
        partitions_def=audit.cells_partitions,
        can_subset=True,
        required_resource_keys={audit.market_data_key, "artifacts", "capture_cache"},
    )
    def anchor_and_consumers(context: dg.AssetExecutionContext, config: AuditRunConfig):
        """The s22a1 anchor and the diagnostics that read it, under one skip decision."""
        artifacts: ArtifactStoreResource = context.resources.artifacts
        capture_cache: CaptureCacheResource = context.resources.capture_cache
        yield from _run_anchor_step(context, audit, config, artifacts, capture_cache)

    return anchor_and_consumers


def _run_anchor_step(
    context: dg.AssetExecutionContext,
    audit: Audit,
    config: AuditRunConfig,
    artifacts: ArtifactStoreResource,
    capture_cache: CaptureCacheResource,
):
    cell = cell_of(context, audit)
    pointer = read_pointer(audit, cell, artifacts, capture_cache)
    selected = {audit.unprefixed(key) for key in context.selected_asset_keys}
    decision = resolve_skip(context, config)
    context.log.info(decision.reason)
    extra = _skip_metadata(decision)
    if pointer.missing and not decision.skip:
        raise dg.Failure(no_capture_message(audit, cell))
    # Only a proven pointer's capture is named in the verdicts, even an inconclusive one.
    manifest, problem = pointer.manifest, pointer.problem
    if problem is None and decision.skip:
        problem = _skip_precondition(cell, manifest, artifacts)
    captured: CapturedFold | None = None
    if problem is None and manifest is not None:
        captured, problem = load_proven(audit, manifest, artifacts, capture_cache)
    if decision.skip:
        extra |= _announce_skip(context, cell, decision, selected, manifest, problem, artifacts)
    readers = [r for r in audit.anchor_readers if diagnostic_asset(r.name) in selected]
    if captured is None:
        yield from _inconclusive(
            context, audit, cell, problem or "", readers, decision, manifest, artifacts, extra
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
        anchor = yield from _anchor(audit, cell, captured, selected, decision, artifacts, config)
    for reader in readers:
        result = run_diagnostic(reader, captured, run_settings(audit, reader, config), anchor)
        yield _result(context, audit, reader, cell, result, artifacts, extra)


def _standalone(audit: Audit, diagnostic: Diagnostic) -> dg.AssetsDefinition:
    spec = _diagnostic_spec(audit, diagnostic, [audit.key(CAPTURED_FOLD)])

    @dg.asset(
        key=spec.key,
        deps=list(spec.deps),
        partitions_def=audit.cells_partitions,
        metadata=dict(spec.metadata),
        code_version=DIAGNOSTICS_CODE_VERSION,
        group_name=spec.group_name,
        kinds=set(spec.kinds) or None,
        description=spec.description,
        required_resource_keys={audit.market_data_key, "artifacts", "capture_cache"},
    )
    def diagnostic_asset_fn(
        context: dg.AssetExecutionContext, config: SuiteRunConfig
    ) -> dg.MaterializeResult:
        artifacts: ArtifactStoreResource = context.resources.artifacts
        cell = cell_of(context, audit)
        captured = load_captured_fold(
            audit, cell, artifacts, context.resources.capture_cache, spec.key.to_user_string()
        )
        result = run_diagnostic(diagnostic, captured, run_settings(audit, diagnostic, config))
        return _result(context, audit, diagnostic, cell, result, artifacts, {})

    return diagnostic_asset_fn


def _result(
    context: dg.AssetExecutionContext,
    audit: Audit,
    diagnostic: Diagnostic,
    cell: CellRef,
    result: BaseModel,
    artifacts: ArtifactStoreResource,
    extra: dict[str, Any],
) -> dg.MaterializeResult:
    asset = diagnostic_asset(diagnostic.name)
    uri = audit.results(artifacts).write(asset, cell, result)
    context.log.info(f"{cell}: {diagnostic.name} {diagnostic.finding(result)}")
    content_hash = getattr(result, "content_hash", None)
    metadata = result_metadata(diagnostic, result, uri) | extra
    return dg.MaterializeResult(
        asset_key=audit.key(asset),
        data_version=dg.DataVersion(str(content_hash())) if callable(content_hash) else None,
        metadata=metadata | picture_metadata(diagnostic, result, metadata),
    )


def _anchor(audit, cell, captured, selected, decision, artifacts, config):
    """Fit the anchor if this run materializes it, else read the stored one (a generator)."""
    results = audit.results(artifacts)
    if S22A1_ANCHOR in selected:
        anchor = run_diagnostic(ANCHOR, captured, run_settings(audit, ANCHOR, config))
        assert isinstance(anchor, AnchorResult)
        uri = results.write(S22A1_ANCHOR, cell, anchor)
        metadata = _anchor_metadata(anchor, uri, captured.manifest.task) | _skip_metadata(decision)
        yield dg.MaterializeResult(
            asset_key=audit.key(S22A1_ANCHOR),
            data_version=dg.DataVersion(anchor.content_hash()),
            metadata=metadata | picture_metadata(ANCHOR, anchor, metadata),
        )
        return anchor
    anchor = results.read(S22A1_ANCHOR, cell, AnchorResult)
    if anchor is None:
        raise dg.Failure(
            f"{cell} has no s22a1 anchor and this run keeps the anchor ({decision.source}). "
            f"Materialize {audit.asset_name(S22A1_ANCHOR)} for the cell, or skip it (run "
            f"config skip_s22a1: true, or the tag {SKIP_TAG}=true).",
        )
    return anchor


def _skip_precondition(
    cell: CellRef, manifest: CaptureManifest | None, artifacts: ArtifactStoreResource
) -> str | None:
    """The skip path needs the captured Parquet: why it cannot run, or ``None``."""
    if manifest is None:
        return f"{cell} has no captured fold: the skip path needs its Parquet."
    captures = artifacts.captures()
    key = captures.file_key(manifest, X_FILE)
    if not captures.store.exists(key):
        return f"the captured Parquet {captures.store.uri(key)} does not exist."
    return None


def _announce_skip(
    context, cell, decision, selected, manifest, problem, artifacts
) -> dict[str, Any]:
    """Emit ``s40_s22a1_skipped``; returns the metadata the skipped run's verdicts carry.

    The skip path reads the captured Parquet in place of the anchor, so the stored X.parquet
    is hashed again here and its digest compared with the manifest's: the metadata records
    that check, also when the verified load refused the fold (then it reads False and the
    verdicts are INCONCLUSIVE_TOOLING). A Parquet that is not in the store has no digest and
    no such keys. Nothing here reads the anchor.
    """
    parquet: dict[str, Any] = {}
    if manifest is not None and X_FILE in manifest.files:
        captures = artifacts.captures()
        try:
            stored = captures.stored_file(manifest, X_FILE)
        except CaptureVerificationError:
            stored = None
        if stored is not None:
            parquet = {
                "parquet_uri": captures.store.uri(captures.file_key(manifest, X_FILE)),
                "parquet_digest_recomputed": stored.digest,
                "parquet_digest_matches_manifest": stored == manifest.files[X_FILE],
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


def _inconclusive(context, audit, cell, reason, readers, decision, manifest, artifacts, extra):
    """No verified fold: s40 says INCONCLUSIVE_TOOLING; any other reader fails with why.

    ``extra`` is the run's skip metadata, with the skip path's Parquet check when it ran.
    """
    context.log.error(f"{cell}: {reason}")
    failed = []
    for reader in readers:
        if isinstance(reader, SignalProbe):
            verdict = inconclusive_s40(str(cell), reason, manifest)
            asset = diagnostic_asset(reader.name)
            uri = audit.results(artifacts).write(asset, cell, verdict)
            yield dg.MaterializeResult(
                asset_key=audit.key(asset),
                data_version=dg.DataVersion(verdict.content_hash()),
                metadata=verdict_metadata(verdict, uri) | extra,
            )
        else:
            failed.append(reader.name)
    if failed:
        # They cannot be computed without a verified fold either; they inherit the reason.
        claim = certify(
            capture_mode=manifest.mode if manifest else None,
            anchor=AnchorUse.SKIPPED if decision.skip else AnchorUse.USED,
            problem=reason or "the captured fold could not be read.",
        )
        raise dg.Failure(f"{', '.join(failed)} for {cell}: {claim.certification}: {claim.reason}")


def _anchor_metadata(anchor: AnchorResult, uri: str, task: TaskKind) -> dict[str, Any]:
    # The curve is the task's validation loss; the binary one keeps its released name.
    metric = task_spec(task).metric
    curve_name = "validation_logloss" if task is TaskKind.BINARY else f"validation_{metric}"
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
        "curve": dg.MetadataValue.json({curve_name: anchor.curve}),
        "result_uri": dg.MetadataValue.path(uri),
    }
