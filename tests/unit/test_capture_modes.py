"""The capture modes in the core: the modes, the mode resolver, the registry guard, parity."""

import json
from datetime import UTC, datetime
from pathlib import Path

import lightgbm
import pytest

from diag_assets.core.capture import events as ev
from diag_assets.core.capture.artifacts import CaptureArtifacts, CaptureVerificationError
from diag_assets.core.capture.cache import CaptureService
from diag_assets.core.capture.events import EventRecorder
from diag_assets.core.capture.manifest import MODE_FILES, TRACE_FILE, TRIAL_LOG_FILE
from diag_assets.core.capture.mode_policy import (
    CONSUMER_NEEDS_FULL_REPLAY,
    DESIGN_REVIEW_REQUIRED,
    SEAM_NOT_CHECKED,
    CaptureModePolicy,
    CaptureModeRefused,
    load_policy,
    resolve_capture_mode,
)
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.outcomes import CaptureOutcome, ColdCaptureRequiresOperator
from diag_assets.core.capture.replay import CaptureParityFailed, prepare_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.anchor import run_anchor
from diag_assets.core.diagnostics.certification import Certification
from diag_assets.core.diagnostics.consumers import CaptureRequirement, ConsumerContractViolation
from diag_assets.core.diagnostics.drift import run_s23
from diag_assets.core.diagnostics.probe import judge_s40
from diag_assets.core.diagnostics.spread import run_s22a2
from diag_assets.core.errors import DiagInputError
from diag_assets.core.gates.records import ReleaseGateRecord, SeamRecord
from diag_assets.core.gates.release_parity import (
    ReleaseParityDecision,
    compare_fold,
    release_parity_gate,
)
from diag_assets.core.gates.warm_reads import (
    REPLAYED_FIELDS,
    ColdReplay,
    HashComparison,
    WarmRead,
    WarmReadDecision,
    replay_cold,
    warm_read_gate,
)
from diag_assets.core.recipe.code_version import recipe_code_version
from diag_assets.core.recipe.reference import ReferenceRecipe
from diag_assets.core.storage.blob import LocalBlobStore
from diag_assets.core.storage.catalog.catalog import SqliteCatalog
from diag_assets.core.storage.catalog.model import CaptureStatus
from diag_assets.core.storage.lease.file import FileLease
from tests.conftest import TINY_CAPTURE, TINY_FOLDS, TINY_PROBE
from tests.fixtures.captures import replay
from tests.fixtures.recipes import DriftingPrepRecipe

CELL = CellRef.parse("defi_top5/UNIUSDC/fold-3")
RECIPE = ReferenceRecipe()
VERSION = recipe_code_version(RECIPE)
XY = CaptureRequirement.XY_ONLY
TRIALS = CaptureRequirement.TRIAL_DYNAMICS
UNKNOWN = CaptureRequirement.UNKNOWN
NOW = datetime(2026, 11, 24, tzinfo=UTC)


@pytest.fixture(scope="module")
def full(tiny_source):
    return replay(tiny_source, CaptureMode.FULL_REPLAY)


@pytest.fixture(scope="module")
def reduced(tiny_source):
    return replay(tiny_source, CaptureMode.DATASET_ONLY)


# --- the modes ------------------------------------------------------------------------------


def test_dataset_only_trains_nothing_and_equals_full_replay_by_canonical_hash(
    tiny_source, full, monkeypatch
):
    def no_training(*args, **kwargs):
        raise AssertionError("dataset_only must not train")

    monkeypatch.setattr(lightgbm, "train", no_training)
    reduced = replay(tiny_source, CaptureMode.DATASET_ONLY)
    assert reduced.trial_log is None and reduced.manifest.n_trials == 0
    assert reduced.manifest.best_iter is None and reduced.manifest.trial_log_hash is None
    assert (reduced.manifest.x_hash, reduced.manifest.y_hash, reduced.manifest.n_train) == (
        full.manifest.x_hash,
        full.manifest.y_hash,
        full.manifest.n_train,
    )
    # Same X/y, different data versions: a dataset_only capture is its own materialization.
    assert reduced.manifest.content_hash != full.manifest.content_hash


def test_single_fit_fits_exactly_one_trial_and_is_labelled(tiny_source, full):
    single = replay(tiny_source, CaptureMode.SINGLE_FIT)
    assert single.manifest.mode is CaptureMode.SINGLE_FIT
    assert single.trial_log is not None and len(single.trial_log.trials) == 1
    assert single.trial_log.trials[0] == full.trial_log.trials[0].model_copy(
        update={"elapsed_s": single.trial_log.trials[0].elapsed_s}
    )


def test_the_mode_is_part_of_the_capture_key(tiny_source):
    keys = {
        prepare_cell(CELL, tiny_source, TINY_FOLDS, RECIPE, TINY_CAPTURE.with_mode(mode)).key
        for mode in CaptureMode
    }
    assert len(keys) == len(CaptureMode)


def test_full_replay_keeps_the_trace_of_its_own_replay(tmp_path, full):
    artifacts = CaptureArtifacts(LocalBlobStore(tmp_path))
    manifest = artifacts.write(full)
    assert set(manifest.files) == MODE_FILES[CaptureMode.FULL_REPLAY]
    trace = artifacts.load_trace(manifest)
    assert trace is not None and trace.trial_log_hash == manifest.trial_log_hash
    assert trace.trials_requested == TINY_CAPTURE.trials.n_trials


def test_dataset_only_round_trips_without_trial_log_and_refuses_foreign_files(tmp_path, reduced):
    artifacts = CaptureArtifacts(LocalBlobStore(tmp_path))
    manifest = artifacts.write(reduced)
    assert set(manifest.files) == {"X.parquet", "y.parquet"}
    loaded = artifacts.load(manifest)
    assert loaded.trial_log is None and artifacts.load_trace(manifest) is None
    artifacts.verify(manifest)
    # A dataset_only manifest that lists a trial log is not a dataset_only capture.
    forged = manifest.model_copy(
        update={"files": {**manifest.files, TRIAL_LOG_FILE: manifest.files["X.parquet"]}}
    )
    with pytest.raises(CaptureVerificationError, match="dataset_only"):
        artifacts.verify(forged)


def test_a_trace_from_another_replay_is_refused(tmp_path, full):
    artifacts = CaptureArtifacts(LocalBlobStore(tmp_path))
    manifest = artifacts.write(full)
    other = full.trace.model_copy(update={"trial_log_hash": "someone-else"})
    payload = other.model_dump_json().encode()
    artifacts.store.write_bytes(artifacts.file_key(manifest, TRACE_FILE), payload)
    from diag_assets.core.capture.manifest import FileEntry
    from diag_assets.core.hashing.digests import bytes_digest

    entry = FileEntry(bytes=len(payload), digest=bytes_digest(payload))
    patched = manifest.model_copy(update={"files": {**manifest.files, TRACE_FILE: entry}})
    with pytest.raises(CaptureVerificationError, match="another replay"):
        artifacts.load_trace(patched)


# --- registry and verdicts ------------------------------------------------------------------


def test_trial_dynamics_diagnostics_refuse_reduced_captures(tiny_source, reduced):
    single = replay(tiny_source, CaptureMode.SINGLE_FIT)
    for captured in (reduced, single):
        with pytest.raises(ConsumerContractViolation, match="serves xy_only diagnostics only"):
            run_s22a2(captured)
        with pytest.raises(ConsumerContractViolation, match=str(captured.mode)):
            run_anchor(captured)
    assert run_s23(reduced).cell_ref == str(CELL)  # xy_only: served


def test_s40_verdict_parity_between_dataset_only_and_full_replay(full, reduced):
    on_full = judge_s40(full, None, TINY_PROBE)
    on_reduced = judge_s40(reduced, None, TINY_PROBE)
    assert on_reduced.signal == on_full.signal and on_reduced.probe == on_full.probe
    assert on_reduced.certification == on_full.certification
    assert on_reduced.capture_mode == "dataset_only"


def test_single_fit_verdicts_are_downgraded_and_say_so(tiny_source, full):
    single = replay(tiny_source, CaptureMode.SINGLE_FIT)
    anchor = run_anchor(full)
    certified = judge_s40(full, anchor, TINY_PROBE)
    assert certified.certification is Certification.CERTIFIED
    verdict = judge_s40(single, None, TINY_PROBE)
    assert verdict.certification is Certification.DOWNGRADED
    assert "single_fit" in verdict.certification_reason and verdict.capture_mode == "single_fit"


# --- the periodic parity check --------------------------------------------------------------


def test_parity_check_passes_on_the_reference_recipe(tiny_source):
    checked = replay(tiny_source, CaptureMode.DATASET_ONLY, check_parity=True)
    parity = checked.manifest.parity
    assert parity is not None and parity.matches and parity.x_hash == checked.manifest.x_hash


def test_parity_check_catches_a_prep_that_is_not_what_training_sees(tiny_source):
    with pytest.raises(CaptureParityFailed, match="CAPTURE_PARITY_FAILED"):
        replay(tiny_source, CaptureMode.DATASET_ONLY, DriftingPrepRecipe(), check_parity=True)
    # Without the check the same recipe captures silently: what the sampled check is for.
    assert replay(tiny_source, CaptureMode.DATASET_ONLY, DriftingPrepRecipe()).manifest


def service(root: Path, rate: float) -> CaptureService:
    return CaptureService(
        CaptureArtifacts(LocalBlobStore(root / "store")),
        SqliteCatalog(root / "catalog.sqlite"),
        FileLease(root / "leases"),
        lease_wait_s=30,
        parity_check_rate=rate,
    )


def test_parity_failure_fails_the_capture_emits_the_event_and_stores_nothing(tmp_path, tiny_source):
    cache, recorder = service(tmp_path, rate=1.0), EventRecorder()
    config = TINY_CAPTURE.with_mode(CaptureMode.DATASET_ONLY)
    with pytest.raises(CaptureParityFailed):
        cache.get(
            CELL,
            tiny_source,
            TINY_FOLDS,
            DriftingPrepRecipe(),
            config,
            allow_cold=False,
            events=recorder,
        )
    names = [event.name for event in recorder.events]
    assert ev.CAPTURE_PARITY_FAILED in names and ev.CAPTURE_COMPLETED not in names
    (entry,) = cache.catalog.entries()
    assert entry.status is CaptureStatus.FAILED
    assert cache.artifacts.read_manifest(entry.key) is None


def test_parity_check_runs_at_the_configured_rate(tmp_path, tiny_source):
    config = TINY_CAPTURE.with_mode(CaptureMode.DATASET_ONLY)
    never = service(tmp_path / "never", rate=0.0)
    served = never.get(CELL, tiny_source, TINY_FOLDS, RECIPE, config, allow_cold=False)
    assert served.manifest.parity is None
    always, recorder = service(tmp_path / "always", rate=1.0), EventRecorder()
    served = always.get(
        CELL, tiny_source, TINY_FOLDS, RECIPE, config, allow_cold=False, events=recorder
    )
    assert served.manifest.parity is not None and served.manifest.parity.matches
    assert ev.CAPTURE_PARITY_CHECKED in [event.name for event in recorder.events]
    with pytest.raises(DiagInputError, match="parity_check_rate"):
        service(tmp_path / "bad", rate=1.5)


def test_only_modes_that_train_need_cold_approval(tmp_path, tiny_source):
    cache = service(tmp_path, rate=0.0)
    ds = TINY_CAPTURE.with_mode(CaptureMode.DATASET_ONLY)
    assert cache.get(CELL, tiny_source, TINY_FOLDS, RECIPE, ds, allow_cold=False).outcome is (
        CaptureOutcome.MISS
    )
    for mode in (CaptureMode.FULL_REPLAY, CaptureMode.SINGLE_FIT):
        with pytest.raises(ColdCaptureRequiresOperator):
            cache.get(
                CELL,
                tiny_source,
                TINY_FOLDS,
                RECIPE,
                TINY_CAPTURE.with_mode(mode),
                allow_cold=False,
            )


# --- the resolver ---------------------------------------------------------------------------

POLICY = CaptureModePolicy(version=7)
DATASET_ONLY_POLICY = CaptureModePolicy(version=8, default_mode=CaptureMode.DATASET_ONLY)
SEAM = SeamRecord(recipe_version=VERSION, decision="SEAM", reasons=[], evaluated_at=NOW)
NO_SEAM = SeamRecord(
    recipe_version=VERSION,
    decision=DESIGN_REVIEW_REQUIRED,
    reasons=["prep ran inside the loop"],
    evaluated_at=NOW,
)


def gate(passed: bool = True, *, folds: int = 2, version: str = VERSION) -> ReleaseGateRecord:
    return ReleaseGateRecord(
        recipe_version=version,
        passed=passed,
        folds=folds,
        hash_parity=passed,
        verdict_parity=passed,
        evaluated_at=NOW,
        reasons=[],
    )


def resolve(
    *,
    config=None,
    env=None,
    policy=POLICY,
    release=None,
    seam=SEAM,
    consumers=None,
):
    return resolve_capture_mode(
        config_mode=config,
        env_mode=env,
        policy=policy,
        release_gate=release,
        seam=seam,
        consumers={"s40": XY} if consumers is None else consumers,
        recipe_version=VERSION,
    )


def test_the_packaged_policy_defaults_to_full_replay():
    policy = load_policy()
    assert policy.default_mode is CaptureMode.FULL_REPLAY
    decision = resolve(policy=policy)
    assert decision.mode is CaptureMode.FULL_REPLAY and decision.source == "policy@v1"


@pytest.mark.parametrize(
    ("release", "why"),
    [
        (None, "never run"),
        (gate(passed=False), "failed"),
        (gate(version="reference-v1-other"), "not the current"),
        (gate(folds=1), "fewer than"),
    ],
)
def test_the_policy_refuses_a_dataset_only_default_until_the_latest_gate_passed(release, why):
    decision = resolve(policy=DATASET_ONLY_POLICY, release=release)
    assert decision.mode is CaptureMode.FULL_REPLAY
    assert decision.requested is CaptureMode.DATASET_ONLY
    assert "refused" in decision.reason and why in decision.reason


def test_a_passed_gate_lets_the_policy_serve_dataset_only_to_xy_only_consumers():
    decision = resolve(policy=DATASET_ONLY_POLICY, release=gate(), consumers={"s40": XY, "s23": XY})
    assert decision.mode is CaptureMode.DATASET_ONLY and not decision.explicit


@pytest.mark.parametrize("requirement", [TRIALS, UNKNOWN])
def test_a_default_dataset_only_is_forced_to_full_replay_for_other_consumers(requirement):
    decision = resolve(
        policy=DATASET_ONLY_POLICY, release=gate(), consumers={"s40": XY, "s99": requirement}
    )
    assert decision.mode is CaptureMode.FULL_REPLAY
    assert f"s99 ({requirement})" in decision.reason and "forced" in decision.reason


@pytest.mark.parametrize("mode", ["dataset_only", "single_fit"])
@pytest.mark.parametrize("requirement", [TRIALS, UNKNOWN])
def test_an_explicit_reduced_mode_for_other_consumers_is_an_error(mode, requirement):
    with pytest.raises(CaptureModeRefused) as refused:
        resolve(config=mode, consumers={"s40": XY, "s22a1": requirement})
    assert refused.value.code == CONSUMER_NEEDS_FULL_REPLAY
    assert "s22a1" in str(refused.value) and "full_replay" in refused.value.fix


def test_dataset_only_needs_a_seam_and_never_falls_back_to_single_fit():
    with pytest.raises(CaptureModeRefused) as unchecked:
        resolve(config="dataset_only", seam=None)
    assert unchecked.value.code == SEAM_NOT_CHECKED and "g_c4b_seam" in unchecked.value.fix
    stale = SEAM.model_copy(update={"recipe_version": "reference-v0-old"})
    with pytest.raises(CaptureModeRefused, match=SEAM_NOT_CHECKED):
        resolve(config="dataset_only", seam=stale)
    with pytest.raises(CaptureModeRefused) as review:
        resolve(config="dataset_only", seam=NO_SEAM)
    assert review.value.code == DESIGN_REVIEW_REQUIRED
    assert "prep ran inside the loop" in str(review.value)
    assert "not a fallback" in review.value.fix
    # single_fit does not depend on the seam: it is the explicit, reviewed alternative.
    assert resolve(config="single_fit", seam=NO_SEAM).mode is CaptureMode.SINGLE_FIT


def test_run_config_beats_the_environment_which_beats_the_policy():
    assert resolve(env="dataset_only").mode is CaptureMode.DATASET_ONLY
    assert resolve(env="dataset_only").source == "env:DIAG_CAPTURE_MODE"
    decision = resolve(config="full_replay", env="dataset_only")
    assert decision.mode is CaptureMode.FULL_REPLAY and decision.source == "run_config"
    assert resolve(env="  ").source == "policy@v7"


@pytest.mark.parametrize(
    ("config", "env", "what"), [("fast", None, "capture_mode"), (None, "x", "DIAG_CAPTURE_MODE")]
)
def test_an_unknown_mode_names_the_valid_ones(config, env, what):
    with pytest.raises(DiagInputError, match=f"{what}=.*full_replay, dataset_only, single_fit"):
        resolve(config=config, env=env)


def test_single_fit_can_never_be_a_default(tmp_path):
    path = tmp_path / "capture_mode.json"
    path.write_text(json.dumps({"version": 2, "default_mode": "single_fit"}))
    with pytest.raises(DiagInputError, match="explicit opt-in only"):
        load_policy(path)


# --- the release parity gate ----------------------------------------------------------------


def test_release_gate_passes_on_parity_and_fails_on_each_missing_leg(full, reduced):
    fold = compare_fold(
        full, reduced, judge_s40(full, None, TINY_PROBE), judge_s40(reduced, None, TINY_PROBE)
    )
    assert fold.hash_parity and fold.verdict_parity
    passed = release_parity_gate([fold, fold], recipe_version=VERSION, seam=SEAM, min_folds=2)
    assert passed.decision is ReleaseParityDecision.PASS and passed.record(NOW).passed

    too_few = release_parity_gate([fold], recipe_version=VERSION, seam=SEAM, min_folds=2)
    no_seam = release_parity_gate([fold, fold], recipe_version=VERSION, seam=NO_SEAM, min_folds=2)
    differ = fold.model_copy(update={"x_hash": (fold.x_hash[0], "0" * 32)})
    split = release_parity_gate([fold, differ], recipe_version=VERSION, seam=SEAM, min_folds=2)
    for report, why in (
        (too_few, "requires 2"),
        (no_seam, "The prep/train seam gate found no seam in recipe"),
        (split, "differ"),
    ):
        assert report.decision is ReleaseParityDecision.FAIL
        assert any(why in reason for reason in report.reasons)
        assert not report.record(NOW).passed
    assert not split.hash_parity and split.verdict_parity


def test_compare_fold_refuses_captures_of_the_wrong_modes(full, reduced):
    verdict = judge_s40(full, None, TINY_PROBE)
    with pytest.raises(ValueError, match="full_replay and a dataset_only"):
        compare_fold(reduced, full, verdict, verdict)


# --- the warm-read gate on the fixture set --------------------------------------------------


def _read(**changes) -> WarmRead:
    base = {
        "cell_ref": str(CELL),
        "first_outcome": "MISS",
        "first_s": 12.0,
        "warm_outcome": "HIT",
        "warm_s": 0.05,
        "first_content_hash": "abc",
        "warm_content_hash": "abc",
        "verified_on_load": True,
    }
    return WarmRead(**(base | changes))


def _replay(cell_ref: str = str(CELL), **cached) -> ColdReplay:
    fields = {"capture_key": "k", "x_hash": "x", "y_hash": "y", "trial_log_hash": "t"}
    fields |= {"content_hash": "c", "n_train": 100}
    comparisons = [
        HashComparison(field=name, cached=cached.get(name, value), replayed=value)
        for name, value in fields.items()
    ]
    return ColdReplay(cell_ref=cell_ref, capture_key="k", replay_s=3.0, comparisons=comparisons)


def test_gate4_passes_on_intact_warm_reads_and_reproduced_replays_and_names_each_failure():
    passed = warm_read_gate([_read(), _read(first_outcome="HIT")], [_replay()], budget_s=120)
    assert passed.decision is WarmReadDecision.PASS and passed.figures.cold_legs == 1
    assert passed.replayed_cells() == [str(CELL)] and passed.figures.replay_s == 3.0
    assert "| defi_top5/UNIUSDC/fold-3 | n_train | 100 | 100 | yes |" in passed.markdown()
    for changes, why in (
        ({"warm_outcome": "MISS"}, "not HIT"),
        ({"warm_s": 130.0}, "over 120"),
        ({"warm_content_hash": "def"}, "other content"),
        ({"verified_on_load": False}, "canonical hashes"),
    ):
        for replays in ([_replay()], None):  # a failed warm leg fails with or without approval
            report = warm_read_gate([_read(), _read(**changes)], replays, budget_s=120)
            assert report.decision is WarmReadDecision.FAIL
            assert any(why in reason for reason in report.reasons)
    assert warm_read_gate([], [_replay()], budget_s=120).decision is WarmReadDecision.FAIL


@pytest.mark.parametrize("field", REPLAYED_FIELDS)
def test_gate4_fails_naming_the_field_and_the_cell_a_cold_replay_did_not_reproduce(field):
    cached = 99 if field == "n_train" else "0123456789abcdef-cached"
    replays = [_replay(), _replay("defi_top5/UNIUSDC/fold-1", **{field: cached})]
    report = warm_read_gate([_read()], replays, budget_s=120)
    assert report.decision is WarmReadDecision.FAIL
    (reason,) = report.reasons
    assert reason.startswith(f"defi_top5/UNIUSDC/fold-1: the cold replay's {field} is ")
    assert "| NO |" in report.markdown()


def test_gate4_without_approval_is_insufficient_data_and_says_how_to_approve():
    report = warm_read_gate([_read()], None, budget_s=120)
    assert report.decision is WarmReadDecision.INSUFFICIENT_DATA
    assert not report.figures.replay_approved and report.replayed_cells() == []
    assert "Reproducibility is not proven" in report.reasons[0]
    assert "diag/allow_cold_capture=true" in report.reasons[0]
    # Approved yet nothing replayed proves nothing either.
    assert warm_read_gate([_read()], [], budget_s=120).decision is WarmReadDecision.FAIL


def test_a_cold_replay_reproduces_a_deterministic_capture_and_catches_a_drifting_prep(
    tiny_source, full
):
    config = TINY_CAPTURE.with_mode(CaptureMode.FULL_REPLAY)
    same = replay_cold(full.manifest, tiny_source, TINY_FOLDS, RECIPE, config)
    assert same.cell_ref == str(CELL) and same.mismatches() == [] and same.replay_s > 0
    assert [c.field for c in same.comparisons] == list(REPLAYED_FIELDS)

    drifting = DriftingPrepRecipe()
    cached = replay(tiny_source, CaptureMode.FULL_REPLAY, drifting)
    differ = replay_cold(cached.manifest, tiny_source, TINY_FOLDS, drifting, config)
    assert {"x_hash", "content_hash"} <= {c.field for c in differ.mismatches()}
    assert "capture_key" not in {c.field for c in differ.mismatches()}  # same inputs
