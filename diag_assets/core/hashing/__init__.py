"""Canonical content hashes: of tables, JSON documents, files and byte strings.

Every digest in this package is an xxh3_128 digest (``xxhash.xxh3_128``, seed 0) written as 32
lowercase hex characters. Integers inside hashed byte streams are little-endian.

* :mod:`~diag_assets.core.hashing.digests`: byte strings, files and JSON documents, and digests
  combined under a domain tag; the framing is specified there.
* :mod:`~diag_assets.core.hashing.table`: the canonical table hash (``diag-table-hash/v1``) of a
  DataFrame or Arrow table, with a digest per column; its docstring is the spec.
* :mod:`~diag_assets.core.hashing.streams`: how a column's values are written into the byte
  streams the table hash digests.
"""
