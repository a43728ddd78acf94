"""The names stored history refers to: assets, checks, jobs, run tags and metadata keys.

Dagster's event log, the artifact store and operators' scripts keep these strings, so they
never change once released. They are plain strings, defined here once: the Dagster layer
builds its ``dg.AssetKey`` values, jobs and tags from them, and the core (which never imports
Dagster) reads the same strings back. The metadata of ``captured_fold`` and ``s22a1_anchor``
that other code reads back is typed by :mod:`diag_assets.core.metadata`; the keys below are
the other metadata keys that one module writes and another reads.
"""

# Assets of a cell's audit, in graph order.
MARKET_BARS = "market_bars"
CAPTURED_FOLD = "captured_fold"
S22A1_ANCHOR = "s22a1_anchor"
S40_VERDICT = "s40_verdict"
S27_CALIBRATION = "s27_calibration"
S22A2_SPREAD = "s22a2_spread"
S23_DRIFT = "s23_drift"
AUDIT_REPORT = "audit_report"
AUDIT_SUMMARY = "audit_summary"

# The asset of each built-in diagnostic; a plug-in diagnostic's asset is named after it.
DIAGNOSTIC_ASSETS = {
    "s22a1": S22A1_ANCHOR,
    "s40": S40_VERDICT,
    "s27": S27_CALIBRATION,
    "s22a2": S22A2_SPREAD,
    "s23": S23_DRIFT,
}


def diagnostic_asset(diagnostic: str) -> str:
    """The asset name of the diagnostic ``diagnostic`` (a built-in's, or its own name)."""
    return DIAGNOSTIC_ASSETS.get(diagnostic, diagnostic)


# The op that materializes the anchor and the verdicts that cross-reference it (its name is
# where run config addresses them).
ANCHOR_AND_CONSUMERS = "anchor_and_consumers"

# Assets of the gates.
ANCHOR_COST_GATE = "g_b7_cost"
REUSE_GATE = "g_a1_reuse"
DRIFT_RATE_GATE = "lever1_gate2_drift"
CAPTURE_SIZE_GATE = "lever1_gate3_size"
WARM_READ_GATE = "lever1_gate4_warm"
CONSUMERS_GATE = "g_c0_consumers"
INVARIANCE_GATE = "g_c4_invariance"
SEAM_GATE = "g_c4b_seam"
RELEASE_PARITY_GATE = "lever3_release_gate"
PHASE0_EXIT = "phase0_exit"

# Asset checks.
TRIAL_INVARIANCE_CHECK = "trial_invariance_holds"
HASH_PARITY_CHECK = "dataset_only_hash_parity"
VERDICT_PARITY_CHECK = "dataset_only_verdict_parity"
# Per cell, on audit_report: passes when the audit is CERTIFIED and found nothing.
REPORT_CLEAN_CHECK = "audit_clean"
# On captured_fold: fails (ERROR) for a cell whose cold capture was refused for want of an
# operator's approval.
COLD_CAPTURE_APPROVAL_CHECK = "cold_capture_approved"

# Jobs, schedules and sensors.
AUDIT_JOB = "audit"
# The audit job that carries the operator's approval of a cold capture (no sensor or schedule
# may ever launch it).
APPROVED_COLD_AUDIT_JOB = "approved_cold_audit"
LIGHT_AUDIT_JOB = "light_audit"
XY_AUDIT_JOB = "xy_audit"
MARKET_DATA_JOB = "market_data"
MARKET_DATA_SCHEDULE = "market_data_observation"
CAPTURE_GC_JOB = "capture_gc_job"
PHASE0_GATES_JOB = "phase0_gates"
PHASE0_GATES_SCHEDULE = "phase0_gates_refresh"
RELEASE_PARITY_JOB = "lever3_release"
FIXTURE_GATES_JOB = "fixture_gates"
REAUDIT_SENSOR = "reaudit_requests"
REGISTER_SYMBOLS_SENSOR = "register_symbols"
AUTOMATION_SENSOR = "audit_automation"

# Partitions: the dynamic partitions of the market's symbols.
SYMBOLS_PARTITIONS = "symbols"

# Run tags.
ALLOW_COLD_CAPTURE_TAG = "diag/allow_cold_capture"
SKIP_TAG = "diag/skip_s22a1"
AUDIT_KIND_TAG = "diag/audit_kind"
SOURCE_TAG = "diag/source"
REQUEST_ID_TAG = "diag/request_id"
REQUESTED_BY_TAG = "diag/requested_by"
# The folder, inside the re-audit request folder, where handled request files are moved with
# their outcome beside them.
REQUEST_ARCHIVE_FOLDER = "archive"
# The audit kind of a light s40 audit (a key of the skip policy file).
LIGHT_S40_AUDIT_KIND = "light_s40"

# Metadata keys read back by another module: of s40_verdict (the history reader and the
# benchmarks), of every gate (the demo), of phase0_exit and audit_summary (the demo and the
# UI's tests: the cell table, the status grid picture and the links to each cell's report).
CERTIFICATION_KEY = "certification"
ELAPSED_S_KEY = "elapsed_s"
VERDICT_KEY = "verdict"
DECISION_KEY = "decision"
FIGURES_KEY = "figures"
FIXTURE_CAPTURES_KEY = "fixture_captures"
FEATURE_ORDER_KEY = "feature_order"
BLOCKED_KEY = "blocked"
SUMMARY_KEY = "summary"
# Definition metadata of the assets whose step can replay a fine-tune (the automation guard).
REPLAYS_FINE_TUNE_KEY = "replays_fine_tune"
CELL_TABLE_KEY = "cell_table"
STATUS_GRID_KEY = "status_grid"
REPORT_LINKS_KEY = "report_links"

# Images in metadata, by the name a diagnostic offers its picture under (the built-ins') and
# of the history gates' plots (g_b7_cost, g_a1_reuse).
LEARNING_CURVE_IMAGE = "learning_curve"
PERMUTATION_NULL_IMAGE = "permutation_null"
RELIABILITY_IMAGE = "reliability_diagram"
ELAPSED_HISTOGRAM_KEY = "elapsed_histogram"
AUDITS_PER_CELL_KEY = "audits_per_cell"


def gate_figure_key(field: str) -> str:
    """The metadata key of one numeric figure of a gate's report, ``figures.<field>``.

    Every numeric field of a gate's figures model is an int or float entry of its own under
    this key (beside the whole figures as JSON under ``FIGURES_KEY``), so the asset's Plots
    tab shows its trend over the gate's runs.
    """
    return f"{FIGURES_KEY}.{field}"
