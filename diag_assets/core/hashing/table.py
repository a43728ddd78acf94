"""The canonical table hash (version ``diag-table-hash/v1``) of a DataFrame or Arrow table.

``frame``, ``u64le`` and :func:`~diag_assets.core.hashing.digests.combine_digests` are those of
:mod:`~diag_assets.core.hashing.digests`; :mod:`~diag_assets.core.hashing.streams` writes the
column streams.

:func:`canonical_hash` accepts a ``pandas.DataFrame``, ``pyarrow.Table`` or
``pyarrow.RecordBatch``. The hash is a function of the *logical* table only: column names, column
types, column order, row order and values. It does not depend on Arrow chunking, slice offsets,
the content of null slots, padding, NaN payloads, pandas block layout (C or Fortran order, views
with strides), the process (no ``hash()``, no addresses) or whether the data made a trip through
Parquet.

What is not content:

* The pandas index. A DataFrame is hashed as its columns only; an Arrow table produced by
  ``pa.Table.from_pandas`` (or read from a Parquet file that pandas wrote) drops the columns its
  ``pandas`` schema metadata lists in ``index_columns``, so a frame and its Arrow form hash alike.
  Callers for whom the index matters call ``reset_index()`` first, making it a column.
* The width of dictionary indices and the choice between ``string``, ``large_string`` and
  ``string_view`` (or ``binary``, ``large_binary`` and ``binary_view``).

Column names and types
    A column's name is its label as text (``str(label)`` for pandas, as ``pa.Table.from_pandas``
    does). Two columns with the same name make the table ambiguous and raise
    :class:`ValueError`. A column's canonical type is the Arrow logical type printed by Arrow
    (``int8``, ``float``, ``double``, ``timestamp[ns, tz=UTC]``, ``decimal128(10, 2)`` ...), with
    these exceptions: every string type is ``utf8``; every binary type is ``binary``; a dictionary
    type is ``dictionary<values=V, ordered=0|1>`` where ``V`` is the canonical value type.
    pandas columns use the Arrow type ``pa.Table.from_pandas`` would give them (float32 is
    ``float``, float64 ``double``, categorical a dictionary, datetime64 a timestamp with unit and
    time zone); an ``object`` column gets the type Arrow infers, so one holding only None is
    ``null``. Nested, union, interval and extension types are not supported and raise
    :class:`ValueError`.

Column streams
    Each column is turned into three byte streams, each hashed by a streaming xxh3_128:

    * ``values``: the column's values back to back, null slots included as described below.
    * ``lengths``: for ``utf8`` and ``binary`` columns, every value's byte length as u64le
      (0 for a null); empty for other types.
    * ``nulls``: the 0-based row numbers of the null slots as u64le, ascending; empty when the
      column has no nulls and always empty for floating-point columns.

    Values by type:

    * Integers, dates, times, timestamps, durations, decimals, fixed-size binary: the value's
      fixed-width little-endian bytes (a timestamp is its int64 count of its unit since the
      epoch; unit and time zone are in the type). A null slot is written as all-zero bytes of
      the same width, so ``[1, null]`` and ``[1, 0]`` differ only in the ``nulls`` stream.
    * Floating point (``halffloat``, ``float``, ``double``): the IEEE 754 bits. *Missing* is one
      value: every NaN (quiet, signalling, any sign or payload) and every null is written as the
      canonical quiet NaN (``0x7e00``, ``0x7fc00000``, ``0x7ff8000000000000``). pandas turns NaN
      into null on some Arrow conversions and back on reading, and this makes both spellings
      agree. Comparison is otherwise bitwise: ``-0.0`` and ``+0.0`` are different values.
    * ``bool``: one byte per row, 0 or 1 (0 for a null), never Arrow's bit-packed buffer.
    * ``utf8`` and ``binary``: the value bytes back to back (nothing for a null); value
      boundaries are carried by the ``lengths`` stream.
    * Dictionary: the decoded values, hashed as the value type would be.
    * ``null``: nothing (the row count says it all).

Column digest
    ``xxh3_128(frame("diag-table-hash/v1/column") || frame(name) || frame(canonical type) ||
    u64le(rows) || u64le(null count) || values digest || lengths digest || nulls digest)``, where
    each stream digest is its 16 raw bytes and the null count is 0 for floating-point columns.
    It does not depend on the column's position, so adding or moving one column leaves the
    other columns' digests unchanged.

Table digest
    ``combine_digests("diag-table-hash/v1/table", str(rows), str(n_columns), name_1, type_1,
    column_digest_1, name_2, ...)`` over the columns in table order: the header (version tag,
    row count, each column's name and canonical type) and every column digest.

Performance: numeric numpy-backed pandas columns are hashed straight from their buffers in
256 KiB blocks (no ``pa.Table.from_pandas``); a block is copied only when it is not contiguous or
holds a NaN that needs rewriting. Columns that are strided views (``pd.DataFrame(c_order_2d,
copy=False)``) are therefore gathered block by block and hash about ten times slower than
contiguous ones, though still faster than ``pandas.util.hash_pandas_object``. Other pandas
columns are converted to Arrow one at a time. The implementation assumes a little-endian host
and refuses to run on a big-endian one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import xxhash

from diag_assets.core.errors import DiagInputError
from diag_assets.core.hashing.digests import combine_digests, u64le, update_framed
from diag_assets.core.hashing.streams import ColumnStreams, feed_arrow_chunk, feed_blocks

HASH_VERSION = "diag-table-hash/v1"

_COLUMN_DOMAIN = f"{HASH_VERSION}/column".encode()
_TABLE_DOMAIN = f"{HASH_VERSION}/table"


@dataclass(frozen=True)
class TableHash:
    """The canonical hash of a table.

    Attributes:
        digest: xxh3_128 of the whole table, 32 lowercase hex characters.
        columns: Column name to that column's own digest, in column order.
        rows: Number of rows.
    """

    digest: str
    columns: dict[str, str]
    rows: int

    def __hash__(self) -> int:
        # The digest covers every field, and the dict field would make the generated hash fail.
        return hash(self.digest)

    def diverging_columns(self, other: TableHash) -> list[str]:
        """Names the columns that make two hashes differ.

        A column diverges when its digest differs between the two tables, when it exists in
        only one of them, or when the shared columns are in a different order and it sits at a
        position where the two orders disagree. Two hashes of tables with the same number of
        rows have equal digests exactly when this list is empty.

        Args:
            other: The hash to compare with.

        Returns:
            Diverging names: this table's columns in its order, then the columns only ``other``
            has, in its order.
        """
        mine = [name for name in self.columns if name in other.columns]
        theirs = [name for name in other.columns if name in self.columns]
        moved = {
            name for pair in zip(mine, theirs, strict=True) if pair[0] != pair[1] for name in pair
        }
        out = [
            name
            for name, digest in self.columns.items()
            if name in moved or other.columns.get(name) != digest
        ]
        out.extend(name for name in other.columns if name not in self.columns)
        return out


def canonical_hash(table: pd.DataFrame | pa.Table | pa.RecordBatch) -> TableHash:
    """Computes the canonical content hash of a table (see the module docstring for the spec).

    Args:
        table: The table. A DataFrame's index is ignored; so are the pandas index columns of an
            Arrow table made from a DataFrame.

    Returns:
        The table digest, every column's digest, and the row count.

    Raises:
        ValueError: If two columns share a name or a column's type is not supported.
        TypeError: If ``table`` is not a DataFrame, Table or RecordBatch.
        NotImplementedError: On a big-endian host.
    """
    if sys.byteorder != "little":
        raise NotImplementedError("canonical_hash assumes a little-endian host.")
    if isinstance(table, pd.DataFrame):
        names = [str(label) for label in table.columns]
        rows = len(table.index)
        _check_unique(names)
        # items() yields columns by position and is the cheapest public way to get them.
        digests = [
            _hash_pandas_column(name, series, rows)
            for name, (_, series) in zip(names, table.items(), strict=True)
        ]
    elif isinstance(table, pa.Table | pa.RecordBatch):
        arrow_table = _drop_pandas_index(table)
        names = list(arrow_table.schema.names)
        rows = int(arrow_table.num_rows)
        _check_unique(names)
        digests = [
            _hash_arrow_column(name, _chunks(arrow_table.column(position)), rows)
            for position, name in enumerate(names)
        ]
    else:
        raise TypeError(
            f"canonical_hash takes a pandas.DataFrame, pyarrow.Table or pyarrow.RecordBatch, "
            f"not {type(table).__name__}."
        )
    header = [str(rows), str(len(names))]
    for name, (type_name, digest) in zip(names, digests, strict=True):
        header.extend((name, type_name, digest))
    return TableHash(
        digest=combine_digests(_TABLE_DOMAIN, *header),
        columns={name: digest for name, (_, digest) in zip(names, digests, strict=True)},
        rows=rows,
    )


def _column_digest(streams: ColumnStreams, name: str, type_name: str) -> str:
    hasher = xxhash.xxh3_128()
    update_framed(hasher, _COLUMN_DOMAIN)
    update_framed(hasher, name.encode())
    update_framed(hasher, type_name.encode())
    hasher.update(u64le(streams.rows))
    hasher.update(u64le(streams.null_count))
    hasher.update(streams.values.digest())
    hasher.update(streams.lengths.digest())
    hasher.update(streams.nulls.digest())
    return hasher.hexdigest()


def _hash_pandas_column(name: str, series: pd.Series, rows: int) -> tuple[str, str]:
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        # Numeric numpy columns skip Arrow: from_pandas scans for NaN and may copy.
        type_name = _canonical_type(name, _arrow_type_of_numpy(name, dtype))
        values = series.to_numpy(copy=False)
        if dtype.itemsize > 1 and not dtype.isnative:
            values = values.astype(dtype.newbyteorder("<"))
        streams = ColumnStreams()
        if dtype.kind == "f":
            feed_blocks(streams.values, values, "f")
        elif dtype.kind == "b":
            feed_blocks(streams.values, values.view(np.uint8), "b")
        else:
            feed_blocks(streams.values, values, "")
        streams.advance(len(values))
        return type_name, _column_digest(streams, name, type_name)
    try:
        converted = pa.array(series, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise DiagInputError(
            f"Column {name!r} (pandas dtype {dtype}) cannot be converted to Arrow for hashing: "
            f"{exc}",
            "Cast it to a numeric, bool, string, datetime or categorical dtype first.",
        ) from exc
    return _hash_arrow_column(name, _chunks(converted), rows)


def _hash_arrow_column(name: str, chunks: Sequence[pa.Array], rows: int) -> tuple[str, str]:
    arrow_type = chunks[0].type if chunks else pa.null()
    type_name = _canonical_type(name, arrow_type)
    streams = ColumnStreams()
    for chunk in chunks:
        if len(chunk):
            feed_arrow_chunk(streams, chunk)
        streams.advance(len(chunk))
    if streams.rows != rows:
        raise ValueError(f"Column {name!r} has {streams.rows} rows, the table {rows}.")
    return type_name, _column_digest(streams, name, type_name)


# --- types and names -----------------------------------------------------------------------


def _canonical_type(name: str, arrow_type: pa.DataType) -> str:
    types = pa.types
    if types.is_string(arrow_type) or types.is_large_string(arrow_type):
        return "utf8"
    if types.is_string_view(arrow_type):
        return "utf8"
    if types.is_binary(arrow_type) or types.is_large_binary(arrow_type):
        return "binary"
    if types.is_binary_view(arrow_type):
        return "binary"
    if types.is_dictionary(arrow_type):
        values = _canonical_type(name, arrow_type.value_type)
        return f"dictionary<values={values}, ordered={int(arrow_type.ordered)}>"
    supported = (
        types.is_null,
        types.is_boolean,
        types.is_integer,
        types.is_floating,
        types.is_date,
        types.is_time,
        types.is_timestamp,
        types.is_duration,
        types.is_decimal,
        types.is_fixed_size_binary,
    )
    if isinstance(arrow_type, pa.BaseExtensionType) or not any(
        check(arrow_type) for check in supported
    ):
        raise DiagInputError(
            f"Column {name!r} has Arrow type {arrow_type}, which canonical_hash does not support.",
            "Convert it to a numeric, bool, string, binary, temporal, decimal or dictionary "
            "column (for example serialize nested values to JSON strings) before hashing.",
        )
    return str(arrow_type)


def _arrow_type_of_numpy(name: str, dtype: np.dtype) -> pa.DataType:
    try:
        return pa.from_numpy_dtype(dtype)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise DiagInputError(
            f"Column {name!r} has numpy dtype {dtype}, which Arrow cannot represent.",
            "Cast it to float64 (or another Arrow-compatible dtype) before hashing.",
        ) from exc


def _chunks(column: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks == 0:
            # An empty ChunkedArray still has a type; an empty chunk carries it.
            return [pa.array([], type=column.type)]
        return list(column.chunks)
    return [column]


def _check_unique(names: list[str]) -> None:
    seen: set[str] = set()
    duplicates = sorted({name for name in names if name in seen or seen.add(name)})
    if duplicates:
        raise DiagInputError(
            f"The table has more than one column named {', '.join(map(repr, duplicates))}, so "
            "its content hash would be ambiguous.",
            "Rename the columns so every name (as text) is unique.",
        )


def _drop_pandas_index(table: pa.Table | pa.RecordBatch) -> pa.Table | pa.RecordBatch:
    metadata = table.schema.metadata or {}
    raw = metadata.get(b"pandas")
    if raw is None:
        return table
    try:
        index_columns = json.loads(raw).get("index_columns", [])
    except (ValueError, AttributeError):
        return table
    # Range indexes are stored as dicts (metadata only); named entries are real columns.
    drop = {entry for entry in index_columns if isinstance(entry, str)}
    keep = [i for i, name in enumerate(table.schema.names) if name not in drop]
    if len(keep) == table.num_columns:
        return table
    return table.select(keep)
