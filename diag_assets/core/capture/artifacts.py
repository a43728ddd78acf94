"""Stored captures: write a captured fold and read it back verified.

Where things are decided:

- :func:`capture_key` — the hash of everything a capture depends on, the mode included;
- :func:`replay_cell` — runs the capture mode: prep and the trial loop (``full_replay``),
  prep alone (``dataset_only``) or prep and one trial (``single_fit``);
- :class:`CaptureArtifacts` — writes a capture (data files first, ``manifest.json`` last, so
  a capture without a manifest is never visible) and reads one back, verifying the bytes of
  every file and the canonical hashes of X and y before handing them out.

Each capture attempt writes its data files in a folder of its own,
``captures/<key>/<attempt>/``; ``captures/<key>/manifest.json`` is the one visibility point
and names the attempt whose files it vouches for (:meth:`CaptureArtifacts.file_key`). So a
writer that lost its lease and still runs only ever writes its own folder: it can never
overwrite or mix into the files another attempt published. Captures stored before attempts
have their files directly in ``captures/<key>/`` (an empty ``attempt``) and stay readable.
Folders no manifest names are a dead writer's leftovers, collected by the capture GC
(:meth:`CaptureArtifacts.leftovers`).

Artifacts are Parquet and JSON, never pickle: a shared cache must not run code on load.
"""

import io
import re
import uuid
from collections.abc import Callable

import pandas as pd
import pyarrow
import pyarrow.parquet as pq

from diag_assets.core.capture.manifest import (
    ATTEMPT_PATTERN,
    MANIFEST_FILE,
    MODE_FILES,
    TRACE_FILE,
    TRIAL_LOG_FILE,
    X_FILE,
    Y_FILE,
    CaptureManifest,
    FileEntry,
    parse_manifest,
)
from diag_assets.core.capture.replay import (
    CapturedFold,
)
from diag_assets.core.capture.trace import ReplayTrace
from diag_assets.core.hashing.digests import bytes_digest
from diag_assets.core.hashing.table import canonical_hash
from diag_assets.core.recipe.prep import FoldData
from diag_assets.core.recipe.protocol import TrialLog
from diag_assets.core.storage.blob import BlobStore


class CaptureVerificationError(RuntimeError):
    """A stored capture does not match its manifest: its bytes must not be used."""


def new_attempt() -> str:
    """A new capture attempt id (32 hex digits): the folder of one attempt's data files."""
    return uuid.uuid4().hex


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table = pyarrow.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


class CaptureArtifacts:
    """Captures in a blob store under ``captures/<capture_key>/``."""

    def __init__(self, store: BlobStore, prefix: str = "captures") -> None:
        self.store = store
        self.prefix = prefix

    def key_of(self, capture_key: str, name: str) -> str:
        """Store key of a file directly in a capture's folder: its manifest.

        Data files live where the manifest says: use :meth:`file_key` for them.
        """
        return f"{self.folder(capture_key)}/{name}"

    def folder(self, capture_key: str) -> str:
        """Store prefix of everything of one capture key: its manifest and attempt folders."""
        return f"{self.prefix}/{capture_key}"

    def file_key(self, manifest: CaptureManifest, name: str) -> str:
        """Store key of one data file of the capture ``manifest`` describes.

        The file is in the manifest's attempt folder, or directly in the capture's folder for
        a capture stored before attempts (empty ``attempt``).
        """
        if manifest.attempt:
            return self.key_of(manifest.capture_key, f"{manifest.attempt}/{name}")
        return self.key_of(manifest.capture_key, name)

    def uri(self, capture_key: str) -> str:
        """URI of a capture's folder (its manifest)."""
        return self.store.uri(self.key_of(capture_key, MANIFEST_FILE))

    def write(
        self,
        captured: CapturedFold,
        *,
        attempt: str | None = None,
        before_manifest: Callable[[], None] | None = None,
    ) -> CaptureManifest:
        """Store a capture: data files, then the manifest that makes it visible.

        Args:
            captured: The captured fold.
            attempt: The attempt whose folder gets the data files; a new one if None.
            before_manifest: Called between the data files and the manifest; the manifest is
                written only if it returns (the cache proves its lease here).

        Returns:
            The manifest written.
        """
        manifest = self.write_files(captured, attempt or new_attempt())
        if before_manifest is not None:
            before_manifest()
        self.publish(manifest)
        return manifest

    def write_files(self, captured: CapturedFold, attempt: str) -> CaptureManifest:
        """Store the data files of ``captured`` in the folder of ``attempt``.

        Nothing becomes visible: the returned manifest, which names the attempt and vouches
        for the files, is stored only by :meth:`publish`.

        Raises:
            ValueError: the attempt id is not one (see :func:`new_attempt`), or the capture
                holds other files than its mode stores.
        """
        payloads = {
            X_FILE: _parquet_bytes(captured.data.X),
            Y_FILE: _parquet_bytes(captured.data.y),
        }
        if captured.trial_log is not None:
            payloads[TRIAL_LOG_FILE] = captured.trial_log.model_dump_json().encode()
        if captured.trace is not None:
            payloads[TRACE_FILE] = captured.trace.model_dump_json().encode()
        expected = MODE_FILES[captured.mode]
        if set(payloads) != expected:
            raise ValueError(
                f"A {captured.mode} capture stores {sorted(expected)}, not {sorted(payloads)}."
            )
        if re.fullmatch(ATTEMPT_PATTERN, attempt) is None:
            raise ValueError(f"{attempt!r} is not a capture attempt id: use new_attempt().")
        manifest = captured.manifest.model_copy(update={"attempt": attempt, "files": {}})
        files = {}
        for name, payload in payloads.items():
            self.store.write_bytes(self.file_key(manifest, name), payload)
            files[name] = FileEntry(bytes=len(payload), digest=bytes_digest(payload))
        return manifest.model_copy(update={"files": files})

    def publish(self, manifest: CaptureManifest) -> None:
        """Store ``manifest``: from now on readers see the capture it describes."""
        self.store.write_bytes(
            self.key_of(manifest.capture_key, MANIFEST_FILE), manifest.model_dump_json().encode()
        )

    def read_manifest(self, capture_key: str) -> CaptureManifest | None:
        """The manifest of a capture, or ``None`` if no complete capture has that key.

        Raises:
            CaptureVerificationError: a manifest is stored but is not one (not JSON, fields
                missing or of the wrong type): the capture cannot be trusted.
        """
        key = self.key_of(capture_key, MANIFEST_FILE)
        try:
            raw = self.store.read_bytes(key)
        except FileNotFoundError:
            return None
        try:
            return parse_manifest(raw)
        except ValueError as error:
            raise CaptureVerificationError(
                f"Capture {capture_key}: its manifest {self.store.uri(key)} {error}. Its bytes "
                "are not used."
            ) from None

    def _verified_bytes(self, manifest: CaptureManifest, name: str) -> bytes:
        entry = manifest.files.get(name)
        if entry is None:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key} has no entry for {name} in its manifest."
            )
        try:
            payload = self.store.read_bytes(self.file_key(manifest, name))
        except FileNotFoundError as missing:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key} lists {name} but the file is missing."
            ) from missing
        digest = bytes_digest(payload)
        if len(payload) != entry.bytes or digest != entry.digest:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key}: {name} does not match its manifest "
                f"({len(payload)} bytes, digest {digest}; expected {entry.bytes} bytes, "
                f"digest {entry.digest}). Its bytes are not used."
            )
        return payload

    def verify(self, manifest: CaptureManifest) -> None:
        """Stream every file of a capture through the hash and compare with the manifest.

        Cheaper than :meth:`load` (nothing is parsed): the warm path's proof that the stored
        bytes are the ones the manifest vouches for.

        Raises:
            CaptureVerificationError: a file is missing or differs from the manifest.
        """
        if set(manifest.files) != MODE_FILES[manifest.mode]:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key} lists {sorted(manifest.files)}, not the files "
                f"of a {manifest.mode} capture."
            )
        for name, entry in manifest.files.items():
            stored = self.stored_file(manifest, name)
            if stored != entry:
                raise CaptureVerificationError(
                    f"Capture {manifest.capture_key}: {name} does not match its manifest "
                    f"({stored.bytes} bytes, digest {stored.digest}; expected {entry.bytes} "
                    f"bytes, digest {entry.digest}). Its bytes are not used."
                )

    def stored_file(self, manifest: CaptureManifest, name: str) -> FileEntry:
        """The size and digest of one stored file of a capture, hashed now from the store.

        The file is streamed through the hash, nothing is parsed; compare the result with
        ``manifest.files[name]`` to know whether the stored bytes are the ones the manifest
        vouches for (:meth:`verify` does so for every file).

        Raises:
            CaptureVerificationError: the file is missing from the store.
        """
        try:
            size, digest = self.store.digest(self.file_key(manifest, name))
        except FileNotFoundError as missing:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key} lists {name} but the file is missing."
            ) from missing
        return FileEntry(bytes=size, digest=digest)

    def delete(self, capture_key: str) -> int:
        """Remove a capture, manifest first so it is invisible before its data goes.

        Every attempt folder of the key goes with it.
        """
        self.store.delete(self.key_of(capture_key, MANIFEST_FILE))
        keys = self.store.list_keys(self.folder(capture_key))
        for key in keys:
            self.store.delete(key)
        return len(keys)

    def stored_keys(self) -> list[str]:
        """The capture keys that have anything in the store (files or temp files), sorted."""
        found = self.store.list_keys(self.prefix)
        found += self.store.temp_files(self.prefix, older_than_s=0.0)
        keys = set()
        for key in found:
            parts = key.removeprefix(f"{self.prefix}/").split("/")
            if len(parts) > 1:
                keys.add(parts[0])
        return sorted(keys)

    def leftovers(self, capture_key: str, *, keep: CaptureManifest | None) -> list[str]:
        """Store keys under ``capture_key``'s folder that ``keep`` does not name, sorted.

        With ``keep`` the published manifest, that is every attempt folder but the one it
        names (and files of a capture stored before attempts, once a newer attempt replaced
        it); with ``keep=None``, everything of the key. Temp files are not included (see
        :meth:`stale_temp_files`). Only the caller knows whether no live writer of the key
        can be writing (it holds the key's lease).
        """
        named = {self.key_of(capture_key, MANIFEST_FILE)} if keep is not None else set()
        if keep is not None:
            named |= {self.file_key(keep, name) for name in keep.files}
        return [key for key in self.store.list_keys(self.folder(capture_key)) if key not in named]

    def stale_temp_files(self, capture_key: str, *, older_than_s: float) -> list[str]:
        """Temp files that interrupted writes left under ``capture_key``'s folder.

        Only those untouched for ``older_than_s`` seconds: a younger one may be a live write's.
        """
        return self.store.temp_files(self.folder(capture_key), older_than_s=older_than_s)

    def load(self, manifest: CaptureManifest) -> CapturedFold:
        """Read a capture back, verifying file bytes and the canonical hashes of X and y.

        Raises:
            CaptureVerificationError: a file is missing or differs from the manifest.
        """
        x = pd.read_parquet(io.BytesIO(self._verified_bytes(manifest, X_FILE)))
        y = pd.read_parquet(io.BytesIO(self._verified_bytes(manifest, Y_FILE)))
        trial_log = None
        if TRIAL_LOG_FILE in manifest.files:
            raw_log = self._verified_bytes(manifest, TRIAL_LOG_FILE)
            trial_log = TrialLog.model_validate_json(raw_log)
        for what, frame, expected in (("X", x, manifest.x_hash), ("y", y, manifest.y_hash)):
            actual = canonical_hash(frame).digest
            if actual != expected:
                raise CaptureVerificationError(
                    f"Capture {manifest.capture_key}: canonical hash of {what} is {actual}, "
                    f"the manifest says {expected}. Its contents are not used."
                )
        if len(x) != manifest.rows or list(x.columns) != manifest.feature_names:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key}: X has {len(x)} rows and columns "
                f"{list(x.columns)[:5]}..., the manifest says {manifest.rows} rows and "
                f"{manifest.feature_names[:5]}.... Its contents are not used."
            )
        log_hash = None if trial_log is None else trial_log.content_hash()
        if log_hash != manifest.trial_log_hash:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key}: the trial log does not match its hash."
            )
        data = FoldData(X=x, y=y, n_train=manifest.n_train, feature_names=tuple(x.columns))
        return CapturedFold(data=data, trial_log=trial_log, manifest=manifest)

    def load_trace(self, manifest: CaptureManifest) -> ReplayTrace | None:
        """The verified replay trace of a capture, or ``None`` if it has none.

        Raises:
            CaptureVerificationError: the trace differs from the manifest, or was recorded
                by a replay other than the one whose trial log the capture holds.
        """
        if TRACE_FILE not in manifest.files:
            return None
        trace = ReplayTrace.model_validate_json(self._verified_bytes(manifest, TRACE_FILE))
        if trace.trial_log_hash != manifest.trial_log_hash:
            raise CaptureVerificationError(
                f"Capture {manifest.capture_key}: its replay trace belongs to another replay."
            )
        return trace
