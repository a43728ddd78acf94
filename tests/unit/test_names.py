"""The stored names: the event log, the artifact store and operators' scripts refer to them."""

from diag_assets.core import names

# Changing one of these orphans every stored materialization, run and tag that uses it.
STORED = {
    "MARKET_BARS": "market_bars",
    "CAPTURED_FOLD": "captured_fold",
    "S22A1_ANCHOR": "s22a1_anchor",
    "S40_VERDICT": "s40_verdict",
    "S27_CALIBRATION": "s27_calibration",
    "S22A2_SPREAD": "s22a2_spread",
    "S23_DRIFT": "s23_drift",
    "AUDIT_REPORT": "audit_report",
    "AUDIT_SUMMARY": "audit_summary",
    "DIAGNOSTIC_ASSETS": {
        "s22a1": "s22a1_anchor",
        "s40": "s40_verdict",
        "s27": "s27_calibration",
        "s22a2": "s22a2_spread",
        "s23": "s23_drift",
    },
    "ANCHOR_AND_CONSUMERS": "anchor_and_consumers",
    "ANCHOR_COST_GATE": "g_b7_cost",
    "REUSE_GATE": "g_a1_reuse",
    "DRIFT_RATE_GATE": "lever1_gate2_drift",
    "CAPTURE_SIZE_GATE": "lever1_gate3_size",
    "WARM_READ_GATE": "lever1_gate4_warm",
    "CONSUMERS_GATE": "g_c0_consumers",
    "INVARIANCE_GATE": "g_c4_invariance",
    "SEAM_GATE": "g_c4b_seam",
    "RELEASE_PARITY_GATE": "lever3_release_gate",
    "PHASE0_EXIT": "phase0_exit",
    "TRIAL_INVARIANCE_CHECK": "trial_invariance_holds",
    "HASH_PARITY_CHECK": "dataset_only_hash_parity",
    "VERDICT_PARITY_CHECK": "dataset_only_verdict_parity",
    "REPORT_CLEAN_CHECK": "audit_clean",
    "AUDIT_JOB": "audit",
    "APPROVED_COLD_AUDIT_JOB": "approved_cold_audit",
    "LIGHT_AUDIT_JOB": "light_audit",
    "XY_AUDIT_JOB": "xy_audit",
    "MARKET_DATA_JOB": "market_data",
    "MARKET_DATA_SCHEDULE": "market_data_observation",
    "CAPTURE_GC_JOB": "capture_gc_job",
    "PHASE0_GATES_JOB": "phase0_gates",
    "PHASE0_GATES_SCHEDULE": "phase0_gates_refresh",
    "RELEASE_PARITY_JOB": "lever3_release",
    "FIXTURE_GATES_JOB": "fixture_gates",
    "REAUDIT_SENSOR": "reaudit_requests",
    "REGISTER_SYMBOLS_SENSOR": "register_symbols",
    "AUTOMATION_SENSOR": "audit_automation",
    "SYMBOLS_PARTITIONS": "symbols",
    "ALLOW_COLD_CAPTURE_TAG": "diag/allow_cold_capture",
    "SKIP_TAG": "diag/skip_s22a1",
    "AUDIT_KIND_TAG": "diag/audit_kind",
    "SOURCE_TAG": "diag/source",
    "REQUEST_ID_TAG": "diag/request_id",
    "REQUESTED_BY_TAG": "diag/requested_by",
    "LIGHT_S40_AUDIT_KIND": "light_s40",
    "CERTIFICATION_KEY": "certification",
    "ELAPSED_S_KEY": "elapsed_s",
    "VERDICT_KEY": "verdict",
    "DECISION_KEY": "decision",
    "FIGURES_KEY": "figures",
    "FIXTURE_CAPTURES_KEY": "fixture_captures",
    "FEATURE_ORDER_KEY": "feature_order",
    "BLOCKED_KEY": "blocked",
    "SUMMARY_KEY": "summary",
    "LEARNING_CURVE_IMAGE": "learning_curve",
    "PERMUTATION_NULL_IMAGE": "permutation_null",
    "RELIABILITY_IMAGE": "reliability_diagram",
    "ELAPSED_HISTOGRAM_KEY": "elapsed_histogram",
    "AUDITS_PER_CELL_KEY": "audits_per_cell",
    "CELL_TABLE_KEY": "cell_table",
    "STATUS_GRID_KEY": "status_grid",
    "REPORT_LINKS_KEY": "report_links",
    "COLD_CAPTURE_APPROVAL_CHECK": "cold_capture_approved",
    "REQUEST_ARCHIVE_FOLDER": "archive",
    "REPLAYS_FINE_TUNE_KEY": "replays_fine_tune",
}


def test_every_stored_name_keeps_its_value():
    defined = {name: value for name, value in vars(names).items() if name.isupper()}
    assert defined == STORED


def test_a_gate_figure_is_keyed_under_figures():
    assert names.gate_figure_key("p50_s") == "figures.p50_s"


def test_the_skip_policy_file_knows_the_light_audit_kind():
    from diag_assets.core.audit.anchor_skip import load_policy

    assert load_policy().audit_kinds[names.LIGHT_S40_AUDIT_KIND] is True
