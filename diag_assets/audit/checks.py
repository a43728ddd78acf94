"""The per-cell check on ``audit_report``: which cells need a release owner's attention.

The rule is the domain's (:mod:`diag_assets.core.audit.attention`); this module only says it
in Dagster's words. The check is partitioned like the report, so the UI shows, for every
cell, whether its latest report passed, warned (findings, or a DOWNGRADED audit) or failed
as an error (INCONCLUSIVE_TOOLING), and each result's description gives the cell's reason.
"""

import warnings

import dagster as dg

from diag_assets.component.audit import Audit
from diag_assets.core.audit.attention import ATTENTION_RULE, Urgency, attention, plain
from diag_assets.core.audit.report import AuditReport
from diag_assets.core.names import AUDIT_REPORT, CERTIFICATION_KEY, REPORT_CLEAN_CHECK

SEVERITY = {
    Urgency.CLEAN: dg.AssetCheckSeverity.WARN,  # not shown: the check passed
    Urgency.WARN: dg.AssetCheckSeverity.WARN,
    Urgency.ERROR: dg.AssetCheckSeverity.ERROR,
}


def report_clean_spec(audit: Audit) -> dg.AssetCheckSpec:
    """The check's spec: one result per cell, emitted with the cell's report."""
    with warnings.catch_warnings():
        # Partitioned checks are marked preview upstream; they are what puts a result on
        # every cell rather than one on the whole report.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            REPORT_CLEAN_CHECK,
            asset=audit.key(AUDIT_REPORT),
            description=ATTENTION_RULE,
            partitions_def=audit.cells_partitions,
        )


def report_clean_result(audit: Audit, report: AuditReport) -> dg.AssetCheckResult:
    """The check's result for ``report``'s cell: passed, a WARN or an ERROR, with its reason."""
    outcome = attention(report)
    return dg.AssetCheckResult(
        check_name=REPORT_CLEAN_CHECK,
        asset_key=audit.key(AUDIT_REPORT),
        passed=outcome.passed,
        severity=SEVERITY[outcome.urgency],
        description=outcome.reason,
        metadata={
            CERTIFICATION_KEY: outcome.certification.value,
            "findings": ", ".join(outcome.finding_codes) or "none",
            "headline": plain(outcome.headline),
            "urgency": outcome.urgency.value,
        },
    )
