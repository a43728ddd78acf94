"""``audit_report[cell]`` and ``audit_summary``: where a person reads the verdicts."""

from collections.abc import Mapping
from typing import Any, cast

import dagster as dg
from pydantic import BaseModel, ValidationError

from diag_assets.audit.diagnostics import cell_of
from diag_assets.audit.failures import failed_steps
from diag_assets.audit.pointer import read_pointer
from diag_assets.component.audit import Audit
from diag_assets.core.audit.report import AuditReport, Verdict, build_audit_report
from diag_assets.core.audit.summary import AuditFailure, CellStatus, audit_failure, summarize
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.plugin import Diagnostic, NotApplicable
from diag_assets.core.errors import DiagInputError
from diag_assets.core.names import (
    AUDIT_JOB,
    AUDIT_KIND_TAG,
    AUDIT_REPORT,
    AUDIT_SUMMARY,
    CAPTURED_FOLD,
    LIGHT_AUDIT_JOB,
    LIGHT_S40_AUDIT_KIND,
    S22A1_ANCHOR,
    SUMMARY_KEY,
    SYMBOLS_PARTITIONS,
    XY_AUDIT_JOB,
    diagnostic_asset,
)
from diag_assets.core.storage.results import ResultStore
from diag_assets.market.assets import bars_dep, market_data_of
from resources.storage import ArtifactStoreResource


def read_result(results: ResultStore, diagnostic: Diagnostic, cell: CellRef) -> BaseModel | None:
    """A cell's stored result of ``diagnostic``: its result model, or a NOT_APPLICABLE."""
    asset = diagnostic_asset(diagnostic.name)
    raw = results.read_raw(asset, cell)
    if raw is None:
        return None
    try:
        return diagnostic.result_model.model_validate_json(raw)
    except ValidationError:
        # Not its result model: the one other thing stored under a diagnostic's asset.
        return NotApplicable.model_validate_json(raw)


def report_metadata(report: AuditReport, uri: str) -> dict[str, Any]:
    """The report as the UI shows it: certification and findings first, then the Markdown."""
    return {
        "certification": report.certification.value,
        "findings": ", ".join(report.finding_codes) or "none",
        "headline": report.headline,
        "report": dg.MetadataValue.md(report.markdown),
        "report_uri": dg.MetadataValue.path(uri),
    }


def build_reports(audit: Audit) -> dg.Definitions:
    """The audit's ``audit_report`` and ``audit_summary``, and its audit jobs."""
    verdict_keys = [audit.key(diagnostic_asset(d.name)) for d in audit.verdicts]

    @dg.asset(
        key=audit.key(AUDIT_REPORT),
        partitions_def=audit.cells_partitions,
        # The cell's bars too: new bars mark the report out of date, naming market_bars.
        deps=[*verdict_keys, bars_dep(audit)],
        group_name=audit.group("reports"),
        kinds={"markdown"},
        required_resource_keys={audit.market_data_key, "artifacts", "capture_cache"},
    )
    def audit_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """The cell's audit in one page, certification first.

        A DOWNGRADED or INCONCLUSIVE audit says so before anything else, and why: a single_fit
        capture, the s22a1 anchor skipped, or a missing input. A diagnostic that does not
        apply to the recipe's task is shown as NOT_APPLICABLE and claims nothing.
        """
        artifacts: ArtifactStoreResource = context.resources.artifacts
        return _write_report(context, audit, artifacts)

    @dg.asset(
        key=audit.key(AUDIT_SUMMARY),
        deps=[audit_report],
        group_name=audit.group("reports"),
        kinds={"markdown"},
        required_resource_keys={audit.market_data_key, "artifacts"},
    )
    def audit_summary(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Every registered cell of the universe, one row each, with its status and findings.

        A cell is CERTIFIED, DOWNGRADED or INCONCLUSIVE_TOOLING (its latest report), REFUSED
        (a cold capture was not approved), FAILED (with the error's first line) or
        NOT_AUDITED; the counts add up to the number of cells. Only CERTIFIED cells count as
        complete, and each row lists the findings beside the certification.
        """
        artifacts: ArtifactStoreResource = context.resources.artifacts
        market_data = market_data_of(context, audit)
        universe = market_data.source().universe
        symbols = context.instance.get_dynamic_partitions(audit.name(SYMBOLS_PARTITIONS))
        # The cells of the universe: its registered symbols x the folds its layout has.
        folds = range(min(audit.n_folds, market_data.fold_spec().n_folds))
        cells = [str(CellRef(universe, symbol, fold)) for symbol in symbols for fold in folds]
        reports, unreadable = _read_reports(audit, artifacts)
        summary = summarize(
            reports,
            [d.name for d in audit.verdicts],
            cells=cells,
            failures=[*failed_steps(context.instance, audit, universe), *unreadable],
        )
        return dg.MaterializeResult(
            metadata={
                "cells": dg.MetadataValue.int(summary.cells),
                "complete": dg.MetadataValue.int(summary.complete),
                **{
                    status.value.lower(): dg.MetadataValue.int(summary.counts[status])
                    for status in CellStatus
                },
                "failed_cells": dg.MetadataValue.json(
                    {
                        status.value: summary.cells_with(status)
                        for status in (CellStatus.FAILED, CellStatus.REFUSED)
                    }
                ),
                "findings": dg.MetadataValue.json(summary.finding_counts),
                SUMMARY_KEY: dg.MetadataValue.md(summary.markdown),
            }
        )

    return dg.Definitions(assets=[audit_report, audit_summary], jobs=audit_jobs(audit))


def _write_report(
    context: dg.AssetExecutionContext, audit: Audit, artifacts: ArtifactStoreResource
) -> dg.MaterializeResult:
    """Build the cell's report from its latest verdicts and its proven capture, and store it."""
    cell = cell_of(context, audit)
    results = audit.results(artifacts)
    # A pointer that cannot be proven is not the cell's capture: the report says why.
    pointer = read_pointer(audit, cell, artifacts, context.resources.capture_cache)
    verdicts = {d.name: read_result(results, d, cell) for d in audit.verdicts}
    findings = {
        d.name: d.finding(verdict)
        for d in audit.verdicts
        if (verdict := verdicts[d.name]) is not None and not isinstance(verdict, NotApplicable)
    }
    # A diagnostic's result model is a verdict: it carries its certification, its reason,
    # the capture it was computed on and its anchor use (the plug-in interface).
    claims = cast(Mapping[str, Verdict | NotApplicable | None], verdicts)
    report = build_audit_report(
        str(cell), pointer.manifest, claims, findings, capture_problem=pointer.problem
    )
    uri = results.write(AUDIT_REPORT, cell, report)
    return dg.MaterializeResult(metadata=report_metadata(report, uri))


def _read_reports(
    audit: Audit, artifacts: ArtifactStoreResource
) -> tuple[list[AuditReport], list[AuditFailure]]:
    """The audit's stored reports; one that cannot be read is a FAILED cell, not a lost one."""
    results = audit.results(artifacts)
    prefix = f"{results.prefix}/{AUDIT_REPORT}"
    reports, unreadable = [], []
    for key in results.store.list_keys(prefix):
        try:
            reports.append(AuditReport.model_validate_json(results.store.read_bytes(key)))
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            slug = key.removeprefix(f"{prefix}/").removesuffix(".json")
            try:
                cell = CellRef.from_slug(slug)
            except DiagInputError:
                continue  # not a report of ours: no cell to show it under
            unreadable.append(
                audit_failure(
                    str(cell),
                    audit.asset_name(AUDIT_REPORT),
                    f"the stored report {results.store.uri(key)} cannot be read "
                    f"({type(error).__name__}); re-materialize audit_report for the cell.",
                    run_id="-",
                )
            )
    return reports, unreadable


def audit_jobs(audit: Audit) -> list[Any]:
    """The audit, light audit and X/y audit jobs of ``audit``."""
    everything = [
        CAPTURED_FOLD,
        *(diagnostic_asset(d.name) for d in audit.diagnostics),
        AUDIT_REPORT,
    ]
    xy_only = [
        CAPTURED_FOLD,
        *(diagnostic_asset(d.name) for d in audit.verdicts if d.requirement == "xy_only"),
    ]
    jobs = [
        dg.define_asset_job(
            audit.name(AUDIT_JOB),
            selection=[audit.key(name) for name in everything],
            description="Audit one cell: replay (or reuse) its fold, fit the s22a1 anchor, run "
            "the diagnostic suite and write the report.",
        )
    ]
    if audit.has_anchor:
        jobs.append(
            dg.define_asset_job(
                audit.name(LIGHT_AUDIT_JOB),
                selection=[audit.key(name) for name in everything if name != S22A1_ANCHOR],
                tags={AUDIT_KIND_TAG: LIGHT_S40_AUDIT_KIND},
                description="A light s40 audit: the s22a1 anchor is skipped (policy: "
                "light_s40), so the verdicts and the report are DOWNGRADED.",
            )
        )
    jobs.append(
        dg.define_asset_job(
            audit.name(XY_AUDIT_JOB),
            selection=[audit.key(name) for name in xy_only],
            tags={AUDIT_KIND_TAG: LIGHT_S40_AUDIT_KIND},
            description="The xy_only diagnostics of a cell (s40 with the anchor skipped, s23): "
            "the audit a dataset_only capture can serve once the capture mode policy makes it "
            "the default. Verdicts are DOWNGRADED, as in a light audit.",
        )
    )
    return jobs
