"""A team's recipe through the component: its code version, and a recipe that fails."""

import sys
from pathlib import Path

import dagster as dg
import pytest

from diag_assets.component import AuditComponent
from diag_assets.component.location import build_location
from diag_assets.core.recipe.code_version import forget_recipe_code_digests
from tests.component.conftest import APPROVED

CELL = dg.MultiPartitionKey({"symbol": "AAAUSDC", "fold": "fold-0"})
ONE_CAPTURE = {"ops": {"team__captured_fold": {"config": {"n_trials": 2, "max_rounds": 30}}}}

RECIPE = """
from diag_assets.core.recipe.reference import ReferenceRecipe
from teamfit.features import scale


class TeamRecipe(ReferenceRecipe):
    name = "teamfit"

    def prep(self, bars, fold):
        data = super().prep(bars, fold)
        data.X.loc[:, :] = scale(data.X)
        return data


class FailingRecipe(ReferenceRecipe):
    name = "failing"

    def run_trials(self, data, settings, observer=None):
        raise RuntimeError("the team's trial loop broke on purpose")
"""


@pytest.fixture
def teamfit(tmp_path):
    """A team's recipe package: a recipe module and the helper module it imports."""
    root = tmp_path / "team_src"
    (root / "teamfit").mkdir(parents=True)
    (root / "teamfit" / "__init__.py").write_text("")
    (root / "teamfit" / "recipe.py").write_text(RECIPE)
    helper = root / "teamfit" / "features.py"
    helper.write_text("def scale(x):\n    return x * 1.0\n")
    sys.path.insert(0, str(root))
    forget_recipe_code_digests()
    yield helper
    sys.path.remove(str(root))
    for name in [n for n in sys.modules if n == "teamfit" or n.startswith("teamfit.")]:
        del sys.modules[name]
    forget_recipe_code_digests()


def team_audit(recipe: str) -> dg.Definitions:
    component = AuditComponent.model_validate(
        {
            "prefix": "team",
            "market_data": {"universe": "tiny", "symbols": ["AAAUSDC"], "n_bars": 3200},
            "folds": {"n_folds": 2, "min_train_bars": 1500, "validation_bars": 300},
            "recipe": recipe,
            "diagnostics": ["s23"],
        }
    )
    return build_location([component.resolve()])


def capture(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(["team", "captured_fold"])],
        partition_key=CELL,
        run_config=ONE_CAPTURE,
        tags=APPROVED,
        raise_on_error=False,
    )


def served(result: dg.ExecuteInProcessResult) -> str:
    (event,) = result.get_asset_materialization_events()
    return event.materialization.metadata["cache"].value  # type: ignore[return-value]


def code_version(defs: dg.Definitions) -> str | None:
    return defs.resolve_asset_graph().get(dg.AssetKey(["team", "captured_fold"])).code_version


def test_editing_a_helper_module_of_the_recipe_moves_the_capture_and_its_code_version(
    teamfit, storage
):
    before = team_audit("teamfit.recipe:TeamRecipe")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("team__symbols", ["AAAUSDC"])
        assert served(capture(before, instance)) == "MISS"
        assert served(capture(before, instance)) == "HIT"

        # An edit of the helper the recipe imports, not of the recipe's own module.
        teamfit.write_text(
            "def scale(x):\n    # scaled the same, written differently\n    return x * 1.0\n"
        )
        forget_recipe_code_digests()
        after = team_audit("teamfit.recipe:TeamRecipe")
        assert code_version(after) != code_version(before)
        assert str(code_version(after)).startswith("teamfit-v1-")
        # The old capture is not served as current: the edited recipe captures anew.
        assert served(capture(after, instance)) == "MISS"


def test_a_recipe_that_raises_fails_its_capture_only_and_stores_nothing(teamfit, storage):
    defs = team_audit("teamfit.recipe:FailingRecipe")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("team__symbols", ["AAAUSDC"])
        result = capture(defs, instance)
        assert not result.success
        (failure,) = [event for event in result.all_events if event.is_step_failure]
        error = failure.step_failure_data.error
        text = str(error.message) + "".join(error.stack) + str(error.cause and error.cause.stack)
        assert "the team's trial loop broke on purpose" in (
            str(error.message) + str(error.cause and error.cause.message)
        )
        assert "teamfit" in text and "run_trials" in text
    # No manifest, no result pointer: nothing a later run could read as a capture.
    assert not list(Path(storage).rglob("manifest.json"))
    assert not list(Path(storage).rglob("captured_fold/*.json"))
