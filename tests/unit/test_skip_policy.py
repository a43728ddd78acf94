import json

import pytest

from diag_assets.core.audit.anchor_skip import load_policy, resolve_skip_s22a1
from diag_assets.core.diagnostics.consumers import (
    DIAGNOSTIC_CAPTURE_REQUIREMENTS,
    CaptureRequirement,
    requirement_of,
)
from diag_assets.core.errors import DiagInputError

POLICY = load_policy()


def resolve(config=None, tag=None, kind=None, policy=POLICY):
    return resolve_skip_s22a1(
        config_override=config, tag_override=tag, audit_kind=kind, policy=policy
    )


@pytest.mark.parametrize("kind", ["s22", "s23", "s24", "s25", "s26", "s27", "s28"])
def test_reproduction_missions_keep_the_anchor_by_default(kind):
    decision = resolve(kind=kind)
    assert decision.skip is False and decision.source == f"policy:{kind}@v1"


def test_light_s40_audits_skip_the_anchor_by_default():
    decision = resolve(kind="light_s40")
    assert decision.skip is True and decision.source == "policy:light_s40@v1"


def test_no_override_and_no_kind_keeps_the_anchor():
    decision = resolve()
    assert decision.skip is False and decision.source == "default"


def test_run_config_override_wins_over_the_policy():
    assert resolve(config=False, kind="light_s40").skip is False
    assert resolve(config=True, kind="s22").source == "run_config"


def test_run_tag_override_wins_over_the_policy():
    decision = resolve(tag="TRUE", kind="s24")
    assert decision.skip is True and decision.source == "run_tag"


def test_conflicting_overrides_are_refused():
    with pytest.raises(DiagInputError, match="make them agree"):
        resolve(config=True, tag="false")


def test_bad_tag_value_names_the_fix():
    with pytest.raises(DiagInputError, match="diag/skip_s22a1='yes'.*true or false"):
        resolve(tag="yes")


def test_unknown_audit_kind_lists_the_known_ones():
    with pytest.raises(DiagInputError, match="light_s40"):
        resolve(kind="s99")


def test_policy_file_is_versioned_and_a_malformed_one_names_the_fix(tmp_path):
    assert POLICY.version == 1
    bad = tmp_path / "policy.json"
    bad.write_text(json.dumps({"audit_kinds": {"s22": "maybe"}}))
    with pytest.raises(DiagInputError, match="malformed"):
        load_policy(bad)
    custom = tmp_path / "custom.json"
    custom.write_text(json.dumps({"version": 7, "audit_kinds": {"quick": True}}))
    assert resolve(kind="quick", policy=load_policy(custom)).source == "policy:quick@v7"


def test_reference_suite_is_registered_with_its_requirements():
    import diag_assets.core.diagnostics  # noqa: F401 - registers every diagnostic

    expected = {
        "s22a1": CaptureRequirement.TRIAL_DYNAMICS,
        "s22a2": CaptureRequirement.TRIAL_DYNAMICS,
        "s40": CaptureRequirement.XY_ONLY,
        "s23": CaptureRequirement.XY_ONLY,
        "s27": CaptureRequirement.TRIAL_DYNAMICS,
    }
    assert {name: DIAGNOSTIC_CAPTURE_REQUIREMENTS[name] for name in expected} == expected
    assert requirement_of("s26") is CaptureRequirement.UNKNOWN
