from datetime import UTC, datetime

import numpy as np
import pytest
from matplotlib.patches import Rectangle
from pydantic import ValidationError

from diag_assets.core.capture.outcomes import CaptureOutcome
from diag_assets.core.errors import DiagInputError
from diag_assets.core.figures import MAX_FIGURE_BYTES, png
from diag_assets.core.figures.history import (
    CELLS_GID,
    ELAPSED_GID,
    MAX_CELL_BARS,
    NO_DATA,
    audits_per_cell,
    bin_labels,
    elapsed_edges,
    elapsed_histogram,
)
from diag_assets.core.gates.history import (
    HistoryEvent,
    events_from_materialization,
    read_jsonl,
)
from diag_assets.core.metadata import AnchorMetadata, CaptureMetadata
from tests.fixtures.history import write_jsonl

T0 = datetime(2026, 5, 25, 10, tzinfo=UTC)


def test_jsonl_round_trip(tmp_path):
    events = [
        HistoryEvent("s22a1_anchor", "defi_top5/UNIUSDC/fold-3", T0, 234.0, {"rows": 13061}),
        HistoryEvent("s40_verdict", "defi_top5/OPUSDC/fold-3", T0, None, {}),
    ]
    path = tmp_path / "history.jsonl"
    write_jsonl(events, path)
    assert read_jsonl(path) == events


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "history.jsonl:2 is not JSON"),
        ('{"event": "x", "cell_ref": "c"}', "lacks timestamp"),
        ('{"event": "x", "cell_ref": "c", "timestamp": "yesterday"}', "not ISO 8601"),
        (
            '{"event": "x", "cell_ref": "c", "timestamp": "2026-01-01", "elapsed_s": "5s"}',
            "not a number",
        ),
    ],
)
def test_bad_jsonl_lines_name_the_line_and_the_fix(tmp_path, line, message):
    path = tmp_path / "history.jsonl"
    path.write_text(
        '{"event": "x", "cell_ref": "c", "timestamp": "2026-01-01T00:00:00Z"}\n' + line + "\n"
    )
    with pytest.raises(DiagInputError, match=message) as error:
        read_jsonl(path)
    assert "Fix:" in str(error.value)


def test_naive_timestamps_are_utc(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"event": "x", "cell_ref": "c", "timestamp": "2026-01-01T05:00:00"}\n')
    assert read_jsonl(path)[0].timestamp == datetime(2026, 1, 1, 5, tzinfo=UTC)


def test_materializations_map_to_history_events():
    anchor = events_from_materialization(
        "s22a1_anchor",
        T0,
        {"cell_ref": "u/AB/fold-1", "elapsed_s": 3.5, "rows": 100, "best_iter": 7},
    )
    assert [(e.event, e.elapsed_s, e.fields["rows"]) for e in anchor] == [
        ("s22a1_anchor", 3.5, 100)
    ]
    cold = events_from_materialization(
        "captured_fold",
        T0,
        {
            "cell_ref": "u/AB/fold-1",
            "cache": "MISS",
            "capture_elapsed_s": 9.0,
            "bytes": 2048,
            "capture_events": [{"event": "capture_drift_checked", "drifted": True}],
        },
    )
    assert [(e.event, e.elapsed_s) for e in cold] == [
        ("capture", 9.0),
        ("capture_drift_checked", None),
    ]
    assert cold[1].fields == {"drifted": True}
    warm = events_from_materialization(
        "captured_fold", T0, {"cell_ref": "u/AB/fold-1", "cache": "HIT"}
    )
    assert warm == []
    verdict = events_from_materialization(
        "s40_verdict", T0, {"verdict": {"cell_ref": "u/AB/fold-1"}, "elapsed_s": 1.0}
    )
    assert verdict[0].cell_ref == "u/AB/fold-1"


@pytest.mark.parametrize(
    ("asset", "metadata"),
    [
        ("s22a1_anchor", {"elapsed_s": 3.5, "rows": 100}),
        ("s22a1_anchor", {"cell_ref": "", "elapsed_s": 3.5}),
        ("captured_fold", {"cache": "MISS", "capture_elapsed_s": 9.0}),
        ("s40_verdict", {"elapsed_s": 1.0, "certification": "CERTIFIED"}),
        ("s40_verdict", {"verdict": {}, "elapsed_s": 1.0}),
        ("audit_report", {"cell_ref": "u/AB/fold-1"}),
    ],
)
def test_materializations_that_name_no_cell_or_no_gate_event_are_ignored(asset, metadata):
    assert events_from_materialization(asset, T0, metadata) == []


def test_older_materializations_that_lack_a_field_read_it_as_none():
    (anchor,) = events_from_materialization("s22a1_anchor", T0, {"cell_ref": "u/AB/fold-1"})
    assert (anchor.elapsed_s, anchor.fields) == (None, {"rows": None, "best_iter": None})
    (capture,) = events_from_materialization(
        "captured_fold", T0, {"cell_ref": "u/AB/fold-1", "cache": "MISS"}
    )
    assert (capture.event, capture.elapsed_s, capture.fields) == ("capture", None, {"bytes": None})
    (drift,) = events_from_materialization(
        "captured_fold",
        T0,
        {"cell_ref": "u/AB/fold-1", "capture_events": [{"event": "capture_drift_checked"}]},
    )
    assert (drift.event, drift.fields) == ("capture_drift_checked", {"drifted": False})
    (verdict,) = events_from_materialization(
        "s40_verdict", T0, {"verdict": {"cell_ref": "u/AB/fold-1"}}
    )
    assert (verdict.elapsed_s, verdict.fields) == (None, {"certification": None})


def test_a_recorded_value_of_the_wrong_type_reads_as_unknown_and_keeps_the_event():
    (anchor,) = events_from_materialization(
        "s22a1_anchor",
        T0,
        {"cell_ref": "u/AB/fold-1", "elapsed_s": "slow", "rows": "many", "best_iter": 7},
    )
    assert (anchor.elapsed_s, anchor.fields) == (None, {"rows": None, "best_iter": 7})
    # An unknown cache outcome is no cold capture; capture events that are not a list of
    # events stand for no drift check.
    odd = events_from_materialization(
        "captured_fold",
        T0,
        {"cell_ref": "u/AB/fold-1", "cache": "COLD", "capture_events": "capture_drift_checked"},
    )
    assert odd == []


def test_keys_outside_the_contract_are_ignored():
    (anchor,) = events_from_materialization(
        "s22a1_anchor",
        T0,
        {"cell_ref": "u/AB/fold-1", "elapsed_s": 2.0, "curve": {"validation_logloss": [0.6]}},
    )
    assert anchor.fields == {"rows": None, "best_iter": None}


def test_a_contract_records_one_plain_value_per_field():
    capture = CaptureMetadata(
        cell_ref="u/AB/fold-1",
        cache=CaptureOutcome.MISS,
        served_in_s=1.5,
        capture_elapsed_s=9,
        bytes=2048,
        content_hash="abc",
        capture_events=[],
    )
    assert capture.values() == {
        "cell_ref": "u/AB/fold-1",
        "cache": "MISS",
        "served_in_s": 1.5,
        "capture_elapsed_s": 9.0,
        "bytes": 2048,
        "content_hash": "abc",
        "capture_events": [],
    }
    assert CaptureMetadata.parse(capture.values()) == capture
    with pytest.raises(ValidationError):  # the writer cannot leave a field out
        AnchorMetadata(cell_ref="u/AB/fold-1", elapsed_s=1.0, rows=10)  # type: ignore[call-arg]


def _bars(figure, gid) -> list[Rectangle]:
    return [
        patch
        for ax in figure.axes
        for patch in ax.patches
        if isinstance(patch, Rectangle) and patch.get_gid() == gid
    ]


def test_the_elapsed_histogram_counts_every_fit_in_numpy_bins():
    elapsed = [0.05, 0.06, 0.07, 0.09, 0.12, 0.14, 0.31, 0.33, 0.6]
    figure = elapsed_histogram(elapsed)
    edges = elapsed_edges(elapsed)
    heights = [bar.get_height() for bar in _bars(figure, ELAPSED_GID)]
    assert heights == list(np.histogram(elapsed, bins=edges)[0])
    assert sum(heights) == len(elapsed)
    labels = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
    assert labels == bin_labels(edges, "s") and len(set(labels)) == len(labels)
    assert figure.axes[0].get_title() == "s22a1 anchor elapsed time (9 timed fits)"
    assert len(png(figure)) <= MAX_FIGURE_BYTES


def test_bin_labels_tell_neighbouring_bins_apart():
    # The text plot labelled both 0.05-0.10 and 0.10-0.15 as "0.1-0.1 s".
    assert bin_labels([0.05, 0.10, 0.15], "s") == ["0.05-0.10 s", "0.10-0.15 s"]
    assert bin_labels([0, 100, 200], "s") == ["0-100 s", "100-200 s"]
    assert bin_labels([1.0, 1.0000004], "s") == ["1.000000-1.000000 s"]  # at most 6 decimals


def test_audits_per_cell_has_one_bar_per_cell_most_audited_first():
    per_cell = {"u/AB/fold-1": 3, "u/CD/fold-1": 5, "u/EF/fold-2": 1}
    figure = audits_per_cell(per_cell)
    bars = _bars(figure, CELLS_GID)
    labels = [tick.get_text() for tick in figure.axes[0].get_yticklabels()]
    assert dict(zip(labels, [bar.get_width() for bar in bars], strict=True)) == per_cell
    assert labels[0] == "u/CD/fold-1"
    assert len(png(figure)) <= MAX_FIGURE_BYTES


def test_many_cells_keep_the_bars_readable_and_the_total():
    per_cell = {f"u/S{i:03d}/fold-1": 1 + i % 4 for i in range(200)}
    figure = audits_per_cell(per_cell)
    bars = _bars(figure, CELLS_GID)
    assert len(bars) == MAX_CELL_BARS
    assert sum(bar.get_width() for bar in bars) == sum(per_cell.values())
    assert len(png(figure)) <= MAX_FIGURE_BYTES


def test_an_empty_history_draws_a_figure_that_says_so():
    for figure in (elapsed_histogram([]), audits_per_cell({})):
        assert [text.get_text() for text in figure.axes[0].texts] == [NO_DATA]
