"""``audit_report[cell]`` and ``audit_summary``: where a person reads the verdicts."""

from typing import Any

import dagster as dg

from diag_assets.audit.diagnostics import cell_of, s22a2_spread, s23_drift
from diag_assets.core.audit.report import AuditReport, build_audit_report, summarize
from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.diagnostics.calibration import S27Verdict
from diag_assets.core.diagnostics.drift import S23Verdict
from diag_assets.core.diagnostics.spread import S22a2Verdict
from diag_assets.core.diagnostics.verdicts import S40Verdict
from diag_assets.core.names import (
    AUDIT_JOB,
    AUDIT_KIND_TAG,
    AUDIT_REPORT,
    CAPTURED_FOLD,
    LIGHT_AUDIT_JOB,
    LIGHT_S40_AUDIT_KIND,
    S22A1_ANCHOR,
    S22A2_SPREAD,
    S23_DRIFT,
    S27_CALIBRATION,
    S40_VERDICT,
    SUMMARY_KEY,
    XY_AUDIT_JOB,
)
from diag_assets.partitions import cells_partitions
from resources.market_data import MarketDataResource
from resources.storage import ArtifactStoreResource

# Report name -> (asset the verdict is stored under, its model).
REPORTED = {
    "s40": (S40_VERDICT, S40Verdict),
    "s27": (S27_CALIBRATION, S27Verdict),
    "s22a2": (S22A2_SPREAD, S22a2Verdict),
    "s23": (S23_DRIFT, S23Verdict),
}


def report_metadata(report: AuditReport, uri: str) -> dict[str, Any]:
    """The report as the UI shows it: certification first, then the Markdown."""
    return {
        "certification": report.certification.value,
        "headline": report.headline,
        "report": dg.MetadataValue.md(report.markdown),
        "report_uri": dg.MetadataValue.path(uri),
    }


@dg.asset(
    partitions_def=cells_partitions,
    deps=[
        dg.AssetKey(S40_VERDICT),
        dg.AssetKey(S27_CALIBRATION),
        s22a2_spread,
        s23_drift,
    ],
    group_name="reports",
    kinds={"markdown"},
)
def audit_report(
    context: dg.AssetExecutionContext,
    market_data: MarketDataResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """The cell's audit in one page, certification first.

    A DOWNGRADED or INCONCLUSIVE audit says so before anything else, and why: a single_fit
    capture, the s22a1 anchor skipped, or a missing input.
    """
    cell = cell_of(context, market_data)
    results = artifacts.results()
    manifest = results.read(CAPTURED_FOLD, cell, CaptureManifest)
    verdicts = {name: results.read(asset, cell, model) for name, (asset, model) in REPORTED.items()}
    report = build_audit_report(str(cell), manifest, verdicts)
    uri = results.write(AUDIT_REPORT, cell, report)
    return dg.MaterializeResult(metadata=report_metadata(report, uri))


@dg.asset(deps=[audit_report], group_name="reports", kinds={"markdown"})
def audit_summary(artifacts: ArtifactStoreResource) -> dg.MaterializeResult:
    """Every audited cell at a glance; only CERTIFIED cells count as complete.

    A DOWNGRADED cell is counted and shown as downgraded, with its reasons, never as complete.
    """
    results = artifacts.results()
    keys = results.store.list_keys(f"{results.prefix}/{AUDIT_REPORT}")
    reports = [AuditReport.model_validate_json(results.store.read_bytes(key)) for key in keys]
    summary = summarize(reports)
    return dg.MaterializeResult(
        metadata={
            "cells": dg.MetadataValue.int(summary.cells),
            "complete": dg.MetadataValue.int(summary.complete),
            "certified": dg.MetadataValue.int(summary.certified),
            "downgraded": dg.MetadataValue.int(summary.downgraded),
            "inconclusive": dg.MetadataValue.int(summary.inconclusive),
            SUMMARY_KEY: dg.MetadataValue.md(summary.markdown),
        }
    )


AUDIT_SELECTION = [
    CAPTURED_FOLD,
    S22A1_ANCHOR,
    S40_VERDICT,
    S27_CALIBRATION,
    S22A2_SPREAD,
    S23_DRIFT,
    AUDIT_REPORT,
]

audit_job = dg.define_asset_job(
    AUDIT_JOB,
    selection=AUDIT_SELECTION,
    description="Audit one cell: replay (or reuse) its fold, fit the s22a1 anchor, run the "
    "diagnostic suite and write the report.",
)

light_audit_job = dg.define_asset_job(
    LIGHT_AUDIT_JOB,
    selection=[key for key in AUDIT_SELECTION if key != S22A1_ANCHOR],
    tags={AUDIT_KIND_TAG: LIGHT_S40_AUDIT_KIND},
    description="A light s40 audit: the s22a1 anchor is skipped (policy: light_s40), so the "
    "verdicts and the report are DOWNGRADED.",
)

xy_audit_job = dg.define_asset_job(
    XY_AUDIT_JOB,
    selection=[CAPTURED_FOLD, S40_VERDICT, S23_DRIFT],
    tags={AUDIT_KIND_TAG: LIGHT_S40_AUDIT_KIND},
    description="The xy_only diagnostics of a cell (s40 with the anchor skipped, s23): the "
    "audit a dataset_only capture can serve once the capture mode policy makes it the "
    "default. Verdicts are DOWNGRADED, as in a light audit.",
)

defs = dg.Definitions(
    assets=[audit_report, audit_summary],
    jobs=[audit_job, light_audit_job, xy_audit_job],
)
