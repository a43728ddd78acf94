"""Bad audit input fails when the code location loads, naming the file, the field and the fix."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from tests.component.conftest import load_project, write_project

SMALL = """
type: diag_assets.component.AuditComponent
attributes:
  prefix: {prefix}
  market_data: {{kind: synthetic, universe: tiny, symbols: [AAAUSDC], n_bars: 3200}}
  folds: {{n_folds: 2, min_train_bars: 1500, validation_bars: 300}}
{extra}
"""


def audit_yaml(prefix: str = "team", extra: str = "") -> str:
    return SMALL.format(prefix=prefix, extra=textwrap.indent(extra.strip(), "  "))


def load_error(project_dir: Path, audits: dict[str, str]) -> str:
    write_project(project_dir, audits)
    with pytest.raises(Exception) as raised:
        load_project(project_dir)
    # Dagster wraps the component's error; the whole chain is what an operator reads.
    chain, error = [], raised.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(chain)


def test_a_valid_project_loads(project_dir):
    write_project(project_dir, {"team": audit_yaml()})
    defs = load_project(project_dir)
    assert defs.resolve_asset_graph().has(dg.AssetKey(["team", "captured_fold"]))


def test_a_recipe_import_path_that_does_not_resolve(project_dir):
    message = load_error(project_dir, {"a": audit_yaml(extra="recipe: team_pkg.nowhere:Recipe")})
    assert "defs.yaml" in message
    assert "team_pkg.nowhere" in message
    assert "install the package" in message


def test_a_recipe_name_nobody_registers(project_dir):
    message = load_error(project_dir, {"a": audit_yaml(extra="recipe: momentum")})
    assert "diag_harness.recipes" in message and "reference" in message


def test_a_recipe_missing_a_method_or_declaring_an_unknown_task(project_dir):
    package = project_dir / "bad_recipes.py"
    package.write_text(
        textwrap.dedent(
            """
            class NoTrials:
                name, version, task = "no_trials", "1", "binary"
                def prep(self, bars, fold): ...
                def parameters(self): return {}

            class Vague:
                name, version, task = "vague", "1", "binary"
                lookback_bars = "a week"
                def prep(self, bars, fold): ...
                def run_trials(self, data, settings, observer=None): ...
                def parameters(self): return {}

            class Ranking:
                name, version, task = "ranking", "1", "ranking"
                lookback_bars = 0
                def prep(self, bars, fold): ...
                def run_trials(self, data, settings, observer=None): ...
                def parameters(self): return {}
            """
        )
    )
    missing = load_error(project_dir, {"a": audit_yaml(extra="recipe: bad_recipes:NoTrials")})
    assert "has no run_trials, lookback_bars" in missing and "Recipe protocol" in missing
    (project_dir / "proj").rename(project_dir / "proj_old")
    task = load_error(project_dir, {"a": audit_yaml(extra="recipe: bad_recipes:Ranking")})
    assert "'ranking'" in task and "binary, multiclass, regression" in task
    (project_dir / "proj_old").rename(project_dir / "proj_older")
    (project_dir / "proj").rename(project_dir / "proj_old")
    vague = load_error(project_dir, {"a": audit_yaml(extra="recipe: bad_recipes:Vague")})
    assert "lookback_bars='a week'" in vague and "declare lookback_bars" in vague


def test_recipe_params_the_recipe_refuses(project_dir):
    message = load_error(project_dir, {"a": audit_yaml(extra="recipe_params: {dead_zone: 0.3}")})
    assert "recipe_params" in message and "dead_zone_sigma" in message


def test_a_diagnostic_without_a_capture_requirement(project_dir):
    (project_dir / "bad_checks.py").write_text(
        textwrap.dedent(
            """
            from pydantic import BaseModel
            from diag_assets.core.diagnostics.plugin import Diagnostic

            class Result(BaseModel):
                value: float

            class Undeclared(Diagnostic):
                name = "undeclared"
                result_model = Result
                def run(self, view, settings, anchor):
                    return Result(value=0.0)
            """
        )
    )
    message = load_error(
        project_dir, {"a": audit_yaml(extra="diagnostics: [s40, bad_checks:Undeclared]")}
    )
    assert "undeclared" in message and "declares no capture requirement" in message
    assert "CaptureRequirement.XY_ONLY" in message


def test_a_diagnostic_named_like_an_asset_of_the_audit(project_dir):
    (project_dir / "clash.py").write_text(
        textwrap.dedent(
            """
            from diag_assets.core.diagnostics.consumers import CaptureRequirement
            from diag_assets.core.diagnostics.plugin import Diagnostic
            from diag_assets.core.diagnostics.verdicts import Verdict

            class Report(Diagnostic):
                name = "audit_report"
                requirement = CaptureRequirement.XY_ONLY
                result_model = Verdict
                def run(self, view, settings, anchor): ...
            """
        )
    )
    message = load_error(project_dir, {"a": audit_yaml(extra="diagnostics: [clash:Report]")})
    assert "audit_report" in message and "rename the plug-in diagnostic" in message


def test_an_anchor_reader_without_the_anchor(project_dir):
    message = load_error(project_dir, {"a": audit_yaml(extra="diagnostics: [s40, s23]")})
    assert "s22a1" in message and "add s22a1" in message


def test_two_audits_with_the_same_prefix(project_dir):
    message = load_error(project_dir, {"one": audit_yaml("shared"), "two": audit_yaml("shared")})
    assert "attributes.prefix 'shared'" in message
    assert "its own attributes.prefix" in message


def test_a_yaml_field_of_the_wrong_type(project_dir):
    text = audit_yaml().replace("n_bars: 3200", "n_bars: many")
    message = load_error(project_dir, {"a": text})
    assert "n_bars" in message
    assert "defs.yaml" in message


def test_an_unknown_field(project_dir):
    message = load_error(project_dir, {"a": audit_yaml(extra="recipes: reference")})
    assert "recipes" in message


@pytest.mark.slow
def test_dagster_definitions_validate_refuses_the_project_before_anything_runs(project_dir):
    write_project(project_dir, {"a": audit_yaml(extra="recipe: team_pkg.nowhere:Recipe")})
    (project_dir / "proj" / "definitions.py").write_text(
        "from pathlib import Path\nimport dagster as dg\n\n\n@dg.definitions\ndef defs():\n"
        "    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)\n"
    )
    (project_dir / "dagster_home").mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": f"{project_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        # Its own instance folder: the one `make test` exports may not exist on a fresh clone.
        "DAGSTER_HOME": str(project_dir / "dagster_home"),
    }
    validate = subprocess.run(
        [
            Path(sys.executable).parent / "dagster",
            "definitions",
            "validate",
            "-m",
            "proj.definitions",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=project_dir,
        timeout=300,
    )
    output = validate.stdout + validate.stderr
    assert validate.returncode != 0, output
    assert "team_pkg.nowhere" in output and "Fix:" in output
