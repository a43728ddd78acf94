"""A multiclass fine-tune, audited through the component like any team's recipe."""

import sys

import dagster as dg
import pytest

from diag_assets.audit.run_results import materialized_metadata
from diag_assets.component import AuditComponent
from diag_assets.component.location import build_location
from diag_assets.core.recipe.code_version import forget_recipe_code_digests
from tests.component.conftest import audit_cell

CELL = dg.MultiPartitionKey({"symbol": "AAAUSDC", "fold": "fold-1"})

RECIPE = '''
import numpy as np

from diag_assets.core.recipe.prep import FoldData, PrepSettings
from diag_assets.core.recipe.reference import ReferenceRecipe
from diag_assets.core.recipe.tasks import TaskKind


class Direction(ReferenceRecipe):
    """Three classes: down, flat or up, by the terciles of the training rows' 12-bar return."""

    name = "direction"
    task = TaskKind.MULTICLASS

    def __init__(self):
        super().__init__(PrepSettings(dead_zone_sigma=0.0))

    def parameters(self):
        return {}

    def prep(self, bars, fold):
        data = super().prep(bars, fold)
        close = np.log(bars["close"].to_numpy(dtype=np.float64))
        where = bars["date"].searchsorted(data.y["open_time"])
        forward = close[where + fold.label_horizon] - close[where]
        cuts = np.quantile(forward[: data.n_train], [1 / 3, 2 / 3])
        y = data.y.assign(label=np.digitize(forward, cuts).astype(np.int8))
        return FoldData(X=data.X, y=y, n_train=data.n_train, feature_names=data.feature_names)
'''


@pytest.fixture
def direction(tmp_path):
    root = tmp_path / "src"
    (root / "team_direction").mkdir(parents=True)
    (root / "team_direction" / "__init__.py").write_text("")
    (root / "team_direction" / "recipe.py").write_text(RECIPE)
    sys.path.insert(0, str(root))
    yield "team_direction.recipe:Direction"
    sys.path.remove(str(root))
    for name in [n for n in sys.modules if n.startswith("team_direction")]:
        del sys.modules[name]
    forget_recipe_code_digests()


@pytest.mark.slow
def test_a_multiclass_recipe_is_audited_with_its_own_objective_and_metric(direction, storage):
    component = AuditComponent.model_validate(
        {
            "prefix": "direction",
            "market_data": {"universe": "tiny", "symbols": ["AAAUSDC"], "n_bars": 3200},
            "folds": {"n_folds": 3, "min_train_bars": 1500, "validation_bars": 300},
            "recipe": direction,
            "trials": {"n_trials": 3, "max_rounds": 40},
        }
    )
    defs = build_location([component.resolve()])
    with dg.instance_for_test() as instance:
        result = audit_cell(defs, instance, "direction", ["AAAUSDC"], CELL)
    assert result.success

    def metadata(asset: str) -> dict:
        return materialized_metadata(result, f"direction/{asset}")

    assert metadata("captured_fold")["task"] == "multiclass"
    assert metadata("s22a1_anchor")["curve"].keys() == {"validation_multi_logloss"}
    assert metadata("s40_verdict")["statistic"] == "auc_ovr_macro"
    assert 0.0 <= metadata("s40_verdict")["observed_auc_ovr_macro"] <= 1.0
    assert metadata("s22a2_spread")["certification"] == "CERTIFIED"
    assert metadata("s27_calibration")["certification"] == "NOT_APPLICABLE"
    assert metadata("audit_report")["certification"] == "CERTIFIED"
