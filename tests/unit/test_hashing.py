"""Property tests for diag_assets.core.hashing: every point of the canonical-hash spec."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import xxhash
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pandas.util import hash_pandas_object

from diag_assets.core.hashing.digests import bytes_digest, combine_digests, file_digest, hash_json
from diag_assets.core.hashing.table import TableHash, canonical_hash

PROPS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MISSING = "<missing>"
CATEGORIES = ["a", "b", "c"]

# --- strategies: a table is a list of (name, kind, python values) -----------------------------

KINDS = ["f32", "f64", "i8", "i64", "u16", "bool", "str", "Int64", "cat", "ts"]
NUMERIC_KINDS = ["f32", "f64", "i8", "i64", "u16", "bool"]


def cell_strategy(kind: str) -> st.SearchStrategy:
    return {
        "f32": st.floats(width=32),
        "f64": st.floats(),
        "i8": st.integers(-128, 127),
        "i64": st.integers(-(2**63), 2**63 - 1),
        "u16": st.integers(0, 2**16 - 1),
        "bool": st.booleans(),
        "str": st.none() | st.text(max_size=5),
        "Int64": st.none() | st.integers(-(2**63), 2**63 - 1),
        "cat": st.none() | st.sampled_from(CATEGORIES),
        # -2**63 is NaT, so stay above it.
        "ts": st.none() | st.integers(-(2**62), 2**62),
    }[kind]


def build_column(kind: str, values: list) -> object:
    if kind in ("f32", "f64", "i8", "i64", "u16"):
        dtype = {"f32": np.float32, "f64": np.float64, "i8": np.int8, "i64": np.int64}.get(
            kind, np.uint16
        )
        return np.array(values, dtype=dtype)
    if kind == "bool":
        return np.array(values, dtype=bool)
    if kind == "str":
        return pd.array(values, dtype="str")
    if kind == "Int64":
        return pd.array(values, dtype="Int64")
    if kind == "cat":
        return pd.Categorical(values, categories=CATEGORIES)
    ints = np.array([-(2**63) if v is None else v for v in values], dtype=np.int64)
    return ints.view("datetime64[ns]")


def build_frame(spec: list[tuple[str, str, list]], rows: int) -> pd.DataFrame:
    frame = pd.DataFrame({name: build_column(kind, values) for name, kind, values in spec})
    if not spec:
        frame = pd.DataFrame(index=range(rows))
    return frame


def canon_cell(kind: str, value: object) -> object:
    """The value as the spec compares it: NaN is missing, floats compare bitwise."""
    if value is None:
        return MISSING
    if kind in ("f32", "f64"):
        assert isinstance(value, float)
        number = np.float32(value) if kind == "f32" else np.float64(value)
        return MISSING if np.isnan(number) else number.tobytes()
    return value


names_st = st.text(min_size=1, max_size=6).filter(lambda n: not n.startswith("__index_level"))


@st.composite
def table_specs(draw, kinds=KINDS, min_rows=0, max_rows=12, min_cols=1, max_cols=5):
    rows = draw(st.integers(min_rows, max_rows))
    names = draw(st.lists(names_st, min_size=min_cols, max_size=max_cols, unique=True))
    spec = []
    for name in names:
        kind = draw(st.sampled_from(kinds))
        values = draw(st.lists(cell_strategy(kind), min_size=rows, max_size=rows))
        spec.append((name, kind, values))
    return spec, rows


def digest_of(spec, rows) -> TableHash:
    return canonical_hash(build_frame(spec, rows))


# --- output format ------------------------------------------------------------------------------


@PROPS
@given(table_specs(min_cols=0))
def test_table_hash_shape(case):
    spec, rows = case
    result = digest_of(spec, rows)
    assert len(result.digest) == 32 and result.digest == result.digest.lower()
    int(result.digest, 16)
    assert list(result.columns) == [name for name, _, _ in spec]
    assert all(len(d) == 32 for d in result.columns.values())
    assert result.rows == rows
    assert result.diverging_columns(result) == []
    assert hash(result) == hash(digest_of(spec, rows))


def _reference_column(name, type_name, rows, null_count, values, lengths=b"", nulls=b""):
    """The column digest written out from the module docstring, independent of the code."""

    def frame(data: bytes) -> bytes:
        return struct.pack("<Q", len(data)) + data

    message = (
        frame(b"diag-table-hash/v1/column")
        + frame(name.encode())
        + frame(type_name.encode())
        + struct.pack("<QQ", rows, null_count)
        + xxhash.xxh3_128(values).digest()
        + xxhash.xxh3_128(lengths).digest()
        + xxhash.xxh3_128(nulls).digest()
    )
    return xxhash.xxh3_128(message).hexdigest()


def test_known_answer_matches_the_written_spec():
    frame = pd.DataFrame(
        {
            "f": np.array([1.5, np.nan, -0.0], dtype=np.float32),
            "i": np.array([1, 2, 3], dtype=np.int8),
            "s": pd.array(["x", None, "yz"], dtype="str"),
            "n": pd.array([1, None, 3], dtype="Int64"),
            "b": np.array([True, False, True]),
        }
    )
    u64 = struct.Struct("<Q").pack
    expected_columns = {
        "f": _reference_column("f", "float", 3, 0, struct.pack("<fIf", 1.5, 0x7FC00000, -0.0)),
        "i": _reference_column("i", "int8", 3, 0, bytes([1, 2, 3])),
        "s": _reference_column(
            "s", "utf8", 3, 1, b"xyz", lengths=u64(1) + u64(0) + u64(2), nulls=u64(1)
        ),
        "n": _reference_column("n", "int64", 3, 1, struct.pack("<qqq", 1, 0, 3), nulls=u64(1)),
        "b": _reference_column("b", "bool", 3, 0, bytes([1, 0, 1])),
    }
    types = {"f": "float", "i": "int8", "s": "utf8", "n": "int64", "b": "bool"}
    header = ["3", "5"]
    for name, digest in expected_columns.items():
        header += [name, types[name], digest]
    result = canonical_hash(frame)
    assert result.columns == expected_columns
    assert result.digest == combine_digests("diag-table-hash/v1/table", *header)
    # Pinned so that any change to the algorithm is noticed: bump the version tag with it.
    assert result.digest == "c77c86c3a2f3b07ef5c1828e6a83504c"
    assert canonical_hash(pa.Table.from_pandas(frame)) == result


def _pinned_frames() -> dict[str, pd.DataFrame | pa.Table]:
    rows = 70_000
    steps = np.arange(rows, dtype=np.float64)
    sparse = steps * 0.5 - 17_000.25
    sparse[::97] = np.nan
    dense = steps / 8
    dense[rows // 2 :: 2] = np.nan
    numeric = pd.DataFrame(
        {
            "sparse_nan": sparse,
            "dense_nan": dense,
            "f32": ((np.arange(rows) % 1000) / 8).astype(np.float32),
            "i64": np.arange(rows, dtype=np.int64) * -3,
            "u8": (np.arange(rows) % 251).astype(np.uint8),
            "flag": np.arange(rows) % 3 == 0,
        }
    )
    grid = np.arange(20_000, dtype=np.float64).reshape(5_000, 4) / 4
    grid[::3, 1] = np.nan
    strided = pd.DataFrame(grid, columns=list("wxyz"), copy=False)
    assert not strided["x"].to_numpy().flags.c_contiguous
    mixed = pd.DataFrame(
        {
            "s": pd.array(["x", None, "zz", "é"] * 50, dtype="string"),
            "cat": pd.Categorical(["p", "q", None, "p"] * 50),
            "t": pd.date_range("2024-01-01", periods=200, freq="h", tz="UTC"),
            "n": pd.array([1, None, -7, 2**40] * 50, dtype="Int64"),
            "o": [None, 1, 2.5, None] * 50,
        }
    )
    arrow = pa.table(
        {
            "i": pa.chunked_array(
                [pa.array([1, None, 3], pa.int32()), pa.array([4, 5], pa.int32())]
            ),
            "bin": pa.chunked_array(
                [pa.array([b"a", None, b""], pa.binary()), pa.array([b"dd", b"e"], pa.binary())]
            ),
            "d": pa.array([1.0, float("nan"), None, -0.0, 2.0]),
            "dict": pa.array(["u", "v", None, "u", "w"]).dictionary_encode(),
            "date": pa.array([0, 1, None, 19_000, -1], pa.date32()),
        }
    )
    return {"numeric": numeric, "strided": strided, "mixed": mixed, "arrow": arrow}


def test_digests_of_every_code_path_are_pinned():
    # Block streaming with sparse and dense NaN, strided views, the Arrow conversion of pandas
    # extension dtypes, chunked Arrow columns with nulls: any change to how one of them is
    # written into the streams changes a pinned digest (bump the version tag with it).
    pinned = {
        "numeric": "f0a2b5adf6fb4ad4a37fe824b2f001ed",
        "strided": "fbb908e0f8f98bddf71a19845669ff1a",
        "mixed": "a88648b7b98ef68491e8d50f63c2758f",
        "arrow": "bb7d1b1197c67f516f8e1ad23b36f111",
    }
    digests = {name: canonical_hash(table).digest for name, table in _pinned_frames().items()}
    assert digests == pinned


# --- sensitivity --------------------------------------------------------------------------------


@PROPS
@given(table_specs(), st.data())
def test_renaming_a_column_changes_the_digest(case, data):
    spec, rows = case
    index = data.draw(st.integers(0, len(spec) - 1))
    old = spec[index][0]
    new = data.draw(names_st.filter(lambda n: n not in {name for name, _, _ in spec}))
    renamed = [
        (new if i == index else name, kind, vals) for i, (name, kind, vals) in enumerate(spec)
    ]
    before, after = digest_of(spec, rows), digest_of(renamed, rows)
    assert before.digest != after.digest
    assert before.diverging_columns(after) == [old, new]
    # The column's own digest covers its name, not just the table header.
    assert before.columns[old] != after.columns[new]


@PROPS
@given(table_specs(kinds=["f32", "i8", "i64"]), st.data())
def test_changing_a_dtype_changes_the_digest(case, data):
    spec, rows = case
    index = data.draw(st.integers(0, len(spec) - 1))
    name, kind, values = spec[index]
    wider = {"f32": "f64", "i8": "i64", "i64": "f64"}[kind]
    if kind == "i64":
        values = [float(v) for v in values]
    changed = list(spec)
    changed[index] = (name, wider, values)
    before, after = digest_of(spec, rows), digest_of(changed, rows)
    assert before.digest != after.digest
    assert before.diverging_columns(after) == [name]


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (pa.array([1.0, 2.0], pa.float32()), pa.array([1.0, 2.0], pa.float64())),
        (pa.array([1, 2], pa.int8()), pa.array([1, 2], pa.int64())),
        (pa.array([1, 2], pa.int64()), pa.array([1, 2], pa.uint64())),
        (pa.array([0, 1], pa.timestamp("ns")), pa.array([0, 1], pa.timestamp("us"))),
        (pa.array([0, 1], pa.timestamp("ns")), pa.array([0, 1], pa.timestamp("ns", tz="UTC"))),
        (
            pa.array([0, 1], pa.timestamp("ns", tz="UTC")),
            pa.array([0, 1], pa.timestamp("ns", tz="Europe/Berlin")),
        ),
        (pa.array([0, 1], pa.int64()), pa.array([0, 1], pa.timestamp("ns"))),
        (pa.array(["a"]), pa.array([b"a"])),
        (pa.array(["a"]), pa.array(["a"]).dictionary_encode()),
        (pa.array([True, False]), pa.array([1, 0], pa.int8())),
    ],
    ids=repr,
)
def test_logical_type_is_part_of_the_hash(left, right):
    a, b = canonical_hash(pa.table({"x": left})), canonical_hash(pa.table({"x": right}))
    assert a.digest != b.digest
    assert a.diverging_columns(b) == ["x"]


@PROPS
@given(table_specs(min_cols=2), st.data())
def test_swapping_columns_changes_the_digest(case, data):
    spec, rows = case
    i, j = data.draw(st.lists(st.integers(0, len(spec) - 1), min_size=2, max_size=2, unique=True))
    swapped = list(spec)
    swapped[i], swapped[j] = spec[j], spec[i]
    before, after = digest_of(spec, rows), digest_of(swapped, rows)
    assert before.digest != after.digest
    assert {spec[i][0], spec[j][0]} <= set(before.diverging_columns(after))
    # Column digests do not depend on position.
    assert before.columns == after.columns


@PROPS
@given(table_specs(min_rows=2), st.data())
def test_swapping_two_distinct_rows_changes_the_digest(case, data):
    spec, rows = case
    i, j = data.draw(st.lists(st.integers(0, rows - 1), min_size=2, max_size=2, unique=True))
    differing = [
        name for name, kind, vals in spec if canon_cell(kind, vals[i]) != canon_cell(kind, vals[j])
    ]
    assume(differing)
    swapped = []
    for name, kind, vals in spec:
        vals = list(vals)
        vals[i], vals[j] = vals[j], vals[i]
        swapped.append((name, kind, vals))
    before, after = digest_of(spec, rows), digest_of(swapped, rows)
    assert before.digest != after.digest
    assert before.diverging_columns(after) == differing


@PROPS
@given(table_specs(min_rows=1), st.data())
def test_changing_one_value_changes_exactly_that_column(case, data):
    spec, rows = case
    index = data.draw(st.integers(0, len(spec) - 1))
    row = data.draw(st.integers(0, rows - 1))
    name, kind, values = spec[index]
    new = data.draw(cell_strategy(kind))
    assume(canon_cell(kind, new) != canon_cell(kind, values[row]))
    changed = list(spec)
    changed[index] = (name, kind, [new if r == row else v for r, v in enumerate(values)])
    before, after = digest_of(spec, rows), digest_of(changed, rows)
    assert before.digest != after.digest
    assert before.diverging_columns(after) == [name]


@PROPS
@given(table_specs(min_cols=0), table_specs(min_cols=0))
def test_digest_equal_exactly_when_no_column_diverges(left, right):
    a, b = digest_of(*left), digest_of(*right)
    if a.rows == b.rows:
        assert (a.digest == b.digest) == (a.diverging_columns(b) == [])
    only_b = [name for name in b.columns if name not in a.columns]
    diverging = a.diverging_columns(b)
    assert diverging[len(diverging) - len(only_b) :] == only_b


def test_diverging_columns_order_and_membership():
    a = canonical_hash(pd.DataFrame({"x": [1], "y": [2], "z": [3]}))
    b = canonical_hash(pd.DataFrame({"w": [0], "y": [9], "x": [1]}))
    # x and y moved, y changed, z missing from b, w only in b.
    assert a.diverging_columns(b) == ["x", "y", "z", "w"]
    assert b.diverging_columns(a) == ["w", "y", "x", "z"]


def test_pandas_column_name_blind_spot_does_not_apply():
    # pandas-dev/pandas#46705: hash_pandas_object ignores column names.
    x, y = np.arange(5), np.arange(5) * 7
    first = pd.DataFrame({"a": x, "b": y})
    second = pd.DataFrame({"b": x, "a": y})
    pandas_first = hash_pandas_object(first, index=False)
    pandas_second = hash_pandas_object(second, index=False)
    assert pandas_first.equals(pandas_second)
    assert canonical_hash(first).digest != canonical_hash(second).digest
    assert canonical_hash(first).diverging_columns(canonical_hash(second)) == ["a", "b"]


# --- stability ----------------------------------------------------------------------------------


@PROPS
@given(table_specs(min_cols=0))
def test_dataframe_and_arrow_paths_agree(case):
    spec, rows = case
    frame = build_frame(spec, rows)
    expected = canonical_hash(frame)
    table = pa.Table.from_pandas(frame)
    assert canonical_hash(table) == expected
    assert canonical_hash(pa.RecordBatch.from_pandas(frame)) == expected


@PROPS
@given(table_specs(min_rows=1), st.data())
def test_index_is_not_content(case, data):
    spec, rows = case
    frame = build_frame(spec, rows)
    labels = data.draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=rows, max_size=rows))
    reindexed = frame.set_axis(labels, axis=0)
    expected = canonical_hash(frame)
    assert canonical_hash(reindexed) == expected
    # from_pandas stores a non-range index as a column, which the hash drops again.
    table = pa.Table.from_pandas(reindexed)
    assert "__index_level_0__" in table.schema.names
    assert canonical_hash(table) == expected
    # reset_index makes the index content.
    assert canonical_hash(reindexed.reset_index()).digest != expected.digest


@PROPS
@given(table_specs(min_rows=1, max_rows=30), st.data())
def test_stable_across_chunking(case, data):
    spec, rows = case
    table = pa.Table.from_pandas(build_frame(spec, rows))
    expected = canonical_hash(table)
    cuts = sorted(data.draw(st.lists(st.integers(0, rows), max_size=5)))
    bounds = [0, *cuts, rows]
    columns = [
        pa.chunked_array(
            [column.slice(a, b - a) for a, b in zip(bounds, bounds[1:], strict=False)],
            type=column.type,
        )
        for column in table.columns
    ]
    rechunked = pa.Table.from_arrays(columns, schema=table.schema)
    assert rechunked.column(0).num_chunks == len(bounds) - 1
    assert canonical_hash(rechunked) == expected
    assert canonical_hash(rechunked.combine_chunks()) == expected
    for batch_size in (1, 3):
        batches = table.to_batches(max_chunksize=batch_size)
        assert canonical_hash(pa.Table.from_batches(batches, schema=table.schema)) == expected


@PROPS
@given(table_specs(min_rows=1, max_rows=30), st.data())
def test_stable_across_slice_offsets(case, data):
    spec, rows = case
    start = data.draw(st.integers(0, rows))
    length = data.draw(st.integers(0, rows - start))
    frame = build_frame(spec, rows)
    sliced = pa.Table.from_pandas(frame).slice(start, length)
    fresh = pa.Table.from_pandas(frame.iloc[start : start + length].reset_index(drop=True))
    expected = canonical_hash(fresh)
    assert canonical_hash(sliced) == expected
    assert canonical_hash(frame.iloc[start : start + length]) == expected
    if length:
        assert sliced.column(0).chunk(0).offset == start


@FEW
@given(table_specs(min_rows=0, max_rows=30))
def test_stable_across_parquet_via_pyarrow(case):
    spec, rows = case
    table = pa.Table.from_pandas(build_frame(spec, rows), preserve_index=False)
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=7)
    read = pq.read_table(io.BytesIO(sink.getvalue()))
    assert canonical_hash(read) == canonical_hash(table)


@FEW
@given(table_specs(min_rows=0, max_rows=30))
def test_stable_across_parquet_via_pandas(case):
    spec, rows = case
    # pandas reads a zero-row categorical back with empty object categories: its dtype really
    # changes (Arrow: dictionary<values=null>), so that case is not a stability question.
    assume(rows > 0 or all(kind != "cat" for _, kind, _ in spec))
    frame = build_frame(spec, rows)
    sink = io.BytesIO()
    frame.to_parquet(sink)
    read = pd.read_parquet(io.BytesIO(sink.getvalue()))
    assert canonical_hash(read) == canonical_hash(frame)
    # Reading the same file with pyarrow (NaN now null, categories as dictionary) agrees too.
    assert canonical_hash(pq.read_table(io.BytesIO(sink.getvalue()))) == canonical_hash(frame)


matrix_dtypes = st.sampled_from([np.float32, np.float64, np.int8, np.int64, np.bool_])


@PROPS
@given(
    hnp.arrays(
        dtype=matrix_dtypes.map(np.dtype),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
    )
)
def test_stable_across_memory_layout(matrix):
    c_order, f_order = np.ascontiguousarray(matrix), np.asfortranarray(matrix)
    by_columns = pd.DataFrame({str(i): matrix[:, i].copy() for i in range(matrix.shape[1])})
    expected = canonical_hash(by_columns)
    assert canonical_hash(pd.DataFrame(c_order)) == expected
    assert canonical_hash(pd.DataFrame(f_order)) == expected
    strided = pd.DataFrame(c_order, copy=False)
    if matrix.shape[1] > 1 and matrix.shape[0] > 1:
        assert not strided.iloc[:, 0].to_numpy().flags.c_contiguous
    assert canonical_hash(strided) == expected
    assert canonical_hash(pd.DataFrame(f_order, copy=False)) == expected
    assert canonical_hash(pa.Table.from_pandas(pd.DataFrame(c_order, copy=False))) == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
@pytest.mark.parametrize("nan_density", [0.0, 0.001, 0.5])
def test_large_strided_and_chunked_columns_agree(dtype, nan_density):
    # Big enough to cross the 256 KiB hashing blocks, with NaN in some blocks only.
    rows = 150_000
    rng = np.random.default_rng(7)
    base = rng.standard_normal(rows * 3).astype(dtype)
    nan_mask = np.zeros(rows * 3, dtype=bool)
    if np.dtype(dtype).kind == "f":
        nan_mask[: rows * 3 // 2] = rng.random(rows * 3 // 2) < nan_density
        base[nan_mask] = np.nan
    contiguous = base[::3].copy()
    expected = canonical_hash(pd.DataFrame({"x": contiguous}))
    if nan_mask.any():
        # Negative NaN with a payload: bits unlike np.nan's, in both NaN code paths.
        unsigned, mantissa_bits, bits = FLOAT_LAYOUT[dtype]
        odd_nan = unsigned((1 << bits) - 1) ^ unsigned(1 << (mantissa_bits - 1))
        base.view(unsigned)[nan_mask] = odd_nan
        assert np.isnan(base[nan_mask]).all()
    view = base[::3]
    assert not view.flags.c_contiguous
    assert canonical_hash(pd.DataFrame({"x": pd.Series(view, copy=False)}, copy=False)) == expected
    chunks = [pa.array(view[a : a + 40_000]) for a in range(0, rows, 40_000)]
    assert canonical_hash(pa.table({"x": pa.chunked_array(chunks)})) == expected
    as_nulls = [
        pa.array(contiguous[a : a + 40_000], from_pandas=True) for a in range(0, rows, 40_000)
    ]
    assert canonical_hash(pa.table({"x": pa.chunked_array(as_nulls)})) == expected


def test_cross_process_stability():
    frame_code = textwrap.dedent(
        """
        import numpy as np, pandas as pd
        frame = pd.DataFrame({
            "f": np.linspace(-1, 1, 50, dtype=np.float32),
            "i": np.arange(50, dtype=np.int64) * 31,
            "s": pd.array([str(i) * (i % 4) if i % 7 else None for i in range(50)], dtype="str"),
            "c": pd.Categorical([("a", "b", None)[i % 3] for i in range(50)]),
            "t": pd.date_range("2024-01-01", periods=50, freq="h", tz="UTC"),
        })
        """
    )
    namespace: dict = {}
    exec(frame_code, namespace)  # noqa: S102 - the same source runs in the child process
    local = canonical_hash(namespace["frame"])
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            frame_code
            + "import json\nfrom diag_assets.core.hashing.table import canonical_hash\n"
            + "h = canonical_hash(frame)\nprint(json.dumps([h.digest, h.columns]))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "4242"},
        cwd=Path(__file__).resolve().parents[2],
    )
    digest, columns = json.loads(child.stdout)
    assert digest == local.digest
    assert columns == local.columns


# --- NaN, nulls, zeros ------------------------------------------------------------------------


FLOAT_LAYOUT = {np.float32: (np.uint32, 23, 32), np.float64: (np.uint64, 52, 64)}


@PROPS
@given(st.sampled_from([np.float32, np.float64]), st.data())
def test_every_nan_bit_pattern_hashes_alike(dtype, data):
    unsigned, mantissa_bits, bits = FLOAT_LAYOUT[dtype]
    n = data.draw(st.integers(1, 40))
    values = np.array(
        data.draw(st.lists(st.floats(width=bits, allow_nan=False), min_size=n, max_size=n)),
        dtype=dtype,
    )
    nan_mask = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    payloads = data.draw(st.lists(st.integers(1, 2**mantissa_bits - 1), min_size=n, max_size=n))
    signs = data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    exponent = ((1 << (bits - 1)) - 1) ^ ((1 << mantissa_bits) - 1)
    weird = values.copy()
    raw = weird.view(unsigned)
    for i in np.flatnonzero(nan_mask):
        # Quiet, signalling and negative NaN: all exponent bits set, any non-zero mantissa.
        raw[i] = unsigned(exponent | payloads[i] | (signs[i] << (bits - 1)))
    assert np.isnan(weird[nan_mask]).all()
    plain = values.copy()
    plain[nan_mask] = np.nan
    expected = canonical_hash(pd.DataFrame({"x": plain}))
    assert canonical_hash(pd.DataFrame({"x": weird})) == expected
    arrow_nan = pa.array(weird, from_pandas=False)
    assert arrow_nan.null_count == 0
    assert canonical_hash(pa.table({"x": arrow_nan})) == expected
    arrow_null = pa.array(values, mask=nan_mask)
    assert canonical_hash(pa.table({"x": arrow_null})) == expected


def test_float_null_and_nan_are_the_same_missing_value():
    with_null = pa.table({"x": pa.array([1.0, None, 3.0], pa.float64())})
    with_nan = pa.table({"x": pa.array(np.array([1.0, np.nan, 3.0]), from_pandas=False)})
    assert canonical_hash(with_null) == canonical_hash(with_nan)
    # A null slot's hidden value must not matter.
    values = np.array([1.0, 12345.0, 3.0]).tobytes()
    validity = bytes([0b101])
    hidden = pa.Array.from_buffers(
        pa.float64(), 3, [pa.py_buffer(validity), pa.py_buffer(values)], null_count=1
    )
    assert canonical_hash(pa.table({"x": hidden})) == canonical_hash(with_null)
    # A missing float is not any finite value.
    assert canonical_hash(pa.table({"x": [1.0, 0.0, 3.0]})) != canonical_hash(with_null)


def test_negative_zero_differs_from_positive_zero():
    positive = pd.DataFrame({"x": np.array([0.0, 1.0], dtype=np.float32)})
    negative = pd.DataFrame({"x": np.array([-0.0, 1.0], dtype=np.float32)})
    assert canonical_hash(positive).digest != canonical_hash(negative).digest


def test_integer_null_differs_from_zero():
    null = pa.table({"x": pa.array([1, None], pa.int64())})
    zero = pa.table({"x": pa.array([1, 0], pa.int64())})
    assert canonical_hash(null).digest != canonical_hash(zero).digest
    pandas_null = pd.DataFrame({"x": pd.array([1, None], dtype="Int64")})
    pandas_zero = pd.DataFrame({"x": pd.array([1, 0], dtype="Int64")})
    assert canonical_hash(pandas_null) == canonical_hash(null)
    assert canonical_hash(pandas_zero) == canonical_hash(zero)
    assert canonical_hash(pd.DataFrame({"x": np.array([1, 0])})) == canonical_hash(zero)
    # Null slots whose hidden value is not zero hash like any other null.
    hidden = pa.Array.from_buffers(
        pa.int64(),
        2,
        [pa.py_buffer(bytes([0b01])), pa.py_buffer(np.array([1, 99], np.int64).tobytes())],
        null_count=1,
    )
    assert canonical_hash(pa.table({"x": hidden})) == canonical_hash(null)


@PROPS
@given(st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=20), st.data())
def test_nulls_position_matters(values, data):
    assume(any(v is None for v in values))
    where = data.draw(st.integers(0, len(values) - 1))
    filled = [0 if i == where and v is None else v for i, v in enumerate(values)]
    assume(filled != values)
    a = canonical_hash(pa.table({"x": pa.array(values, pa.int64())}))
    b = canonical_hash(pa.table({"x": pa.array(filled, pa.int64())}))
    assert a.digest != b.digest


@PROPS
@given(st.integers(2, 20), st.data())
def test_null_positions_matter_with_equal_counts(rows, data):
    # Zeros everywhere and one null: the values stream and the null count are the same for
    # every position, so only the canonical validity can tell them apart.
    i, j = data.draw(st.lists(st.integers(0, rows - 1), min_size=2, max_size=2, unique=True))
    for zero in (pa.scalar(0, pa.int64()), pa.scalar("", pa.string()), pa.scalar(False)):
        column = pa.array([zero.as_py()] * rows, zero.type)

        def with_null_at(position: int, column: pa.Array = column) -> pa.Table:
            return pa.table(
                {
                    "x": pc.if_else(
                        pa.array([k == position for k in range(rows)]),
                        pa.scalar(None, column.type),
                        column,
                    )
                }
            )

        left, right = with_null_at(i), with_null_at(j)
        assert left.column(0).null_count == right.column(0).null_count == 1
        assert canonical_hash(left).digest != canonical_hash(right).digest


# --- strings, binary, dictionary, bool, timestamps --------------------------------------------


@PROPS
@given(st.lists(st.none() | st.text(max_size=6), max_size=20), st.data())
def test_string_type_variants_hash_alike(values, data):
    expected = canonical_hash(pa.table({"s": pa.array(values, pa.string())}))
    for arrow_type in (pa.large_string(), pa.string_view()):
        assert canonical_hash(pa.table({"s": pa.array(values, arrow_type)})) == expected
    assert canonical_hash(pd.DataFrame({"s": pd.array(values, dtype="str")})) == expected
    if any(v is not None for v in values):
        # An object column of only None has no type to infer (Arrow says "null").
        assert canonical_hash(pd.DataFrame({"s": pd.Series(values, dtype=object)})) == expected
    start = data.draw(st.integers(0, len(values)))
    sliced = pa.array(values, pa.string()).slice(start)
    fresh = pa.array(values[start:], pa.large_string())
    assert canonical_hash(pa.table({"s": sliced})) == canonical_hash(pa.table({"s": fresh}))


@PROPS
@given(st.lists(st.none() | st.binary(max_size=6), max_size=20))
def test_binary_type_variants_hash_alike(values):
    expected = canonical_hash(pa.table({"b": pa.array(values, pa.binary())}))
    for arrow_type in (pa.large_binary(), pa.binary_view()):
        assert canonical_hash(pa.table({"b": pa.array(values, arrow_type)})) == expected


def test_string_boundaries_and_nulls_are_part_of_the_value():
    def digest(values):
        return canonical_hash(pa.table({"s": pa.array(values, pa.string())})).digest

    assert digest(["ab", "c"]) != digest(["a", "bc"])
    assert digest(["", None]) != digest([None, None])
    assert digest([""]) != digest([None])
    assert digest(["None"]) != digest([None])
    # A null slot that owns bytes (legal in Arrow) hashes like an empty null.
    owning = pa.Array.from_buffers(
        pa.string(),
        3,
        [
            pa.py_buffer(bytes([0b101])),
            pa.py_buffer(np.array([0, 1, 4, 5], np.int32).tobytes()),
            pa.py_buffer(b"axyzb"),
        ],
        null_count=1,
    )
    assert canonical_hash(pa.table({"s": owning})).digest == digest(["a", None, "b"])


@PROPS
@given(st.lists(st.none() | st.sampled_from(["x", "y", "zz"]), max_size=20))
def test_dictionary_hashes_decoded_values(values):
    plain = pa.array(values, pa.string())
    encoded = plain.dictionary_encode()
    expected = canonical_hash(pa.table({"d": encoded}))
    assert expected.digest != canonical_hash(pa.table({"d": plain})).digest or not values
    wide = encoded.cast(pa.dictionary(pa.int32(), pa.large_string()))
    assert canonical_hash(pa.table({"d": wide})) == expected
    # Different dictionaries (order, unused entries) with the same decoded values agree.
    other = pa.DictionaryArray.from_arrays(
        pa.array(
            [None if v is None else ["zz", "y", "x", "unused"].index(v) for v in values], pa.int8()
        ),
        pa.array(["zz", "y", "x", "unused"]),
    )
    assert canonical_hash(pa.table({"d": other})) == expected
    categorical = pd.DataFrame({"d": pd.Categorical(values, categories=["x", "y", "zz"])})
    assert canonical_hash(categorical) == expected


@PROPS
@given(st.lists(st.none() | st.booleans(), min_size=1, max_size=40), st.data())
def test_bool_hashes_values_not_bit_packing(values, data):
    start = data.draw(st.integers(0, len(values)))
    sliced = pa.array(values, pa.bool_()).slice(start)
    fresh = pa.array(values[start:], pa.bool_())
    assert canonical_hash(pa.table({"b": sliced})) == canonical_hash(pa.table({"b": fresh}))
    if None not in values:
        as_numpy = pd.DataFrame({"b": np.array(values[start:], dtype=bool)})
        assert canonical_hash(as_numpy) == canonical_hash(pa.table({"b": fresh}))


def test_numpy_bools_are_canonicalized_to_zero_and_one():
    odd = np.array([0, 2, 1, 255], dtype=np.uint8).view(np.bool_)
    plain = np.array([False, True, True, True])
    expected = canonical_hash(pd.DataFrame({"b": plain}))
    assert canonical_hash(pd.DataFrame({"b": odd})) == expected
    assert canonical_hash(pa.table({"b": pa.array(plain)})) == expected


def test_timestamps_pandas_and_arrow_agree():
    stamps = pd.Series(pd.to_datetime(["2024-01-01 10:00", None, "2024-03-01 00:00"]))
    for series in (stamps, stamps.dt.tz_localize("UTC"), stamps.dt.tz_localize("Europe/Berlin")):
        frame = pd.DataFrame({"t": series})
        assert canonical_hash(frame) == canonical_hash(pa.Table.from_pandas(frame))
    naive = canonical_hash(pd.DataFrame({"t": stamps}))
    utc = canonical_hash(pd.DataFrame({"t": stamps.dt.tz_localize("UTC")}))
    assert naive.digest != utc.digest
    ns = canonical_hash(pd.DataFrame({"t": stamps.astype("datetime64[ns]")}))
    ms = canonical_hash(pd.DataFrame({"t": stamps.astype("datetime64[ms]")}))
    assert ns.digest != ms.digest


# --- input checks -------------------------------------------------------------------------------


def test_duplicate_column_names_raise():
    with pytest.raises(ValueError, match="more than one column named 'a'"):
        canonical_hash(pd.DataFrame([[1, 2]], columns=["a", "a"]))
    with pytest.raises(ValueError, match="'1'"):
        canonical_hash(pd.DataFrame([[1, 2]], columns=[1, "1"]))
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(ValueError, match="more than one column"):
        canonical_hash(table)


def test_unsupported_inputs_raise():
    with pytest.raises(ValueError, match="does not support"):
        canonical_hash(pa.table({"l": pa.array([[1], [2, 3]])}))
    with pytest.raises(TypeError):
        canonical_hash([[1, 2]])  # type: ignore[arg-type]


def test_non_string_labels_hash_as_text():
    frame = pd.DataFrame(np.eye(2, dtype=np.float32))
    assert list(canonical_hash(frame).columns) == ["0", "1"]
    assert canonical_hash(frame) == canonical_hash(frame.rename(columns=str))


def test_empty_tables():
    empty = canonical_hash(pd.DataFrame())
    assert empty.rows == 0 and empty.columns == {}
    assert canonical_hash(pd.DataFrame(index=range(3))).digest != empty.digest
    no_rows = pd.DataFrame({"x": np.array([], np.float32)})
    assert canonical_hash(no_rows) == canonical_hash(pa.Table.from_pandas(no_rows))
    empty_chunks = pa.table({"x": pa.chunked_array([], pa.float32())})
    assert canonical_hash(empty_chunks) == canonical_hash(no_rows)


# --- hash_json, combine_digests, file_digest, bytes_digest -------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)


@PROPS
@given(st.dictionaries(st.text(max_size=4), json_values, max_size=6), st.randoms())
def test_hash_json_ignores_key_order(document, random):
    items = list(document.items())
    random.shuffle(items)
    digest = hash_json(document)
    assert hash_json(dict(items)) == digest
    assert len(digest) == 32 and digest == digest.lower()
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert digest == bytes_digest(text.encode())


def test_hash_json_is_compact_utf8():
    assert hash_json({"b": [1, 2], "a": "é"}) == bytes_digest('{"a":"é","b":[1,2]}'.encode())
    assert hash_json({"a": 1}) != hash_json({"a": 1.0})
    assert hash_json([1, 2]) != hash_json([2, 1])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_hash_json_rejects_non_finite_floats(bad):
    with pytest.raises(ValueError, match=r"non-finite float at \$\['trials'\]\[1\]\['loss'\]"):
        hash_json({"trials": [{"loss": 0.5}, {"loss": bad}]})
    with pytest.raises(ValueError, match="non-finite"):
        hash_json(bad)


@PROPS
@given(
    st.text(max_size=4),
    st.lists(st.text(max_size=4), max_size=4),
    st.text(max_size=4),
    st.lists(st.text(max_size=4), max_size=4),
)
def test_combine_digests_is_injective_on_its_framing(domain_a, parts_a, domain_b, parts_b):
    same = (domain_a, parts_a) == (domain_b, parts_b)
    equal = combine_digests(domain_a, *parts_a) == combine_digests(domain_b, *parts_b)
    assert equal == same


def test_combine_digests_framing():
    assert combine_digests("d", "ab", "c") != combine_digests("d", "a", "bc")
    assert combine_digests("d", "a") != combine_digests("d", "a", "")
    assert combine_digests("d1", "x") != combine_digests("d2", "x")
    assert combine_digests("da", "x") != combine_digests("d", "ax")

    def frame(text: str) -> bytes:
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    expected = frame("dom") + struct.pack("<Q", 2) + frame("ab") + frame("é")
    assert combine_digests("dom", "ab", "é") == xxhash.xxh3_128(expected).hexdigest()


@FEW
@given(st.binary(max_size=5000), st.integers(1, 700))
def test_file_digest_streams_like_bytes_digest(tmp_path_factory, data, chunk):
    path = tmp_path_factory.mktemp("digest") / "blob.bin"
    path.write_bytes(data)
    assert file_digest(path, chunk_bytes=chunk) == bytes_digest(data)
    assert file_digest(str(path)) == bytes_digest(data)
    assert bytes_digest(data) == xxhash.xxh3_128(data).hexdigest()


def test_file_digest_rejects_bad_chunk(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    with pytest.raises(ValueError):
        file_digest(path, chunk_bytes=0)
