"""How a column's values are written into the byte streams the canonical table hash digests.

The encoding of each Arrow type (fixed-width bytes, canonical NaN, unpacked bools, string bytes
with their lengths, null positions) is specified under "Column streams" in
:mod:`~diag_assets.core.hashing.table`; numeric pandas columns are streamed straight from their
numpy buffers in cache-sized blocks.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

# 256 KiB keeps a block in L2 between the NaN check and the hash; fastest of 32 KiB..1 MiB here.
_BLOCK_BYTES = 1 << 18
# Canonical quiet NaN per float width, as the unsigned integer with the same bits.
_CANONICAL_NAN: dict[int, tuple[type[np.unsignedinteger], int]] = {
    2: (np.uint16, 0x7E00),
    4: (np.uint32, 0x7FC00000),
    8: (np.uint64, 0x7FF8000000000000),
}


class ColumnStreams:
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
        """Counts the rows of the chunk just fed."""
        self.rows += rows


def feed_arrow_chunk(streams: ColumnStreams, chunk: pa.Array) -> None:
    """Writes one non-empty Arrow chunk into a column's streams."""
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
        feed_blocks(streams.values, values, "f")
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


def feed_blocks(hasher: xxhash.xxh3_128, values: np.ndarray, kind: str) -> None:
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
