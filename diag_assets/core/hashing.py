"""Canonical content hashes: of tables, JSON documents, files and byte strings.

Every digest in this module is an xxh3_128 digest (``xxhash.xxh3_128``, seed 0) written as 32
lowercase hex characters. Integers inside hashed byte streams are little-endian.

Framing
-------
``frame(b)`` is ``u64le(len(b)) || b``. Text is encoded as UTF-8 before framing.

* :func:`bytes_digest` and :func:`file_digest` hash the raw bytes (no framing), so the digest of
  a file equals the digest of its contents.
* :func:`combine_digests` hashes ``frame(domain) || u64le(len(parts)) || frame(part_1) || ...``.
  Length prefixes make the split unambiguous: ``("ab", "c")`` and ``("a", "bc")`` differ, and the
  domain keeps digests made for different purposes apart.
* :func:`hash_json` hashes the UTF-8 bytes of ``json.dumps(obj, sort_keys=True,
  separators=(",", ":"), ensure_ascii=False, allow_nan=False)``. NaN and infinities have no JSON
  form and raise :class:`ValueError`; JSON turns dict keys into strings, so ``{1: x}`` and
  ``{"1": x}`` hash alike.

The canonical table hash (version ``diag-table-hash/v1``)
---------------------------------------------------------
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
import math
import os
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from diag_assets.core.errors import DiagInputError

HASH_VERSION = "diag-table-hash/v1"

_COLUMN_DOMAIN = f"{HASH_VERSION}/column".encode()
_TABLE_DOMAIN = f"{HASH_VERSION}/table"
# 256 KiB keeps a block in L2 between the NaN check and the hash; fastest of 32 KiB..1 MiB here.
_BLOCK_BYTES = 1 << 18
_U64 = struct.Struct("<Q")
# Canonical quiet NaN per float width, as the unsigned integer with the same bits.
_CANONICAL_NAN: dict[int, tuple[type[np.unsignedinteger], int]] = {
    2: (np.uint16, 0x7E00),
    4: (np.uint32, 0x7FC00000),
    8: (np.uint64, 0x7FF8000000000000),
}


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


def bytes_digest(data: bytes) -> str:
    """Hashes a byte string.

    Args:
        data: The bytes (any object supporting the buffer protocol).

    Returns:
        xxh3_128 hex digest of the bytes.
    """
    return xxhash.xxh3_128(data).hexdigest()


def file_digest(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hashes a file's bytes without loading it whole.

    Args:
        path: The file.
        chunk_bytes: Read size; any positive value gives the same digest.

    Returns:
        xxh3_128 hex digest, equal to ``bytes_digest`` of the file's contents.

    Raises:
        ValueError: If ``chunk_bytes`` is not positive.
    """
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}.")
    hasher = xxhash.xxh3_128()
    buffer = bytearray(chunk_bytes)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while size := handle.readinto(buffer):
            hasher.update(view[:size])
    return hasher.hexdigest()


def combine_digests(domain: str, *parts: str) -> str:
    """Hashes a sequence of strings under a domain tag.

    Args:
        domain: What the digest is for; equal parts under different domains hash apart.
        *parts: The strings to combine, typically other digests; order matters.

    Returns:
        xxh3_128 hex digest of ``frame(domain) || u64le(len(parts)) || frame(part) ...``.
    """
    hasher = xxhash.xxh3_128()
    _update_framed(hasher, domain.encode())
    hasher.update(_U64.pack(len(parts)))
    for part in parts:
        _update_framed(hasher, part.encode())
    return hasher.hexdigest()


def hash_json(obj: object) -> str:
    """Hashes a JSON-serializable object canonically.

    Args:
        obj: Dicts, lists, strings, numbers, booleans and None.

    Returns:
        xxh3_128 hex digest of the canonical JSON text (sorted keys, no whitespace, UTF-8).

    Raises:
        ValueError: If ``obj`` holds a NaN or infinite float; the message gives its path.
        TypeError: If ``obj`` holds something JSON cannot represent.
    """
    try:
        text = json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as exc:
        where = _find_non_finite(obj, "$")
        if where is None:
            raise
        raise DiagInputError(
            f"hash_json cannot hash the non-finite float at {where}: JSON has no NaN or "
            "infinity, so the digest would not be canonical.",
            "Replace the value with None (or a string such as 'nan') before hashing.",
        ) from exc
    return xxhash.xxh3_128(text.encode()).hexdigest()


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


# --- column hashing -------------------------------------------------------------------------


class _ColumnStreams:
    """The three streaming hashers of one column, plus the counters in its digest."""

    def __init__(self) -> None:
        self.values = xxhash.xxh3_128()
        self.lengths = xxhash.xxh3_128()
        self.nulls = xxhash.xxh3_128()
        self.rows = 0
        self.null_count = 0

    def add_nulls(self, valid: np.ndarray | None) -> None:
        """Records the null slots of the next chunk; call before ``advance``."""
        if valid is None:
            return
        positions = np.flatnonzero(~valid).astype("<u8") + np.uint64(self.rows)
        self.nulls.update(positions.data)
        self.null_count += positions.size

    def advance(self, rows: int) -> None:
        self.rows += rows

    def digest(self, name: str, type_name: str) -> str:
        hasher = xxhash.xxh3_128()
        _update_framed(hasher, _COLUMN_DOMAIN)
        _update_framed(hasher, name.encode())
        _update_framed(hasher, type_name.encode())
        hasher.update(_U64.pack(self.rows))
        hasher.update(_U64.pack(self.null_count))
        hasher.update(self.values.digest())
        hasher.update(self.lengths.digest())
        hasher.update(self.nulls.digest())
        return hasher.hexdigest()


def _hash_pandas_column(name: str, series: pd.Series, rows: int) -> tuple[str, str]:
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        # Numeric numpy columns skip Arrow: from_pandas scans for NaN and may copy.
        type_name = _canonical_type(name, _arrow_type_of_numpy(name, dtype))
        values = series.to_numpy(copy=False)
        if dtype.itemsize > 1 and not dtype.isnative:
            values = values.astype(dtype.newbyteorder("<"))
        streams = _ColumnStreams()
        if dtype.kind == "f":
            _feed_blocks(streams.values, values, "f")
        elif dtype.kind == "b":
            _feed_blocks(streams.values, values.view(np.uint8), "b")
        else:
            _feed_blocks(streams.values, values, "")
        streams.advance(len(values))
        return type_name, streams.digest(name, type_name)
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
    streams = _ColumnStreams()
    for chunk in chunks:
        if len(chunk):
            _feed_arrow_chunk(streams, chunk)
        streams.advance(len(chunk))
    if streams.rows != rows:
        raise ValueError(f"Column {name!r} has {streams.rows} rows, the table {rows}.")
    return type_name, streams.digest(name, type_name)


def _feed_arrow_chunk(streams: _ColumnStreams, chunk: pa.Array) -> None:
    arrow_type = chunk.type
    if pa.types.is_dictionary(arrow_type):
        chunk = chunk.dictionary_decode()
        arrow_type = chunk.type
    if pa.types.is_null(arrow_type):
        return
    if pa.types.is_string_view(arrow_type) or pa.types.is_string(arrow_type):
        chunk = chunk.cast(pa.large_string())
    elif pa.types.is_binary_view(arrow_type) or pa.types.is_binary(arrow_type):
        chunk = chunk.cast(pa.large_binary())
    arrow_type = chunk.type
    valid = _validity(chunk)
    offset, length = chunk.offset, len(chunk)
    buffers = chunk.buffers()

    if pa.types.is_floating(arrow_type):
        width = arrow_type.bit_width // 8
        values = np.frombuffer(buffers[1], dtype=f"<f{width}")[offset : offset + length]
        if valid is not None:
            values = values.copy()
            values[~valid] = np.nan
        _feed_blocks(streams.values, values, "f")
    elif pa.types.is_boolean(arrow_type):
        bits = np.frombuffer(buffers[1], dtype=np.uint8)
        values = np.unpackbits(bits, count=offset + length, bitorder="little")[offset:]
        if valid is not None:
            values[~valid] = 0
        streams.values.update(np.ascontiguousarray(values).data)
        streams.add_nulls(valid)
    elif pa.types.is_large_string(arrow_type) or pa.types.is_large_binary(arrow_type):
        if valid is not None:
            # Null slots may legally own bytes; rebuilding with empty fills drops them.
            empty = b"" if pa.types.is_large_binary(arrow_type) else ""
            chunk = pc.fill_null(chunk, pa.scalar(empty, type=arrow_type))
            offset, buffers = chunk.offset, chunk.buffers()
        offsets = np.frombuffer(buffers[1], dtype="<i8")[offset : offset + length + 1]
        streams.lengths.update(np.diff(offsets).astype("<u8").data)
        start, end = int(offsets[0]), int(offsets[-1])
        if end > start:
            streams.values.update(np.frombuffer(buffers[2], np.uint8)[start:end].data)
        streams.add_nulls(valid)
    else:
        width = _fixed_width(arrow_type)
        raw = np.frombuffer(buffers[1], dtype=np.uint8)[offset * width : (offset + length) * width]
        if valid is not None:
            raw = raw.reshape(length, width).copy()
            raw[~valid] = 0
        streams.values.update(np.ascontiguousarray(raw).data)
        streams.add_nulls(valid)


def _feed_blocks(hasher: xxhash.xxh3_128, values: np.ndarray, kind: str) -> None:
    """Streams a 1-D array into ``hasher`` in cache-sized blocks, canonicalizing each block.

    ``kind`` is ``"f"`` (rewrite NaN), ``"b"`` (force bytes to 0/1) or ``""`` (as is).
    """
    if not kind and values.flags.c_contiguous:
        hasher.update(values.data)
        return
    update = hasher.update
    # A ufunc reduction allocates nothing and propagates NaN, so a NaN-free block (the common
    # case) is read once more from cache; np.max's wrapper costs more than the reduction here.
    reduce_max = np.maximum.reduce
    step = max(1, _BLOCK_BYTES // values.itemsize)
    scratch = _BlockScratch(step, values.dtype)
    for start in range(0, len(values), step):
        block = values[start : start + step]
        if not block.flags.c_contiguous:
            block = scratch.contiguous(block)
        if kind == "f":
            peak = reduce_max(block)
            if peak != peak:
                block = scratch.canonical_nan(block)
        elif kind == "b" and reduce_max(block) > 1:
            # numpy bools are 0/1 unless other bytes were viewed as bool.
            block = (block != 0).view(np.uint8)
        update(block.data)


class _BlockScratch:
    """Reusable per-column block buffers.

    Blocks are above glibc's mmap threshold, so a fresh array per block would page-fault on
    every block; reusing buffers keeps the slow paths within a few times the fast one.
    """

    def __init__(self, size: int, dtype: np.dtype) -> None:
        self._size = size
        self._dtype = dtype
        self._buffers: dict[str, np.ndarray] = {}

    def _buffer(self, role: str, dtype: np.dtype | type, length: int) -> np.ndarray:
        buffer = self._buffers.get(role)
        if buffer is None:
            buffer = self._buffers[role] = np.empty(self._size, dtype=dtype)
        return buffer[:length]

    def contiguous(self, block: np.ndarray) -> np.ndarray:
        out = self._buffer("contiguous", self._dtype, len(block))
        np.copyto(out, block)
        return out

    def canonical_nan(self, block: np.ndarray) -> np.ndarray:
        """Returns the block's bits with every NaN replaced by the canonical quiet NaN."""
        unsigned, bits = _CANONICAL_NAN[block.itemsize]
        length = len(block)
        raw = block.view(unsigned)
        mask = np.isnan(block, out=self._buffer("mask", np.bool_, length))
        out = self._buffer("out", unsigned, length)
        if np.count_nonzero(mask) * 16 <= length:
            # Sparse NaN: a scatter to the few positions beats any full-width select.
            np.copyto(out, raw)
            out[np.flatnonzero(mask)] = bits
            return out
        # Dense NaN: masked assignment branches per element, so select bitwise instead:
        # out = raw ^ ((raw ^ bits) & all_ones_where_nan).
        select = np.multiply(
            mask, unsigned(np.iinfo(unsigned).max), out=self._buffer("select", unsigned, length)
        )
        np.bitwise_xor(raw, unsigned(bits), out=out)
        np.bitwise_and(out, select, out=out)
        np.bitwise_xor(out, raw, out=out)
        return out


def _validity(chunk: pa.Array) -> np.ndarray | None:
    if chunk.null_count == 0:
        return None
    bits = np.frombuffer(chunk.buffers()[0], dtype=np.uint8)
    unpacked = np.unpackbits(bits, count=chunk.offset + len(chunk), bitorder="little")
    return unpacked[chunk.offset :].view(np.bool_)


def _fixed_width(arrow_type: pa.DataType) -> int:
    if pa.types.is_fixed_size_binary(arrow_type):
        return arrow_type.byte_width
    return arrow_type.bit_width // 8


# --- types, names, framing -----------------------------------------------------------------


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


def _update_framed(hasher: xxhash.xxh3_128, data: bytes) -> None:
    hasher.update(_U64.pack(len(data)))
    hasher.update(data)


def _find_non_finite(obj: object, path: str) -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return f"{path} ({obj!r})"
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = _find_non_finite(key, f"{path} key {key!r}")
            if found is None:
                found = _find_non_finite(value, f"{path}[{key!r}]")
            if found is not None:
                return found
    elif isinstance(obj, list | tuple):
        for index, value in enumerate(obj):
            found = _find_non_finite(value, f"{path}[{index}]")
            if found is not None:
                return found
    return None
