"""The pictures of the diagnostics' results: drawn from the stored data, small, shown inline."""

import base64

import numpy as np
import pytest
from matplotlib.patches import Rectangle
from pydantic import BaseModel

from diag_assets.audit.diagnostics import picture_metadata
from diag_assets.core.capture.replay import prepare_cell, replay_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.anchor import run_anchor
from diag_assets.core.diagnostics.builtins import ANCHOR, Calibration, SignalProbe, TrialSpread
from diag_assets.core.diagnostics.calibration import run_s27, s27_without_anchor
from diag_assets.core.diagnostics.certification import Certification
from diag_assets.core.diagnostics.consumers import CaptureRequirement
from diag_assets.core.diagnostics.plugin import Diagnostic
from diag_assets.core.diagnostics.probe import inconclusive_s40, judge_s40
from diag_assets.core.diagnostics.verdicts import S40Verdict, Verdict
from diag_assets.core.figures import MAX_FIGURE_BYTES, new_figure, png
from diag_assets.core.figures.diagnostics import (
    BEST_ITER_GID,
    COUNTS_GID,
    NULL_GID,
    OBSERVED_GID,
    RELIABILITY_GID,
    learning_curve,
    null_edges,
    permutation_null,
)
from diag_assets.core.gates.anchor_cost import AnchorCostFigures
from diag_assets.core.gates.consumer_map import ConsumerMapFigures
from diag_assets.core.gates.report import numeric_fields
from diag_assets.core.gates.warm_reads import WarmReadFigures
from diag_assets.core.names import (
    LEARNING_CURVE_IMAGE,
    PERMUTATION_NULL_IMAGE,
    RELIABILITY_IMAGE,
    gate_figure_key,
)
from diag_assets.core.recipe.reference import ReferenceRecipe
from diag_assets.metadata_values import image_metadata, numeric_figure_metadata
from tests.conftest import TINY_CAPTURE, TINY_FOLDS, TINY_PROBE

RECIPE = ReferenceRecipe()
IMAGE_PREFIX = "data:image/png;base64,"


@pytest.fixture(scope="module")
def captured(tiny_source):
    cell = CellRef.parse("defi_top5/UNIUSDC/fold-3")
    return replay_cell(prepare_cell(cell, tiny_source, TINY_FOLDS, RECIPE, TINY_CAPTURE), RECIPE)


@pytest.fixture(scope="module")
def anchor(captured):
    return run_anchor(captured)


def _lines(figure, gid):
    return [line for ax in figure.axes for line in ax.get_lines() if line.get_gid() == gid]


def _bars(figure, gid) -> list[Rectangle]:
    return [
        patch
        for ax in figure.axes
        for patch in ax.patches
        if isinstance(patch, Rectangle) and patch.get_gid() == gid
    ]


def _x(line) -> list[float]:
    return np.asarray(line.get_xdata()).tolist()


def _y(line) -> list[float]:
    return np.asarray(line.get_ydata()).tolist()


def _png_of(markdown: str, name: str) -> bytes:
    prefix = f"![{name}]({IMAGE_PREFIX}"
    assert markdown.startswith(prefix) and markdown.endswith(")")
    return base64.b64decode(markdown[len(prefix) : -1])


def test_the_learning_curve_is_the_anchors_curve_with_best_iter_marked(anchor):
    figure = ANCHOR.pictures(anchor)[LEARNING_CURVE_IMAGE]
    ax = figure.axes[0]
    curve = [line for line in ax.get_lines() if len(_x(line)) == anchor.n_rounds]
    assert len(curve) == 1
    assert _y(curve[0]) == anchor.curve
    assert _x(curve[0]) == list(range(1, anchor.n_rounds + 1))
    (marked,) = _lines(figure, BEST_ITER_GID)
    assert _x(marked) == [anchor.best_iter]
    assert _y(marked) == [anchor.curve[anchor.best_iter - 1]]
    assert ax.get_title() and ax.get_xlabel() == "boosting round" and ax.get_ylabel()


def test_a_best_iter_off_the_curve_is_refused():
    with pytest.raises(ValueError, match="best_iter 4 is not a round of the 3-round curve"):
        learning_curve([0.7, 0.6, 0.65], 4, cell_ref="u/AB/fold-1")


def test_the_probe_stores_the_null_its_p_value_was_read_off(captured, anchor):
    probe = judge_s40(captured, anchor, TINY_PROBE).probe
    assert probe is not None and probe.permutation_statistics is not None
    null = probe.permutation_statistics
    assert len(null) == probe.permutations_run <= probe.max_permutations
    assert sum(value >= probe.observed for value in null) == probe.exceedances
    assert np.mean(null) == pytest.approx(probe.permutation_mean, abs=1e-6)
    assert max(null) == pytest.approx(probe.permutation_max, abs=1e-6)


def test_the_null_histogram_counts_the_stored_null_and_marks_the_observed(captured, anchor):
    verdict = judge_s40(captured, anchor, TINY_PROBE)
    probe = verdict.probe
    assert probe is not None and probe.permutation_statistics is not None
    figure = SignalProbe().pictures(verdict)[PERMUTATION_NULL_IMAGE]
    edges = null_edges(probe.permutation_statistics)
    heights = [bar.get_height() for bar in _bars(figure, NULL_GID)]
    assert heights == list(np.histogram(probe.permutation_statistics, bins=edges)[0])
    assert sum(heights) == len(probe.permutation_statistics)
    (observed,) = _lines(figure, OBSERVED_GID)
    assert _x(observed) == [probe.observed, probe.observed]
    assert f"p = {probe.p_value:.3g}" in figure.axes[0].get_title()
    assert probe.statistic in figure.axes[0].get_xlabel()


def test_a_null_of_99_statistics_is_counted_whole():
    null = list(np.random.default_rng(3).normal(0.5, 0.02, 99))
    figure = permutation_null(null, 0.58, statistic="validation_auc", p_value=0.01, cell_ref="c")
    heights = [bar.get_height() for bar in _bars(figure, NULL_GID)]
    assert heights == list(np.histogram(null, bins=null_edges(null))[0]) and sum(heights) == 99
    assert len(png(figure)) <= MAX_FIGURE_BYTES


def test_a_verdict_stored_before_the_null_was_kept_reads_and_has_no_picture(captured, anchor):
    stored = judge_s40(captured, anchor, TINY_PROBE).model_dump(mode="json")
    del stored["probe"]["permutation_statistics"]
    old = S40Verdict.model_validate(stored)
    assert old.probe is not None and old.probe.permutation_statistics is None
    assert SignalProbe().pictures(old) == {}
    assert picture_metadata(SignalProbe(), old, {}) == {}
    assert SignalProbe().pictures(inconclusive_s40("u/AB/fold-1", "no capture")) == {}


def test_the_reliability_diagram_is_the_verdicts_bins(captured, anchor):
    verdict = run_s27(captured, anchor=anchor)
    assert verdict.figures is not None
    bins = verdict.figures.reliability
    figure = Calibration().pictures(verdict)[RELIABILITY_IMAGE]
    (points,) = _lines(figure, RELIABILITY_GID)
    filled = [b for b in bins if b.count]
    assert _x(points) == [b.mean_predicted for b in filled]
    assert _y(points) == [b.observed_frequency for b in filled]
    counts = _bars(figure, COUNTS_GID)
    assert [bar.get_height() for bar in counts] == [b.count for b in bins]
    assert [bar.get_x() for bar in counts] == [b.lower for b in bins]
    diagonal = [line for line in figure.axes[0].get_lines() if _x(line) == [0, 1]]
    assert diagonal and _y(diagonal[0]) == [0, 1]
    assert f"ECE {verdict.figures.ece:.4f}" in figure.axes[0].get_title()
    assert Calibration().pictures(s27_without_anchor(captured)) == {}


def test_every_built_in_picture_is_a_markdown_image_within_budget(captured, anchor):
    offered = [
        (ANCHOR, anchor),
        (SignalProbe(), judge_s40(captured, anchor, TINY_PROBE)),
        (Calibration(), run_s27(captured, anchor=anchor)),
    ]
    names = []
    for diagnostic, result in offered:
        for name, value in picture_metadata(diagnostic, result, {}).items():
            data = _png_of(value.value, name)
            assert data.startswith(b"\x89PNG") and len(data) <= MAX_FIGURE_BYTES
            names.append(name)
    assert names == [LEARNING_CURVE_IMAGE, PERMUTATION_NULL_IMAGE, RELIABILITY_IMAGE]


def test_a_figure_over_budget_says_so_in_its_place():
    figure = new_figure(30, 30)
    figure.add_subplot().imshow(np.random.default_rng(0).random((1500, 1500, 3)))
    (value,) = image_metadata({"noise": figure}).values()
    assert isinstance(value.value, str)
    assert "over the 100000-byte budget" in value.value and IMAGE_PREFIX not in value.value


class _Offers(Verdict):
    """A team's verdict with a series of its own."""

    series: list[float]


class _Pictured(Diagnostic):
    name = "pictured"
    requirement = CaptureRequirement.XY_ONLY
    result_model = _Offers
    picture_name = "series_plot"

    def run(self, view, settings, anchor) -> BaseModel:
        raise NotImplementedError

    def pictures(self, result):
        assert isinstance(result, _Offers)
        figure = new_figure()
        ax = figure.add_subplot()
        ax.plot(result.series, gid="series")
        ax.set_title("series")
        return {self.picture_name: figure}


def _offers() -> _Offers:
    return _Offers(
        cell_ref="u/AB/fold-1",
        certification=Certification.CERTIFIED,
        certification_reason="ok",
        capture_key="k",
        capture_content_hash="h",
        elapsed_s=0.0,
        series=[1.0, 3.0, 2.0],
    )


def test_a_plug_in_gets_its_pictures_shown_and_a_diagnostic_offers_none_by_default():
    images = picture_metadata(_Pictured(), _offers(), {"finding": "x"})
    assert list(images) == ["series_plot"]
    assert len(_png_of(images["series_plot"].value, "series_plot")) <= MAX_FIGURE_BYTES
    assert TrialSpread().pictures(_offers()) == {}  # the base class: no pictures


@pytest.mark.parametrize(
    ("name", "why"), [("finding", "taken by its metadata"), ("Bad Name", "not a short identifier")]
)
def test_a_plug_in_picture_name_must_be_a_free_identifier(name, why):
    diagnostic = _Pictured()
    diagnostic.picture_name = name
    with pytest.raises(TypeError, match=why):
        picture_metadata(diagnostic, _offers(), {"finding": "x"})


def test_numeric_fields_are_the_numbers_of_a_figures_model():
    assert numeric_fields(ConsumerMapFigures) == {
        "diagnostics": int,
        "xy_only": int,
        "trial_dynamics": int,
        "unknown": int,
    }
    # A bool is not plotted; float | None is a float field.
    fields = numeric_fields(WarmReadFigures)
    assert "replay_approved" not in fields and fields["max_warm_s"] is float


def test_every_numeric_gate_figure_is_an_entry_of_its_own():
    values: dict[str, float | int | None] = dict.fromkeys(AnchorCostFigures.model_fields)
    values |= {"n": 12, "untimed": 0, "rows_n": 12, "s40_n": 3, "p50_s": 1.5}
    figures = AnchorCostFigures.model_validate(values)
    entries = numeric_figure_metadata(figures)
    assert set(entries) == {gate_figure_key(f) for f in AnchorCostFigures.model_fields}
    assert entries["figures.n"].value == 12 and isinstance(entries["figures.n"].value, int)
    assert entries["figures.p50_s"].value == 1.5
    assert entries["figures.p95_s"].value is None
