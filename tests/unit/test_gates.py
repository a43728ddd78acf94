"""Phase-0 gates on synthetic histories whose answers are known by construction."""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from diag_assets.core.capture.source_drift import DriftPolicy
from diag_assets.core.diagnostics.consumers import CaptureReader, CaptureRequirement
from diag_assets.core.errors import DiagInputError
from diag_assets.core.gates.anchor_cost import (
    AnchorCostDecision,
    AnchorCostReport,
    AnchorCostSettings,
    anchor_cost_gate,
)
from diag_assets.core.gates.capture_size import (
    GIB,
    CaptureSizeDecision,
    CaptureSizeSettings,
    capture_bytes,
    capture_size_gate,
)
from diag_assets.core.gates.consumer_map import ConsumerMapDecision, consumer_map_gate
from diag_assets.core.gates.drift_rate import DriftRateDecision, DriftRateSettings, drift_rate_gate
from diag_assets.core.gates.exit import ExitReport, exit_report
from diag_assets.core.gates.history import (
    ANCHOR_EVENT,
    AUDIT_EVENT,
    CAPTURE_EVENT,
    DRIFT_EVENT,
    HistoryEvent,
    read_jsonl,
)
from diag_assets.core.gates.measures import percentile
from diag_assets.core.gates.records import (
    RELEASE_GATE_RECORD,
    SEAM_RECORD,
    GateVerdict,
    ReleaseGateRecord,
    SeamRecord,
    read_release_gate,
    read_report,
    read_seam,
    write_record,
    write_report,
)
from diag_assets.core.gates.reuse import ReuseDecision, ReuseSettings, reuse_gate
from diag_assets.core.storage.blob import LocalBlobStore
from diag_assets.core.storage.catalog.model import CaptureStatus, CatalogEntry
from tests.fixtures.history import write_jsonl

NOW = datetime(2026, 5, 26, 12, 0, tzinfo=UTC)
RECENT = NOW - timedelta(days=1)
CELL = "defi_top5/UNIUSDC/fold-3"
DEFI_TOP5 = [
    f"defi_top5/{s}/fold-3" for s in ("UNIUSDC", "OPUSDC", "LDOUSDC", "AAVEUSDC", "ARBUSDC")
]

ANCHOR_COST = AnchorCostSettings()
REUSE = ReuseSettings()
DRIFT = DriftRateSettings()
SIZE = CaptureSizeSettings()


# --- synthetic histories ------------------------------------------------------------------


def event(name, *, cell=CELL, at=RECENT, elapsed=None, **fields):
    return HistoryEvent(event=name, cell_ref=cell, timestamp=at, elapsed_s=elapsed, fields=fields)


def anchors(elapsed, rows=None, *, at=RECENT):
    """One s22a1_anchor per elapsed value, a minute apart, with rows when given."""
    rows = rows or [None] * len(elapsed)
    return [
        event(
            ANCHOR_EVENT,
            cell=DEFI_TOP5[i % 5],
            at=at - timedelta(minutes=i),
            elapsed=seconds,
            **({} if size is None else {"rows": size}),
        )
        for i, (seconds, size) in enumerate(zip(elapsed, rows, strict=True))
    ]


def s40s(elapsed, *, at=RECENT):
    return [
        event(AUDIT_EVENT, cell=DEFI_TOP5[i % 5], at=at - timedelta(minutes=i), elapsed=seconds)
        for i, seconds in enumerate(elapsed)
    ]


def audits(schedule):
    """s40_verdict events from {cell_ref: [timestamps]}."""
    return [
        event(AUDIT_EVENT, cell=cell, at=at) for cell, times in schedule.items() for at in times
    ]


def captures(elapsed, *, at=RECENT):
    return [event(CAPTURE_EVENT, at=at, elapsed=seconds, bytes=10**9) for seconds in elapsed]


def drift_checks(n, drifted, *, at=RECENT):
    return [event(DRIFT_EVENT, at=at - timedelta(minutes=i), drifted=i < drifted) for i in range(n)]


def plan_anchor_history():
    """The plan's measurement of the anchor's cost: n=8, p50 234 s, range 5-865 s."""
    return anchors([5, 100, 200, 230, 238, 400, 855, 865])


def plan_reuse_history():
    """The plan's reuse case: the 5 defi_top5 fold-3 cells audited three times on 2026-05-25."""
    day = datetime(2026, 5, 25, tzinfo=UTC)
    hours = (8, 12, 18)
    history = audits({cell: [day + timedelta(hours=h) for h in hours] for cell in DEFI_TOP5})
    return history + captures([7920, 9000, 9900])


def low_reuse_audits(n_cells=10):
    """n_cells cells audited once, one of them twice: reuse 1 / (n_cells + 1)."""
    schedule = {f"defi_top5/SYM{i}USDC/fold-3": [RECENT] for i in range(n_cells)}
    schedule["defi_top5/SYM0USDC/fold-3"].append(RECENT - timedelta(days=3))
    return audits(schedule)


def reasons_text(report):
    return "\n".join(report.reasons)


# --- percentile -------------------------------------------------------------------------------


def test_percentile_interpolates_between_closest_ranks():
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 4.0, 10.0], 75) == pytest.approx(5.5)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


# --- anchor cost gate -------------------------------------------------------------------------


def test_anchor_cost_insufficient_data_names_the_count_and_the_minimum():
    report = anchor_cost_gate(anchors([500, 600, 700, 800]), ANCHOR_COST, now=NOW)
    assert report.decision is AnchorCostDecision.INSUFFICIENT_DATA
    assert "Only 4 timed" in report.reasons[0] and "min_events 5" in report.reasons[0]
    assert report.figures.n == 4 and report.figures.p50_s == 650


def test_anchor_cost_untimed_events_are_ignored_and_counted():
    history = anchors([500, 600, 700, 800]) + anchors([None, None, None])
    report = anchor_cost_gate(history, ANCHOR_COST, now=NOW)
    assert report.decision is AnchorCostDecision.INSUFFICIENT_DATA
    assert report.figures.untimed == 3 and report.figures.n == 4


def test_anchor_cost_plan_measurement_is_go_with_the_plan_figures():
    report = anchor_cost_gate(plan_anchor_history(), ANCHOR_COST, now=NOW)
    f = report.figures
    assert report.decision is AnchorCostDecision.GO
    assert (f.n, f.p50_s, f.min_s, f.max_s) == (8, 234.0, 5.0, 865.0)
    assert f.p95_s == pytest.approx(861.5)
    assert f.variance_ratio == pytest.approx(173.0)
    text = reasons_text(report)
    assert "rule: material p50 -> GO" in text and "rule: material p95 -> GO" in text
    assert "absolute thresholds only" in text


def test_anchor_cost_go_by_p50_absolute_alone():
    report = anchor_cost_gate(anchors([70] * 5), ANCHOR_COST, now=NOW)
    assert report.decision is AnchorCostDecision.GO
    assert "70.0 s >= material_p50_s 60.0 s (rule: material p50 -> GO)" in report.reasons[0]
    assert "material p95" not in reasons_text(report)


def test_anchor_cost_go_by_share_of_the_s40_wall_time():
    # 40 s is below every absolute threshold, but it is 0.29 of a 40 + 100 s audit.
    report = anchor_cost_gate(anchors([40] * 5) + s40s([100] * 5), ANCHOR_COST, now=NOW)
    assert report.decision is AnchorCostDecision.GO
    assert report.figures.anchor_share_p50 == pytest.approx(40 / 140)
    assert "rule: material p50 share -> GO" in reasons_text(report)
    # Against a slow s40 the same anchor is negligible.
    slow = anchor_cost_gate(anchors([40] * 5) + s40s([200] * 5), ANCHOR_COST, now=NOW)
    assert slow.decision is AnchorCostDecision.DEFER


def test_anchor_cost_go_by_material_p95_with_a_low_p50():
    history = anchors([10] * 9 + [2000]) + s40s([100_000] * 5)
    report = anchor_cost_gate(history, ANCHOR_COST, now=NOW)
    assert report.figures.p50_s == 10 and report.figures.p95_s == pytest.approx(1104.5)
    assert report.decision is AnchorCostDecision.GO
    text = reasons_text(report)
    assert "rule: material p95 -> GO" in text and "material p50" not in text


def test_anchor_cost_go_limited_by_tail_p95():
    history = anchors([20] * 9 + [200]) + s40s([10_000] * 5)
    report = anchor_cost_gate(history, ANCHOR_COST, now=NOW)
    assert report.figures.p95_s == pytest.approx(119.0)
    assert report.decision is AnchorCostDecision.GO_LIMITED
    text = reasons_text(report)
    assert "p95 119.0 s > tail_p95_s 90.0 s" in text and "rule: tail p95 -> GO_LIMITED" in text
    assert "unexplained variance ->" not in text


def test_anchor_cost_go_limited_by_size_normalized_unexplained_variance():
    # Rows barely vary, elapsed varies 500x: size explains none of it.
    history = anchors([0.1, 20, 30, 40, 50], rows=[1000, 2000, 1000, 2000, 1000])
    report = anchor_cost_gate(history, ANCHOR_COST, now=NOW)
    assert report.figures.size_normalized_ratio == pytest.approx(500.0)
    assert report.decision is AnchorCostDecision.GO_LIMITED
    text = reasons_text(report)
    assert "size-normalized variance ratio" in text and "500.0x >= unexplained_ratio 100x" in text
    assert "tail p95" not in text


def test_anchor_cost_go_limited_by_raw_variance_when_rows_are_missing():
    report = anchor_cost_gate(anchors([0.1, 20, 30, 40, 50]), ANCHOR_COST, now=NOW)
    assert report.figures.size_normalized_ratio is None
    assert report.decision is AnchorCostDecision.GO_LIMITED
    assert "raw max/min variance ratio (rows on 0 of 5 events" in reasons_text(report)
    # Rows on only some events: size cannot be factored out, the raw ratio decides.
    partial = anchors([0.1, 20, 30, 40, 50], rows=[100, None, None, 1000, None])
    report = anchor_cost_gate(partial, ANCHOR_COST, now=NOW)
    assert report.decision is AnchorCostDecision.GO_LIMITED
    assert "rows on 2 of 5 events" in reasons_text(report)


def test_anchor_cost_variance_explained_by_size_defers_with_r2_of_one():
    rows = [100, 1000, 10_000, 20_000, 50_000]
    history = anchors([r * 0.001 for r in rows], rows=rows)
    report = anchor_cost_gate(history, ANCHOR_COST, now=NOW)
    f = report.figures
    assert f.variance_ratio == pytest.approx(500.0)
    assert f.size_normalized_ratio == pytest.approx(1.0)
    assert f.fit_r2 == pytest.approx(1.0) and f.fit_r == pytest.approx(1.0)
    assert f.fit_slope_s_per_row == pytest.approx(0.001)
    assert f.fit_intercept_s == pytest.approx(0.0, abs=1e-9)
    assert report.decision is AnchorCostDecision.DEFER
    assert "r^2 = 1.00" in reasons_text(report)


def test_anchor_cost_defer_when_p50_and_p95_are_negligible():
    report = anchor_cost_gate(anchors([10, 12, 15, 20, 30]), ANCHOR_COST, now=NOW)
    assert report.decision is AnchorCostDecision.DEFER
    assert "are negligible" in report.reasons[0] and "DEFER" in report.reasons[0]
    assert "3.0x < 100x" in report.reasons[0]


def test_anchor_cost_reads_only_its_window():
    old = anchors([5000] * 10, at=NOW - timedelta(days=31))
    future = anchors([5000] * 10, at=NOW + timedelta(days=1))
    old_s40 = s40s([1] * 5, at=NOW - timedelta(days=40))
    report = anchor_cost_gate(
        old + future + old_s40 + anchors([10, 12, 15, 20, 30]), ANCHOR_COST, now=NOW
    )
    assert report.figures.n == 5 and report.figures.max_s == 30
    assert report.figures.s40_n == 0
    assert report.decision is AnchorCostDecision.DEFER
    assert report.window_end == NOW and report.window_start == NOW - timedelta(days=30)
    # A wider window sees the old, expensive anchors.
    wide = anchor_cost_gate(
        old + anchors([10, 12, 15, 20, 30]), AnchorCostSettings(window_days=60), now=NOW
    )
    assert wide.decision is AnchorCostDecision.GO and wide.figures.n == 15


def test_anchor_cost_naive_now_is_utc():
    report = anchor_cost_gate(anchors([70] * 5), ANCHOR_COST, now=NOW.replace(tzinfo=None))
    assert report.window_end == NOW and report.decision is AnchorCostDecision.GO


def test_anchor_cost_negative_elapsed_is_bad_input():
    with pytest.raises(DiagInputError, match="elapsed_s=-1"):
        anchor_cost_gate(anchors([10, 20, 30, 40, -1]), ANCHOR_COST, now=NOW)


def test_anchor_cost_settings_are_frozen_and_bounded():
    with pytest.raises(ValidationError):
        AnchorCostSettings(tail_p95_s=200)
    with pytest.raises(ValidationError):
        AnchorCostSettings(material_share=1.5)
    with pytest.raises(ValidationError):
        ANCHOR_COST.min_events = 1  # type: ignore[misc]
    assert AnchorCostSettings.model_fields["tail_p95_s"].description


def test_anchor_cost_markdown_has_title_decision_figures_and_reasons():
    report = anchor_cost_gate(plan_anchor_history(), ANCHOR_COST, now=NOW)
    text = report.markdown()
    assert text.startswith(
        "### anchor cost gate: cost of the s22a1 anchor (the value of the anchor skip)\n"
    )
    assert "**Decision: GO**" in text
    assert "| p50_s | 234 |" in text and "| n | 8 |" in text
    assert f"- {report.reasons[0]}" in text
    assert AnchorCostReport.model_validate_json(report.model_dump_json()) == report


# --- re-audit reuse gate ----------------------------------------------------------------------


def test_reuse_insufficient_data_names_the_count_and_the_minimum():
    report = reuse_gate(
        audits({CELL: [RECENT - timedelta(hours=h) for h in range(4)]}), REUSE, now=NOW
    )
    assert report.decision is ReuseDecision.INSUFFICIENT_DATA
    assert "Only 4 s40_verdict audits" in report.reasons[0]
    assert "min_audits 5" in report.reasons[0]


def test_reuse_plan_case_is_high_reuse():
    report = reuse_gate(plan_reuse_history(), REUSE, now=NOW)
    f = report.figures
    assert report.decision is ReuseDecision.HIGH
    assert (f.audits, f.distinct_cells, f.reaudited_cells) == (15, 5, 5)
    assert f.reuse_pct == pytest.approx(200 / 3)
    assert (f.reruns_per_cell_mean, f.reruns_per_cell_max) == (2.0, 2)
    assert f.gap_hours_median == 5.0  # gaps of 4 h and 6 h in every cell
    assert f.cold_cost_p50_s == 9000
    assert "HIGH" in report.reasons[0] and "66.7%" in report.reasons[0]
    assert report.induced_demand_note is False


def test_reuse_of_exactly_the_threshold_is_high():
    schedule = {f"defi_top5/SYM{i}USDC/fold-3": [RECENT] for i in range(7)}
    for i in range(3):
        schedule[f"defi_top5/SYM{i}USDC/fold-3"].append(RECENT - timedelta(hours=5))
    report = reuse_gate(audits(schedule), REUSE, now=NOW)
    assert report.figures.reuse_pct == pytest.approx(30.0)
    assert report.decision is ReuseDecision.HIGH


def test_low_reuse_without_capture_events_says_the_cross_check_is_impossible():
    report = reuse_gate(low_reuse_audits(), REUSE, now=NOW)
    assert report.decision is ReuseDecision.LOW
    assert report.figures.reuse_pct == pytest.approx(100 / 11)
    assert "< high_reuse_pct 30%" in report.reasons[0]
    assert "cannot be made" in reasons_text(report)
    assert report.induced_demand_note is False


def test_low_reuse_with_cheap_cold_captures_has_no_note():
    report = reuse_gate(low_reuse_audits() + captures([600, 700, 800]), REUSE, now=NOW)
    assert report.decision is ReuseDecision.LOW
    assert report.induced_demand_note is False
    assert "Induced-demand" not in reasons_text(report)


def test_low_reuse_with_expensive_cold_captures_adds_the_induced_demand_note():
    report = reuse_gate(low_reuse_audits() + captures([7920, 9000, 9900]), REUSE, now=NOW)
    assert report.decision is ReuseDecision.LOW
    assert report.induced_demand_note is True
    text = reasons_text(report)
    assert "Induced-demand note" in text and "9000.0 s (2.50 h)" in text
    assert "not an automatic no-go" in text


def test_reuse_gap_percentiles_on_a_hand_example():
    t0 = NOW - timedelta(days=2)
    schedule = {
        "defi_top5/AAVEUSDC/fold-1": [t0 + timedelta(hours=h) for h in (7, 0, 3, 1)],
        "defi_top5/ARBUSDC/fold-2": [t0 + timedelta(hours=10), t0],
        "defi_top5/OPUSDC/fold-0": [t0],
    }
    history = audits(schedule)
    random.Random(3).shuffle(history)
    f = reuse_gate(history, REUSE, now=NOW).figures
    # Gaps: 1, 2, 4 h (AAVE) and 10 h (ARB).
    assert f.gap_hours_median == pytest.approx(3.0)
    assert f.gap_hours_p75 == pytest.approx(5.5)
    assert f.gap_hours_p90 == pytest.approx(8.2)
    assert f.reuse_pct == pytest.approx(4 / 7 * 100)
    assert f.reruns_per_cell_mean == pytest.approx(4 / 3) and f.reruns_per_cell_max == 3


def test_reuse_without_re_audits_has_no_gaps():
    schedule = {f"defi_top5/SYM{i}USDC/fold-3": [RECENT] for i in range(6)}
    report = reuse_gate(audits(schedule), REUSE, now=NOW)
    assert report.decision is ReuseDecision.LOW and report.figures.reuse_pct == 0
    assert report.figures.gap_hours_median is None and report.figures.gap_hours_p90 is None
    assert "No cell was audited twice" in reasons_text(report)


def test_reuse_reads_only_its_window():
    old = audits({CELL: [NOW - timedelta(days=50, hours=h) for h in range(20)]})
    report = reuse_gate(old + low_reuse_audits(), REUSE, now=NOW)
    assert report.figures.audits == 11 and report.decision is ReuseDecision.LOW
    wide = reuse_gate(old + low_reuse_audits(), ReuseSettings(window_days=60), now=NOW)
    assert wide.figures.audits == 31 and wide.decision is ReuseDecision.HIGH


def test_reuse_window_stays_in_the_plans_range():
    with pytest.raises(ValidationError):
        ReuseSettings(window_days=7)
    with pytest.raises(ValidationError):
        ReuseSettings(window_days=90)


# --- consumer map -----------------------------------------------------------------------------


def readers(*diagnostics: str) -> list[CaptureReader]:
    """One reading asset per diagnostic, named after it."""
    return [CaptureReader(f"{name}_asset", name) for name in diagnostics]


def test_consumer_map_mapped_when_every_reader_declares_a_registered_diagnostic():
    registry = {
        "s40": CaptureRequirement.XY_ONLY,
        "s23": CaptureRequirement.XY_ONLY,
        "s22a1": CaptureRequirement.TRIAL_DYNAMICS,
    }
    report = consumer_map_gate(readers("s40", "s22a1"), registry)
    assert report.decision is ConsumerMapDecision.MAPPED
    # The map lists the readers, not the registry: s23 has no reading asset here.
    assert [(row.asset, row.diagnostic) for row in report.rows] == [
        ("s22a1_asset", "s22a1"),
        ("s40_asset", "s40"),
    ]
    assert report.figures.xy_only_diagnostics == ["s40"]
    assert (report.figures.xy_only, report.figures.trial_dynamics, report.figures.unknown) == (
        1,
        1,
        0,
    )
    allowed = {row.diagnostic: row.allowed for row in report.rows}
    assert allowed["s40"] == "anchor skip allowed; dataset_only allowed"
    assert allowed["s22a1"] == "full_replay; needs the anchor/trial log"


def test_consumer_map_unknown_present_names_the_unknown_readers_as_full_replay():
    registry = {"s40": CaptureRequirement.XY_ONLY, "s99": CaptureRequirement.UNKNOWN}
    found = [*readers("s40", "s24", "s99"), CaptureReader("my_finetune_audit", None)]
    report = consumer_map_gate(found, registry)
    assert report.decision is ConsumerMapDecision.UNKNOWN_PRESENT
    reason = report.reasons[0]
    assert "no diagnostic declared: my_finetune_audit" in reason
    assert "diagnostic not registered: s24_asset (s24)" in reason
    assert "registered as unknown: s99_asset (s99)" in reason
    assert "full replay" in reason
    rows = {row.asset: row for row in report.rows}
    undeclared = rows["my_finetune_audit"]
    assert undeclared.requirement is CaptureRequirement.UNKNOWN and not undeclared.declared
    assert undeclared.diagnostic is None and undeclared.allowed == "full_replay (undeclared)"
    assert not rows["s24_asset"].declared and rows["s99_asset"].declared
    assert report.figures.unknown == 3
    assert report.figures.unknown_assets == ["my_finetune_audit", "s24_asset", "s99_asset"]
    text = report.markdown()
    assert "**Decision: UNKNOWN_PRESENT**" in text
    assert "| my_finetune_audit | none declared | unknown |" in text


def test_consumer_map_without_readers_has_no_xy_only_consumer():
    report = consumer_map_gate([], {"s40": CaptureRequirement.XY_ONLY})
    assert report.decision is ConsumerMapDecision.MAPPED
    assert report.rows == [] and report.figures.xy_only_diagnostics == []
    assert report.reasons == ["No asset of this code location reads the capture."]


# --- drift-rate gate --------------------------------------------------------------------------


def test_drift_insufficient_data_below_min_checks():
    report = drift_rate_gate(drift_checks(19, 0), DRIFT, now=NOW)
    assert report.decision is DriftRateDecision.INSUFFICIENT_DATA
    assert "Only 19 drift checks" in report.reasons[0] and "min_checks 20" in report.reasons[0]
    assert report.recommended_policy is None


def test_drift_keep_off_at_or_below_the_low_rate():
    report = drift_rate_gate(drift_checks(100, 1), DRIFT, now=NOW)
    assert report.figures.rate == pytest.approx(0.01)
    assert report.decision is DriftRateDecision.KEEP_OFF
    assert report.recommended_policy == "off" and "the drift policy" in report.reasons[0]


def test_drift_sampled_between_the_rates_recommends_a_parsable_policy():
    report = drift_rate_gate(drift_checks(100, 5), DRIFT, now=NOW)
    assert report.decision is DriftRateDecision.SAMPLED
    assert report.recommended_policy == "sampled:0.1" and "the drift policy" in report.reasons[0]
    assert DriftPolicy.parse(report.recommended_policy).rate == 0.1
    custom = drift_rate_gate(drift_checks(100, 5), DriftRateSettings(sample_p=0.025), now=NOW)
    assert custom.recommended_policy == "sampled:0.025"
    assert DriftPolicy.parse(custom.recommended_policy).rate == 0.025


def test_drift_on_read_above_the_high_rate():
    report = drift_rate_gate(drift_checks(20, 3), DRIFT, now=NOW)
    assert report.decision is DriftRateDecision.ON_READ
    assert report.recommended_policy == "on_read" and "the drift policy" in report.reasons[0]
    assert str(DriftPolicy.parse(report.recommended_policy)) == "on_read"


@pytest.mark.parametrize("drifted", [0, 1, 5, 30])
def test_drift_reasons_name_the_setting_an_operator_changes(drifted):
    # There is no --check-drift option: the policy is the capture cache's check_drift.
    (reason, *_) = drift_rate_gate(drift_checks(100, drifted), DRIFT, now=NOW).reasons
    assert "--" not in reason
    assert "capture_cache resource's check_drift setting, env DIAG_CHECK_DRIFT" in reason


def test_drift_ignores_unreadable_and_old_checks():
    unreadable = [event(DRIFT_EVENT, drifted="yes"), event(DRIFT_EVENT)]
    old = drift_checks(50, 50, at=NOW - timedelta(days=100))
    report = drift_rate_gate(drift_checks(20, 0) + unreadable + old, DRIFT, now=NOW)
    assert report.figures.checks == 20 and report.figures.unreadable == 2
    assert report.decision is DriftRateDecision.KEEP_OFF
    assert "2 capture_drift_checked events had no boolean" in reasons_text(report)


def test_drift_rates_must_be_ordered():
    with pytest.raises(ValidationError):
        DriftRateSettings(low_rate=0.2, high_rate=0.1)


# --- capture size gate ------------------------------------------------------------------------


def test_size_insufficient_without_captures():
    report = capture_size_gate([], SIZE)
    assert report.decision is CaptureSizeDecision.INSUFFICIENT_DATA
    assert "0 captures" in report.reasons[0] and "minimum 1" in report.reasons[0]


def test_size_within_budget_up_to_the_limit():
    report = capture_size_gate([GIB // 2] * 9 + [2 * GIB], SIZE)
    assert report.figures.p95_bytes is not None and report.figures.p95_bytes < 2 * GIB
    assert report.decision is CaptureSizeDecision.WITHIN_BUDGET
    assert capture_size_gate([2 * GIB] * 3, SIZE).decision is CaptureSizeDecision.WITHIN_BUDGET
    assert report.figures.total_bytes == 9 * (GIB // 2) + 2 * GIB
    assert report.figures.max_bytes == 2 * GIB and report.figures.n == 10


def test_size_over_budget():
    report = capture_size_gate([GIB, 3 * GIB], SIZE)
    assert report.decision is CaptureSizeDecision.OVER_BUDGET
    assert "> max_capture_bytes 2.000 GiB" in report.reasons[0]
    assert capture_size_gate([GIB], CaptureSizeSettings(max_capture_bytes=GIB // 2)).decision is (
        CaptureSizeDecision.OVER_BUDGET
    )


def test_size_rejects_negative_bytes():
    with pytest.raises(DiagInputError, match="not byte counts"):
        capture_size_gate([1, -5], SIZE)


def test_capture_bytes_reads_complete_catalog_entries_only():
    def entry(key, status, size):
        return CatalogEntry(
            key=key,
            request_key="r",
            cell_ref=CELL,
            status=status,
            mode="full_replay",
            source_version="v",
            artifact_uri=None,
            x_hash=None,
            y_hash=None,
            trial_log_hash=None,
            content_hash=None,
            bytes=size,
            created_at=NOW,
            updated_at=NOW,
            last_used_at=None,
            use_count=0,
            producing_run_id=None,
            status_reason=None,
        )

    entries = [
        entry("a", CaptureStatus.COMPLETE, 100),
        entry("b", CaptureStatus.FAILED, 200),
        entry("c", CaptureStatus.COMPLETE, None),
        entry("d", CaptureStatus.COMPLETE, 300),
    ]
    assert capture_bytes(entries) == [100, 300]


# --- exit order -------------------------------------------------------------------------------

REGISTRY = {
    "s40": CaptureRequirement.XY_ONLY,
    "s23": CaptureRequirement.XY_ONLY,
    "s22a1": CaptureRequirement.TRIAL_DYNAMICS,
}


def anchor_cost_go():
    return anchor_cost_gate(plan_anchor_history(), ANCHOR_COST, now=NOW)


def reuse_high():
    return reuse_gate(plan_reuse_history(), REUSE, now=NOW)


def reuse_low(induced=False):
    cold = captures([9000] * 3 if induced else [600] * 3)
    return reuse_gate(low_reuse_audits() + cold, REUSE, now=NOW)


def consumers_mapped():
    return consumer_map_gate(readers(*REGISTRY), REGISTRY)


def test_exit_plan_measured_outcome_is_anchor_skip_then_capture_cache():
    report = exit_report(anchor_cost_go(), reuse_high(), consumers_mapped(), None, None)
    assert report.order == ["anchor_skip", "capture_cache"]
    assert report.blocked["capture_modes"] == (
        "The trial invariance gate has not run. The prep/train seam gate has not run."
    )
    assert report.deferred == {}


def test_exit_high_reuse_and_passing_mode_gates_put_capture_modes_after_the_cache():
    report = exit_report(anchor_cost_go(), reuse_high(), consumers_mapped(), True, True)
    assert report.order == ["anchor_skip", "capture_cache", "capture_modes"]
    assert report.blocked == {}
    assert "measured order" in reasons_text(report)


def test_exit_low_reuse_and_passing_mode_gates_is_anchor_skip_then_capture_modes():
    report = exit_report(anchor_cost_go(), reuse_low(), consumers_mapped(), True, True)
    assert report.order == ["anchor_skip", "capture_modes"]
    assert "LOW" in report.deferred["capture_cache"]
    assert "Induced-demand" not in report.deferred["capture_cache"]
    assert "With LOW reuse the capture modes lead" in reasons_text(report)


def test_exit_low_reuse_carries_the_induced_demand_note():
    report = exit_report(anchor_cost_go(), reuse_low(induced=True), consumers_mapped(), True, True)
    assert "Induced-demand note" in report.deferred["capture_cache"]


@pytest.mark.parametrize(
    ("invariance", "seam", "why"),
    [
        (None, True, "The trial invariance gate has not run."),
        (True, None, "The prep/train seam gate has not run."),
        (False, True, "The trial invariance gate failed"),
        (True, False, "The prep/train seam gate found no clean seam"),
    ],
)
def test_exit_capture_modes_are_blocked_by_a_missing_or_failed_invariance_or_seam(
    invariance, seam, why
):
    report = exit_report(anchor_cost_go(), reuse_low(), consumers_mapped(), invariance, seam)
    assert report.order == ["anchor_skip"]
    assert why in report.blocked["capture_modes"]


def test_exit_capture_modes_are_blocked_without_an_xy_only_consumer():
    consumers = consumer_map_gate(
        readers("s22a1", "s27"), {"s22a1": CaptureRequirement.TRIAL_DYNAMICS}
    )
    report = exit_report(anchor_cost_go(), reuse_low(), consumers, True, True)
    assert report.order == ["anchor_skip"]
    assert "The consumer map has no xy_only consumer" in report.blocked["capture_modes"]


def test_exit_unknown_consumers_do_not_block_capture_modes_but_are_named():
    consumers = consumer_map_gate(readers(*REGISTRY, "s26"), REGISTRY)
    report = exit_report(anchor_cost_go(), reuse_low(), consumers, True, True)
    assert report.order == ["anchor_skip", "capture_modes"]
    assert "1 unknown consumers stay on full_replay" in reasons_text(report)


def test_exit_anchor_cost_defer_drops_the_anchor_skip():
    deferring = anchor_cost_gate(anchors([10, 12, 15, 20, 30]), ANCHOR_COST, now=NOW)
    report = exit_report(deferring, reuse_high(), consumers_mapped(), True, True)
    assert report.order == ["capture_cache", "capture_modes"]
    assert "anchor_skip" in report.deferred and "anchor_skip" not in report.blocked


def test_exit_anchor_cost_go_limited_keeps_the_anchor_skip_first():
    limited = anchor_cost_gate(anchors([20] * 9 + [200]), ANCHOR_COST, now=NOW)
    report = exit_report(limited, reuse_high(), consumers_mapped(), None, None)
    assert report.order[0] == "anchor_skip" and "limited rollout" in report.reasons[0]


def test_exit_insufficient_data_blocks_never_orders():
    anchor_cost = anchor_cost_gate(anchors([500] * 2), ANCHOR_COST, now=NOW)
    reuse = reuse_gate(audits({CELL: [RECENT]}), REUSE, now=NOW)
    report = exit_report(anchor_cost, reuse, consumers_mapped(), None, None)
    assert report.order == []
    assert (
        "too little data" in report.blocked["anchor_skip"]
        and "min_events 5" in report.blocked["anchor_skip"]
    )
    assert "too little data" in report.blocked["capture_cache"]
    assert "capture_modes" in report.blocked
    # Reuse only sets priority: with their correctness gates passing, the capture modes proceed.
    passing = exit_report(anchor_cost, reuse, consumers_mapped(), True, True)
    assert passing.order == ["capture_modes"]
    assert set(passing.blocked) == {"capture_cache", "anchor_skip"}


def test_exit_markdown_and_json_carry_every_gate_decision():
    drift = drift_rate_gate(drift_checks(100, 5), DRIFT, now=NOW)
    size = capture_size_gate([GIB], SIZE)
    report = exit_report(
        anchor_cost_go(),
        reuse_high(),
        consumers_mapped(),
        None,
        False,
        drift_rate=drift,
        capture_size=size,
    )
    text = report.markdown()
    for row in (
        "| anchor cost gate | GO |",
        "| re-audit reuse gate | HIGH |",
        "| consumer map | MAPPED |",
        "| trial invariance gate | NOT_RUN |",
        "| prep/train seam gate | NO_SEAM |",
        "| drift-rate gate | SAMPLED |",
        "| capture size gate | WITHIN_BUDGET |",
    ):
        assert row in text
    assert "**Feature order: anchor skip (optional s22a1 anchor) -> capture cache**" in text
    for section in (
        "### anchor cost gate: ",
        "### re-audit reuse gate: ",
        "### consumer map: ",
        "### drift-rate gate: ",
        "### capture size gate: ",
    ):
        assert section in text
    data = json.loads(report.to_json())
    assert data["order"] == ["anchor_skip", "capture_cache"]
    assert data["decisions"]["prep/train seam gate"] == "NO_SEAM"
    assert ExitReport.model_validate_json(report.to_json()) == report


def test_every_gate_report_reads_in_one_layout():
    drift = drift_rate_gate(drift_checks(100, 5), DRIFT, now=NOW)
    for report in (
        anchor_cost_go(),
        reuse_high(),
        consumers_mapped(),
        drift,
        capture_size_gate([GIB], SIZE),
    ):
        text = report.markdown()
        heading, decision, *_ = text.split("\n\n")
        assert heading == f"### {report.heading()}"
        assert decision == f"**Decision: {report.decision.value}**"
        assert text.index(f"- {report.reasons[0]}") < text.index("| figure | value |")
        assert all(f"| {name} | " in text for name in report.figure_rows())


def test_exit_markdown_ends_with_its_appendix():
    report = exit_report(anchor_cost_go(), reuse_high(), consumers_mapped(), None, None)
    text = report.markdown(appendix={"audits per cell": "```\nUNIUSDC | 2\n```"})
    assert text.startswith("## Exit order\n\n**Feature order: ")
    assert text.index("### consumer map") < text.index("### audits per cell")
    assert text.endswith("### audits per cell\n\n```\nUNIUSDC | 2\n```\n")


# --- the JSONL history ------------------------------------------------------------------------


def test_jsonl_round_trip_gives_equal_events_and_equal_gates(tmp_path):
    history = [
        *plan_anchor_history(),
        *anchors([12.5, None], rows=[13061, 200]),
        *plan_reuse_history(),
        *drift_checks(3, 1),
        event(ANCHOR_EVENT, at=datetime(2026, 5, 25, 10, tzinfo=UTC), best_iter=1, rows=13061),
    ]
    path = tmp_path / "history.jsonl"
    write_jsonl(history, path)
    assert read_jsonl(path) == history
    assert anchor_cost_gate(read_jsonl(path), ANCHOR_COST, now=NOW) == anchor_cost_gate(
        history, ANCHOR_COST, now=NOW
    )
    assert reuse_gate(read_jsonl(path), REUSE, now=NOW) == reuse_gate(history, REUSE, now=NOW)
    write_jsonl([], path)
    assert read_jsonl(path) == []


def test_jsonl_reads_naive_and_offset_timestamps_as_utc(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(
        '{"event": "s40_verdict", "cell_ref": "a", "timestamp": "2026-05-25T10:00:00"}\n'
        "\n"
        '{"event": "s40_verdict", "cell_ref": "a", "timestamp": "2026-05-25T12:00:00+02:00"}\n'
    )
    first, second = read_jsonl(path)
    assert first.timestamp == second.timestamp == datetime(2026, 5, 25, 10, tzinfo=UTC)
    assert first.timestamp.tzinfo is UTC and first.elapsed_s is None and first.fields == {}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"event": "capture", "timestamp": "2026-05-25T10:00:00Z"}', "lacks cell_ref"),
        ('{"event": "capture", "cell_ref": "a", "timestamp": "yesterday"}', "is not ISO 8601"),
        (
            '{"event": "capture", "cell_ref": "a", "timestamp": "2026-05-25", "elapsed_s": "9"}',
            "is not a number",
        ),
    ],
)
def test_jsonl_errors_name_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    good = '{"event": "capture", "cell_ref": "a", "timestamp": "2026-05-25T10:00:00Z"}'
    path.write_text(f"{good}\n{line}\n")
    with pytest.raises(DiagInputError, match=message) as caught:
        read_jsonl(path)
    assert f"{path}:2" in str(caught.value)


def test_jsonl_missing_file_is_bad_input(tmp_path):
    with pytest.raises(DiagInputError, match="does not exist"):
        read_jsonl(tmp_path / "absent.jsonl")


# --- gate records -----------------------------------------------------------------------------


def test_gate_records_keep_the_keys_stored_records_live_under(tmp_path):
    store = LocalBlobStore(tmp_path)
    assert read_seam(store) is None and read_release_gate(store) is None
    seam = SeamRecord(recipe_version="v1", decision="SEAM", reasons=["ok"], evaluated_at=NOW)
    gate = ReleaseGateRecord(
        recipe_version="v1",
        passed=True,
        folds=2,
        hash_parity=True,
        verdict_parity=True,
        evaluated_at=NOW,
        reasons=["ok"],
    )
    assert write_record(store, seam) == store.uri("gates/g_c4b_seam.record.json")
    assert write_record(store, gate) == store.uri("gates/lever3_release_gate.record.json")
    assert (SEAM_RECORD, RELEASE_GATE_RECORD) == (
        "gates/g_c4b_seam.record.json",
        "gates/lever3_release_gate.record.json",
    )
    assert read_seam(store) == seam and read_seam(store).seam
    assert read_release_gate(store) == gate


def test_a_record_written_before_reads_back():
    # A seam record as earlier versions wrote it: it must stay readable.
    store_text = (
        '{"recipe_version": "v0", "decision": "DESIGN_REVIEW_REQUIRED", "reasons": [], '
        '"evaluated_at": "2026-05-01T00:00:00Z"}'
    )
    record = SeamRecord.model_validate_json(store_text)
    assert not record.seam and record.evaluated_at.tzinfo is not None


def test_a_broken_record_names_its_key_and_the_asset_that_rewrites_it(tmp_path):
    store = LocalBlobStore(tmp_path)
    store.write_bytes(SEAM_RECORD, b'{"recipe_version": "v1", "decision": "SEAM"}')
    with pytest.raises(DiagInputError) as caught:
        read_seam(store)
    message = str(caught.value)
    assert SEAM_RECORD in message and "SeamRecord" in message and "reasons" in message
    assert "materialize g_c4b_seam again" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    store.write_bytes(RELEASE_GATE_RECORD, b"not json")
    with pytest.raises(DiagInputError, match="materialize lever3_release_gate again"):
        read_release_gate(store)


def test_gate_reports_round_trip_under_their_asset_name(tmp_path):
    store = LocalBlobStore(tmp_path)
    report = anchor_cost_go()
    assert write_report(store, "g_b7_cost", report) == store.uri("gates/g_b7_cost.json")
    assert read_report(store, "g_b7_cost", AnchorCostReport) == report
    assert read_report(store, "g_c4_invariance", GateVerdict) is None
    store.write_bytes("gates/g_a1_reuse.json", b'{"gate": "re-audit reuse gate"}')
    with pytest.raises(DiagInputError, match="materialize g_a1_reuse again"):
        read_report(store, "g_a1_reuse", AnchorCostReport)
