"""``audit_report[cell]`` and ``audit_summary``: where a person reads the verdicts."""

from collections.abc import Mapping
from typing import Any, cast

import dagster as dg
from pydantic import BaseModel, ValidationError

from diag_assets.audit.checks import report_clean_result, report_clean_spec
from diag_assets.audit.diagnostics import cell_of
from diag_assets.audit.failures import failed_steps
from diag_assets.audit.pointer import read_pointer
from diag_assets.audit.summary_view import cell_table, report_links, status_grid
from diag_assets.component.audit import Audit
from diag_assets.core.audit.attention import plain
from diag_assets.core.audit.report import AuditReport, Verdict, build_audit_report
from diag_assets.core.audit.summary import (
    AuditFailure,
    AuditSummary,
    CellStatus,
    audit_failure,
    summarize,
)
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.plugin import Diagnostic, NotApplicable
from diag_assets.core.errors import DiagInputError
from diag_assets.core.names import (
    ALLOW_COLD_CAPTURE_TAG,
    APPROVED_COLD_AUDIT_JOB,
    AUDIT_JOB,
    AUDIT_KIND_TAG,
    AUDIT_REPORT,
    AUDIT_SUMMARY,
    CAPTURED_FOLD,
    CELL_TABLE_KEY,
    LIGHT_AUDIT_JOB,
    LIGHT_S40_AUDIT_KIND,
    REPORT_CLEAN_CHECK,
    REPORT_LINKS_KEY,
    S22A1_ANCHOR,
    STATUS_GRID_KEY,
    SUMMARY_KEY,
    SYMBOLS_PARTITIONS,
    XY_AUDIT_JOB,
    diagnostic_asset,
)
from diag_assets.core.storage.results import ResultStore
from diag_assets.market.assets import bars_dep, market_data_of
from diag_assets.metadata_values import run_link
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


# The summary is refreshed whenever a cell's report is written. Eager would wait for every
# cell of the universe to have a report (it holds back while any upstream partition is
# missing), which most never do; nor does this wait for reports still being written, so a
# long backfill shows its progress as it goes. One summary run at a time.
SUMMARY_REFRESH = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.in_progress()
).with_label("refresh when a cell's report is written")


def report_metadata(report: AuditReport, uri: str) -> dict[str, Any]:
    """The report as the UI shows it: certification and findings first, then the Markdown."""
    return {
        "certification": report.certification.value,
        "findings": ", ".join(report.finding_codes) or "none",
        # A text entry shows no Markdown: the headline without its bold.
        "headline": plain(report.headline),
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
        check_specs=[report_clean_spec(audit)],
    )
    def audit_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """The cell's audit in one page, certification first.

        A DOWNGRADED or INCONCLUSIVE audit says so before anything else, and why: a single_fit
        capture, the s22a1 anchor skipped, or a missing input. A diagnostic that does not
        apply to the recipe's task is shown as NOT_APPLICABLE and claims nothing. Its
        ``audit_clean`` check says whether the cell needs a release owner's attention.
        """
        artifacts: ArtifactStoreResource = context.resources.artifacts
        return _write_report(context, audit, artifacts)

    @dg.asset(
        key=audit.key(AUDIT_SUMMARY),
        deps=[audit_report],
        group_name=audit.group("reports"),
        kinds={"markdown"},
        required_resource_keys={audit.market_data_key, "artifacts"},
        automation_condition=SUMMARY_REFRESH,
    )
    def audit_summary(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Every registered cell of the universe, one row each, with its status and findings.

        A cell is CERTIFIED, DOWNGRADED or INCONCLUSIVE_TOOLING (its latest report), REFUSED
        (a cold capture was not approved), FAILED (with the error's first line) or
        NOT_AUDITED; the counts add up to the number of cells. Only CERTIFIED cells count as
        complete, and each row lists the findings beside the certification. The cell table,
        the symbol x fold status grid and the links to each cell's report show the same rows.
        It is refreshed whenever a cell's report is written.
        """
        artifacts: ArtifactStoreResource = context.resources.artifacts
        market_data = market_data_of(context, audit)
        universe = market_data.source().universe
        symbols = context.instance.get_dynamic_partitions(audit.name(SYMBOLS_PARTITIONS))
        # The cells of the universe: its registered symbols x the folds its layout has.
        folds = range(min(audit.n_folds, market_data.fold_spec().n_folds))
        cells = [str(CellRef(universe, symbol, fold)) for symbol in symbols for fold in folds]
        reports, unreadable = _read_reports(audit, artifacts)
        failures = [*failed_steps(context.instance, audit, universe), *unreadable]
        summary = summarize(
            reports, [d.name for d in audit.verdicts], cells=cells, failures=failures
        )
        # What an operator looks at first comes first: the counts, the grid, the links.
        return dg.MaterializeResult(
            metadata={
                "cells": dg.MetadataValue.int(summary.cells),
                "complete": dg.MetadataValue.int(summary.complete),
                **{
                    status.value.lower(): dg.MetadataValue.int(summary.counts[status])
                    for status in CellStatus
                },
                STATUS_GRID_KEY: status_grid(summary),
                REPORT_LINKS_KEY: report_links(audit, summary),
                "failed_cells": dg.MetadataValue.json(
                    {
                        status.value: summary.cells_with(status)
                        for status in (CellStatus.FAILED, CellStatus.REFUSED)
                    }
                ),
                "findings": dg.MetadataValue.json(summary.finding_counts),
                SUMMARY_KEY: dg.MetadataValue.md(summary.markdown),
                CELL_TABLE_KEY: cell_table(audit, summary),
                **_failure_runs(summary, failures),
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
    checked = dg.AssetCheckKey(audit.key(AUDIT_REPORT), REPORT_CLEAN_CHECK)
    return dg.MaterializeResult(
        metadata=report_metadata(report, uri),
        check_results=(
            [report_clean_result(audit, report)]
            if checked in context.selected_asset_check_keys
            else []
        ),
    )


# How many refused or failed cells the summary links to their runs (the table names them all).
FAILURE_RUNS_LINKED = 25


def _failure_runs(
    summary: AuditSummary, failures: list[AuditFailure]
) -> dict[str, dg.MetadataValue]:
    """A link to the run of each refused or failed cell (``refused run: <cell>``), the first few."""
    latest = {failure.cell_ref: failure for failure in failures}  # the summary's choice
    linked: dict[str, dg.MetadataValue] = {}
    for status in (CellStatus.REFUSED, CellStatus.FAILED):
        for cell in summary.cells_with(status):
            failure = latest.get(cell)
            if failure is None or failure.run_id == "-" or len(linked) >= FAILURE_RUNS_LINKED:
                continue
            linked[f"{status.value.lower()} run: {cell}"] = run_link(failure.run_id)
    return linked


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
    """The audit, approved cold audit, light audit and X/y audit jobs of ``audit``."""
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
        ),
        dg.define_asset_job(
            audit.name(APPROVED_COLD_AUDIT_JOB),
            selection=[audit.key(name) for name in everything],
            tags={ALLOW_COLD_CAPTURE_TAG: "true"},
            description="The operator's approval of a cold capture: the audit job, for a cell "
            "whose fold is not in the capture cache, allowed to replay the whole fine-tune. "
            "Launch it by hand for the cell from the Launchpad; no sensor or schedule launches "
            "it.",
        ),
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
