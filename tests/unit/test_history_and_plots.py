from datetime import UTC, datetime

import pytest

from diag_assets.core.errors import DiagInputError
from diag_assets.core.gates.history import (
    HistoryEvent,
    events_from_materialization,
    read_jsonl,
    write_jsonl,
)
from diag_assets.core.plots import text_bars, text_histogram

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


def test_text_plots_scale_bars_to_the_peak():
    histogram = text_histogram([1, 1, 1, 10], bins=3, width=6)
    lines = histogram.strip("`\n").splitlines()
    assert lines[0].endswith("██████ 3") and lines[-1].endswith("██ 1")
    bars = text_bars({"a": 4, "b": 2}, width=4)
    assert "a | ████ 4" in bars and "b | ██ 2" in bars
    assert text_histogram([]) == "_no data_"
