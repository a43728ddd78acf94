"""Digests of byte strings, files and JSON documents, and digests combined under a domain.

Every digest is an xxh3_128 digest (``xxhash.xxh3_128``, seed 0) written as 32 lowercase hex
characters. Integers inside hashed byte streams are little-endian.

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
"""

import json
import math
import os
import struct

import xxhash

from diag_assets.core.errors import DiagInputError

_U64 = struct.Struct("<Q")


def u64le(value: int) -> bytes:
    """Returns an unsigned integer as the 8 little-endian bytes the hashed streams use."""
    return _U64.pack(value)


def update_framed(hasher: xxhash.xxh3_128, data: bytes) -> None:
    """Feeds ``frame(data)``, i.e. ``u64le(len(data)) || data``, to a streaming hasher."""
    hasher.update(_U64.pack(len(data)))
    hasher.update(data)


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
    update_framed(hasher, domain.encode())
    hasher.update(_U64.pack(len(parts)))
    for part in parts:
        update_framed(hasher, part.encode())
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
