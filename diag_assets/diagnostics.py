"""The diagnostic assets of a cell: the s22a1 anchor and the s40 verdict."""

from typing import Any

import dagster as dg
from pydantic import Field

from diag_assets.capture import CAPTURED_FOLD, captured_fold
from diag_assets.core.capture import CapturedFold, CaptureManifest, CaptureVerificationError
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics import ProbeSettings, inconclusive_s40, judge_s40, run_anchor
from diag_assets.core.verdicts import AnchorResult, S40Verdict
from diag_assets.partitions import cell_from_partition_key, cells_partitions
from resources.market_data import MarketDataResource
from resources.storage import ArtifactStoreResource

S22A1_ANCHOR = "s22a1_anchor"
S40_VERDICT = "s40_verdict"
DIAGNOSTICS_CODE_VERSION = "1"


def load_captured_fold(cell: CellRef, artifacts: ArtifactStoreResource) -> CapturedFold:
    """The cell's latest captured fold, with its bytes and hashes verified."""
    manifest = artifacts.results().read(CAPTURED_FOLD, cell, CaptureManifest)
    if manifest is None:
        raise dg.Failure(
            f"{cell} has no captured fold yet. Materialize captured_fold for this cell first.",
        )
    return artifacts.captures().load(manifest)


def _cell(context: dg.AssetExecutionContext, market_data: MarketDataResource) -> CellRef:
    return cell_from_partition_key(context.partition_key, market_data.source().universe)


class AnchorRunConfig(dg.Config):
    """How to fit the anchor."""

    num_threads: int = Field(default=2, ge=1, le=64, description="LightGBM threads.")


@dg.asset(
    partitions_def=cells_partitions,
    deps=[captured_fold],
    code_version=DIAGNOSTICS_CODE_VERSION,
    group_name="audit",
    kinds={"lightgbm"},
)
def s22a1_anchor(
    context: dg.AssetExecutionContext,
    config: AnchorRunConfig,
    market_data: MarketDataResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """The best trial re-fitted on the captured fold (300 rounds, early stopping).

    Its best_iter and curve say whether the model learns anything; elapsed_s and rows are
    what the G-B7 cost gate reads.
    """
    cell = _cell(context, market_data)
    anchor = run_anchor(load_captured_fold(cell, artifacts), num_threads=config.num_threads)
    uri = artifacts.results().write(S22A1_ANCHOR, cell, anchor)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(anchor.content_hash()),
        metadata={
            "cell_ref": anchor.cell_ref,
            "best_iter": dg.MetadataValue.int(anchor.best_iter),
            "best_score": dg.MetadataValue.float(anchor.best_score),
            "n_rounds": dg.MetadataValue.int(anchor.n_rounds),
            "rows": dg.MetadataValue.int(anchor.rows),
            "elapsed_s": dg.MetadataValue.float(anchor.elapsed_s),
            "trial": dg.MetadataValue.int(anchor.trial),
            "capture_content_hash": anchor.capture_content_hash,
            "curve": dg.MetadataValue.json({"validation_logloss": anchor.curve}),
            "result_uri": dg.MetadataValue.path(uri),
        },
    )


class ProbeRunConfig(dg.Config):
    """The s40 probe's budget (defaults are the reference settings)."""

    num_rounds: int = Field(default=50, ge=1, le=1_000, description="Rounds per probe fit.")
    n_permutations: int = Field(
        default=19, ge=1, le=999, description="Label permutations behind the p-value."
    )
    alpha: float = Field(default=0.05, gt=0, lt=1, description="SIGNAL when p-value <= alpha.")
    seed: int = Field(default=0, ge=0, description="Seed of permutations and fits.")
    num_threads: int = Field(default=2, ge=1, le=64, description="LightGBM threads.")

    def to_core(self) -> ProbeSettings:
        """The core probe settings."""
        return ProbeSettings(**self.model_dump())


def verdict_metadata(verdict: S40Verdict, uri: str) -> dict[str, Any]:
    """What a reader of the verdict sees in the UI; certification first."""
    metadata: dict[str, Any] = {
        "certification": verdict.certification.value,
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
        "elapsed_s": dg.MetadataValue.float(verdict.elapsed_s),
        "capture_content_hash": verdict.capture_content_hash,
        "verdict_uri": dg.MetadataValue.path(uri),
        "verdict": dg.MetadataValue.json(verdict.model_dump(mode="json")),
    }


@dg.asset(
    partitions_def=cells_partitions,
    deps=[captured_fold, s22a1_anchor],
    code_version=DIAGNOSTICS_CODE_VERSION,
    group_name="audit",
    kinds={"lightgbm"},
)
def s40_verdict(
    context: dg.AssetExecutionContext,
    config: ProbeRunConfig,
    market_data: MarketDataResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """Does the fold's X carry signal about y? A permutation probe, checked against the anchor.

    SIGNAL when the validation AUC on the real labels beats the permuted-label AUCs at the
    configured alpha; CONSISTENT when the anchor learning (best_iter > 1) agrees with it.
    """
    cell = _cell(context, market_data)
    try:
        captured = load_captured_fold(cell, artifacts)
    except CaptureVerificationError as error:
        context.log.error(f"{cell}: captured fold failed verification: {error}")
        manifest = artifacts.results().read(CAPTURED_FOLD, cell, CaptureManifest)
        verdict = inconclusive_s40(
            str(cell), f"captured fold failed verification: {error}", manifest
        )
    else:
        anchor = artifacts.results().read(S22A1_ANCHOR, cell, AnchorResult)
        if anchor is None:
            raise dg.Failure(
                f"{cell} has no s22a1 anchor. Materialize s22a1_anchor for this cell first.",
            )
        verdict = judge_s40(captured, anchor, config.to_core())
    uri = artifacts.results().write(S40_VERDICT, cell, verdict)
    context.log.info(
        f"{cell}: {verdict.signal.value if verdict.signal else 'NOT_RUN'}, "
        f"{verdict.s22a1_crossref_status.value}, {verdict.certification.value}"
    )
    return dg.MaterializeResult(
        data_version=dg.DataVersion(verdict.content_hash()),
        metadata=verdict_metadata(verdict, uri),
    )


audit_job = dg.define_asset_job(
    "audit",
    selection=[captured_fold, s22a1_anchor, s40_verdict],
    description="Audit one cell: replay its fold, fit the s22a1 anchor, run the s40 probe.",
)

defs = dg.Definitions(assets=[s22a1_anchor, s40_verdict], jobs=[audit_job])
