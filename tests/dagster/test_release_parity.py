"""The capture modes through Dagster: the mode per run, the shared fixture set, release parity."""

import re

import dagster as dg
import pytest

import diag_assets.capture.assets as capture_module
from diag_assets.audit.run_results import materialized_metadata
from diag_assets.capture.modes import LATER_READERS, run_consumers
from diag_assets.core.capture.mode_policy import MODE_ENV, CaptureModePolicy
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.consumers import CaptureRequirement
from diag_assets.core.gates.records import read_release_gate, read_seam
from diag_assets.core.gates.warm_reads import REPLAYED_FIELDS
from diag_assets.core.names import ALLOW_COLD_CAPTURE_TAG
from diag_assets.core.storage.catalog.catalog import SqliteCatalog
from diag_assets.definitions import build_definitions, defs
from diag_assets.partitions import cell_partition_key
from tests.dagster.conftest import APPROVED, TINY_RUN_CONFIG
from tests.fixtures.audit import (
    anchor_and_consumers,
    assets_of,
    captured_fold,
    g_c4_invariance,
    g_c4b_seam,
    lever1_gate4_warm,
    lever3_release_gate,
    s22a2_spread,
    s23_drift,
    with_recipe,
)
from tests.fixtures.no_seam_recipe import InLoopPrepRecipe
from tests.fixtures.readers import drift_second_opinion, finetune_audit
from tests.fixtures.recipes import DriftingPrepRecipe

CELL = CellRef.parse("defi_top5/UNIUSDC/fold-2")
KEY = cell_partition_key(CELL)
AUDIT = [captured_fold, anchor_and_consumers, s22a2_spread, s23_drift]
GATES = [g_c4_invariance, g_c4b_seam, lever3_release_gate, lever1_gate4_warm]
FIXTURES = {"n_trials": 3, "max_rounds": 20}
GATE_CONFIG = {
    "ops": {
        "g_c4_invariance": {"config": FIXTURES},
        "g_c4b_seam": {"config": FIXTURES},
        "lever3_release_gate": {"config": {**FIXTURES, "probe_rounds": 20, "max_permutations": 19}},
        "lever1_gate4_warm": {"config": FIXTURES},
    }
}
DATASET_ONLY_DEFAULT = CaptureModePolicy(
    version=99, default_mode=CaptureMode.DATASET_ONLY, parity_check_rate=1.0
)


def _catalog(resources) -> list:
    catalog = SqliteCatalog(resources["capture_cache"].catalog.path)
    try:
        return catalog.entries()
    finally:
        catalog.close()


def _audit(
    resources, instance, selection, *, mode=None, skip=True, approved=True, check=True, extra=()
):
    capture_config = dict(TINY_RUN_CONFIG["ops"]["captured_fold"]["config"])
    if mode is not None:
        capture_config["capture_mode"] = mode
    probe = TINY_RUN_CONFIG["ops"]["anchor_and_consumers"]["config"]
    ops = {}
    if "captured_fold" in selection:
        ops["captured_fold"] = {"config": capture_config}
    if {"s22a1_anchor", "s40_verdict", "s27_calibration"} & set(selection):
        ops["anchor_and_consumers"] = {"config": {**probe, "skip_s22a1": skip}}
    return dg.materialize(
        [*AUDIT, *extra],
        selection=selection,
        resources=resources,
        instance=instance,
        partition_key=KEY,
        run_config={"ops": ops},
        tags=APPROVED if approved else {},
        raise_on_error=check,
    )


def _gates(resources, instance, selection, *, tags=None, check=True, gates=GATES):
    return dg.materialize(
        gates,
        selection=selection,
        resources=resources,
        instance=instance,
        run_config={"ops": {k: v for k, v in GATE_CONFIG["ops"].items() if k in selection}},
        tags=tags or {},
        raise_on_error=check,
    )


def _failure(result, node: str) -> str:
    return result.failure_data_for_node(node).user_failure_data.description


def test_the_code_location_has_the_gates_and_the_jobs():
    for job in ("lever3_release", "fixture_gates", "xy_audit"):
        assert defs.resolve_job_def(job) is not None
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {a.key.to_user_string() for a in GATES} <= keys


def test_gates_share_one_fixture_set_captured_once(resources, instance):
    # Without approval and with nothing cached, the fixture set cannot be captured.
    refused = _gates(resources, instance, ["g_c4_invariance"], check=False)
    failure = _failure(refused, "g_c4_invariance")
    assert failure.startswith("The trial invariance gate needs the fixture set in full_replay.")
    assert "COLD_CAPTURE_REQUIRES_OPERATOR" in failure

    first = _gates(resources, instance, ["g_c4_invariance"], tags=APPROVED)
    assert materialized_metadata(first, "g_c4_invariance")["decision"] == "PASS"
    full_replays = [e for e in _catalog(resources) if e.mode == "full_replay"]
    assert len(full_replays) == 2

    # The later gates need no approval: the fixture set is served from the cache.
    later = _gates(resources, instance, ["g_c4b_seam", "lever3_release_gate", "lever1_gate4_warm"])
    assert [e.key for e in _catalog(resources) if e.mode == "full_replay"] == [
        e.key for e in full_replays
    ]
    seam = materialized_metadata(later, "g_c4b_seam")
    assert seam["decision"] == "SEAM"
    assert {c["cache"] for c in seam["fixture_captures"]} == {"HIT"}
    gate = materialized_metadata(later, "lever3_release_gate")
    assert gate["decision"] == "PASS"
    served = {(c["mode"], c["cache"]) for c in gate["fixture_captures"]}
    assert served == {("full_replay", "HIT"), ("dataset_only", "MISS")}
    checks = {c.check_name: c.passed for c in later.get_asset_check_evaluations()}
    assert checks == {"dataset_only_hash_parity": True, "dataset_only_verdict_parity": True}
    record = read_release_gate(resources["artifacts"].blob_store())
    assert record is not None and record.passed and record.folds == 2
    assert read_seam(resources["artifacts"].blob_store()).seam
    # Served warm, but without approval nothing is replayed cold: reproducibility unproven.
    warm = materialized_metadata(later, "lever1_gate4_warm")
    assert warm["decision"] == "INSUFFICIENT_DATA" and warm["figures"]["cold_legs"] == 0
    assert warm["replayed_cells"] == [] and not warm["figures"]["replay_approved"]
    assert f"{ALLOW_COLD_CAPTURE_TAG}=true" in warm["reasons"]


def test_the_warm_read_gate_passes_only_when_a_cold_replay_reproduces_the_cache(
    resources, instance
):
    first = _gates(resources, instance, ["lever1_gate4_warm"], tags=APPROVED)
    warm = materialized_metadata(first, "lever1_gate4_warm")
    assert warm["decision"] == "PASS", warm["reasons"]
    assert warm["figures"]["cold_legs"] == 2 and warm["figures"]["replayed_folds"] == 1
    (fold,) = warm["replayed_cells"]
    assert fold == warm["fixture_captures"][0]["cell_ref"]
    (replay,) = warm["replays"]
    assert replay["replay_s"] > 0
    assert [c["field"] for c in replay["comparisons"]] == list(REPLAYED_FIELDS)
    assert all(c["cached"] == c["replayed"] for c in replay["comparisons"])
    assert "| trial_log_hash |" in warm["report"]

    # The same gate, the fixture set now cached, in a run without approval.
    unapproved = _gates(resources, instance, ["lever1_gate4_warm"])
    warm = materialized_metadata(unapproved, "lever1_gate4_warm")
    assert warm["decision"] == "INSUFFICIENT_DATA" and warm["replayed_cells"] == []


def test_the_warm_read_gate_fails_on_a_recipe_that_does_not_reproduce_its_capture(
    resources, instance
):
    gates = assets_of(with_recipe(DriftingPrepRecipe()), "lever1_gate4_warm")
    config = {**FIXTURES, "replay_folds": 2}
    result = dg.materialize(
        gates,
        resources=resources,
        instance=instance,
        run_config={"ops": {"lever1_gate4_warm": {"config": config}}},
        tags=APPROVED,
    )
    warm = materialized_metadata(result, "lever1_gate4_warm")
    assert warm["decision"] == "FAIL" and len(warm["replayed_cells"]) == 2
    for cell in warm["replayed_cells"]:
        assert f"{cell}: the cold replay's x_hash is " in warm["reasons"]


@pytest.mark.parametrize(
    ("replay_folds", "message"),
    [(3, "replay_folds is 3, but the fixture set holds only 2 fold(s)"), (0, "replay_folds")],
)
def test_the_warm_read_gate_refuses_a_replay_count_it_cannot_honour(
    resources, instance, replay_folds, message
):
    config = {**FIXTURES, "replay_folds": replay_folds}
    with pytest.raises(Exception, match=re.escape(message)):
        dg.materialize(
            GATES,
            selection=["lever1_gate4_warm"],
            resources=resources,
            instance=instance,
            run_config={"ops": {"lever1_gate4_warm": {"config": config}}},
            tags=APPROVED,
        )
    assert _catalog(resources) == []  # refused before anything was captured


def test_the_release_gate_blocks_when_invariance_fails(resources, instance, monkeypatch):
    selection = ["g_c4_invariance", "g_c4b_seam", "lever3_release_gate"]
    no_seam = assets_of(with_recipe(InLoopPrepRecipe()), *selection)
    result = _gates(resources, instance, selection, tags=APPROVED, check=False, gates=no_seam)
    assert not result.success
    assert materialized_metadata(result, "g_c4_invariance")["decision"] == "STOP"
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "trial_invariance_holds" and not check.passed
    # Blocked downstream: the release gate never ran, so no record can flip the default.
    assert read_release_gate(resources["artifacts"].blob_store()) is None


def test_explicit_dataset_only_for_a_trial_dynamics_reader_fails_before_any_work(
    resources, instance
):
    result = _audit(
        resources, instance, ["captured_fold", "s22a2_spread"], mode="dataset_only", check=False
    )
    message = _failure(result, "captured_fold")
    assert "CONSUMER_NEEDS_FULL_REPLAY" in message and "s22a2 (trial_dynamics)" in message
    assert _catalog(resources) == []


def test_explicit_dataset_only_without_a_seam_is_refused(resources, instance):
    result = _audit(
        resources, instance, ["captured_fold", "s40_verdict"], mode="dataset_only", check=False
    )
    assert "SEAM_NOT_CHECKED" in _failure(result, "captured_fold")
    assert _catalog(resources) == []


def test_the_policy_default_is_refused_until_the_gate_passed_then_serves_xy_only_runs(
    resources, instance, monkeypatch
):
    monkeypatch.setattr(capture_module, "load_policy", lambda: DATASET_ONLY_DEFAULT)
    refused = _audit(resources, instance, ["captured_fold", "s40_verdict"])
    capture = materialized_metadata(refused, "captured_fold")
    assert capture["mode"] == "full_replay" and capture["mode_requested"] == "dataset_only"
    assert "refused" in capture["mode_reason"] and "never run" in capture["mode_reason"]

    _gates(
        resources, instance, ["g_c4_invariance", "g_c4b_seam", "lever3_release_gate"], tags=APPROVED
    )

    light = _audit(resources, instance, ["captured_fold", "s40_verdict", "s23_drift"])
    capture = materialized_metadata(light, "captured_fold")
    assert capture["mode"] == "dataset_only" and capture["mode_decided_by"] == "policy@v99"
    assert capture["parity_check"]["matches"]  # the policy's rate is 1.0 here
    assert materialized_metadata(light, "s40_verdict")["verdict"]["capture_mode"] == "dataset_only"

    # A full audit reads the trial log: the same default is forced to a full replay.
    full = _audit(resources, instance, ["captured_fold", "s22a1_anchor", "s40_verdict"], skip=False)
    capture = materialized_metadata(full, "captured_fold")
    assert capture["mode"] == "full_replay" and "forced" in capture["mode_reason"]
    assert materialized_metadata(full, "s40_verdict")["certification"] == "CERTIFIED"


def test_the_policy_default_serves_readers_by_the_diagnostic_they_declare(
    resources, instance, monkeypatch
):
    monkeypatch.setattr(capture_module, "load_policy", lambda: DATASET_ONLY_DEFAULT)
    _gates(
        resources, instance, ["g_c4_invariance", "g_c4b_seam", "lever3_release_gate"], tags=APPROVED
    )
    readers = (finetune_audit, drift_second_opinion)

    # A reader that declares no diagnostic is unknown: it is served a full replay, by name.
    unknown = _audit(resources, instance, ["captured_fold", "finetune_audit"], extra=readers)
    capture = materialized_metadata(unknown, "captured_fold")
    assert capture["mode"] == "full_replay" and capture["mode_requested"] == "dataset_only"
    assert (
        "forced" in capture["mode_reason"] and "finetune_audit (unknown)" in capture["mode_reason"]
    )
    assert capture["consumers"] == {"finetune_audit": "unknown"}

    # A reader that declares the xy_only s23 where it is defined gets the dataset_only default.
    declared = _audit(resources, instance, ["captured_fold", "drift_second_opinion"], extra=readers)
    capture = materialized_metadata(declared, "captured_fold")
    assert capture["mode"] == "dataset_only" and capture["consumers"] == {"s23": "xy_only"}


def test_a_capture_alone_serves_every_reader_its_code_location_has(
    resources, instance, monkeypatch
):
    monkeypatch.setattr(capture_module, "load_policy", lambda: DATASET_ONLY_DEFAULT)
    _gates(
        resources, instance, ["g_c4_invariance", "g_c4b_seam", "lever3_release_gate"], tags=APPROVED
    )
    location = build_definitions(extra_assets=[finetune_audit], resources=resources)
    (capture_def,) = (
        asset
        for asset in location.assets or []
        if isinstance(asset, dg.AssetsDefinition) and captured_fold.key in asset.keys
    )
    # Materialized alone, the capture serves its later readers: the code location's readers.
    alone = dg.materialize(
        [capture_def],
        resources=resources,
        instance=instance,
        partition_key=KEY,
        run_config={"ops": {"captured_fold": TINY_RUN_CONFIG["ops"]["captured_fold"]}},
        tags=APPROVED,
    )
    capture = materialized_metadata(alone, "captured_fold")
    assert capture["consumers"] == {
        "s22a1": "trial_dynamics",
        "s22a2": "trial_dynamics",
        "s23": "xy_only",
        "s27": "trial_dynamics",
        "s40": "xy_only",
        "finetune_audit": "unknown",
    }
    assert capture["mode"] == "full_replay" and "finetune_audit (unknown)" in capture["mode_reason"]


def test_a_direct_call_serves_unknown_later_readers():
    with dg.build_asset_context() as context:
        assert run_consumers(context, captured_fold.key) == {
            LATER_READERS: CaptureRequirement.UNKNOWN
        }


def test_the_environment_override_and_the_anchor_guard(resources, instance, monkeypatch):
    _gates(resources, instance, ["g_c4_invariance", "g_c4b_seam"], tags=APPROVED)
    monkeypatch.setenv(MODE_ENV, "dataset_only")
    served = _audit(resources, instance, ["captured_fold", "s40_verdict"], approved=False)
    capture = materialized_metadata(served, "captured_fold")
    assert capture["mode"] == "dataset_only" and capture["mode_decided_by"] == f"env:{MODE_ENV}"
    assert capture["cache"] == "MISS"  # cold, yet no training: no approval was needed

    # The stored capture is dataset_only: a run that keeps the anchor is told what to do.
    kept = _audit(resources, instance, ["s40_verdict"], skip=False, check=False)
    message = _failure(kept, "anchor_and_consumers")
    assert "dataset_only" in message and "skip_s22a1" in message


@pytest.mark.parametrize("value", ["fastest", "SINGLE"])
def test_a_bad_environment_value_fails_with_the_valid_modes(
    resources, instance, monkeypatch, value
):
    monkeypatch.setenv(MODE_ENV, value)
    with pytest.raises(Exception, match="full_replay, dataset_only, single_fit"):
        _audit(resources, instance, ["captured_fold"])
    assert _catalog(resources) == []


def test_single_fit_is_explicit_labelled_and_downgrades(resources, instance):
    result = _audit(resources, instance, ["captured_fold", "s40_verdict"], mode="single_fit")
    capture = materialized_metadata(result, "captured_fold")
    assert capture["mode"] == "single_fit" and capture["trials"] == 1
    verdict = materialized_metadata(result, "s40_verdict")
    assert (
        verdict["certification"] == "DOWNGRADED"
        and "single_fit" in (verdict["certification_reason"])
    )


def test_a_failing_release_gate_fails_its_blocking_checks_and_records_the_failure(
    resources, instance
):
    one_fold = {**FIXTURES, "cell_refs": ["defi_top5/UNIUSDC/fold-1"]}
    config = {
        "g_c4b_seam": {"config": one_fold},
        "lever3_release_gate": {"config": {**one_fold, "probe_rounds": 20, "max_permutations": 19}},
    }
    result = dg.materialize(
        GATES,
        selection=["g_c4b_seam", "lever3_release_gate"],
        resources=resources,
        instance=instance,
        run_config={"ops": config},
        tags=APPROVED,
        raise_on_error=False,
    )
    assert not result.success  # a blocking check that fails fails the run
    gate = materialized_metadata(result, "lever3_release_gate")
    assert gate["decision"] == "FAIL" and "requires 2" in gate["reasons"]
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["dataset_only_hash_parity"].passed
    assert checks["dataset_only_hash_parity"].metadata["parity"].value is True  # parity held
    record = read_release_gate(resources["artifacts"].blob_store())
    assert record is not None and not record.passed and record.hash_parity
