"""The capture cache: a cell's captured fold from the cache, or captured exactly once.

Open it once per unit of work and close it after (``with capture_cache.open() as cache:`` in
the Dagster layer, ``with CaptureService(...) as cache:`` in the core); everything a caller
asks of the cache goes through it: :meth:`CaptureService.get` serves a request,
:meth:`~CaptureService.is_warm` tells whether a request would be served without a replay
(the re-audit sensor's test), :meth:`~CaptureService.entries` lists the catalog and
:meth:`~CaptureService.collect_garbage` retires old captures.

The warm path (HIT) never replays and, with the drift check off, never reads market data:
it finds the newest complete capture for the request in the catalog, proves its manifest
(:mod:`~diag_assets.core.capture.proof`), streams its files through the hash and returns it.
The cold path (MISS) needs an operator's approval, takes the cell's single-flight lease,
checks the catalog again (another run may have finished while we waited: WAITED), adopts a
stored capture whose commit was lost if it proves itself, or begins a new *attempt*,
replays, writes the data files into the attempt's folder, then the manifest, and commits.
It is fenced (:mod:`~diag_assets.core.capture.fencing`): a writer that lost its lease
publishes nothing more. Every step emits a :class:`CaptureEvent`.
"""

import random
import time
from collections.abc import Collection
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

from diag_assets.core.capture import events as ev
from diag_assets.core.capture.artifacts import (
    CaptureArtifacts,
    CaptureVerificationError,
    new_attempt,
)
from diag_assets.core.capture.events import CaptureEvent, EventSink
from diag_assets.core.capture.fencing import fail_attempt, prove_lease, report_fenced
from diag_assets.core.capture.gc import GcReport, run_gc
from diag_assets.core.capture.keys import check_cell_universe, request_key
from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.capture.modes import CaptureConfig, CaptureMode
from diag_assets.core.capture.outcomes import (
    CaptureOutcome,
    CaptureResult,
    ColdCaptureRequiresOperator,
    no_capture_reason,
)
from diag_assets.core.capture.proof import prove_adoptable, prove_served
from diag_assets.core.capture.replay import (
    CaptureParityFailed,
    PreparedCell,
    prepare_cell,
    replay_cell,
)
from diag_assets.core.capture.source_drift import DriftPolicy
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import FoldSpec
from diag_assets.core.market_data.sources import MarketDataSource
from diag_assets.core.recipe.code_version import recipe_code_version
from diag_assets.core.recipe.protocol import Recipe
from diag_assets.core.storage.catalog.catalog import CaptureCatalog
from diag_assets.core.storage.catalog.model import CaptureFenced, CaptureStatus, CatalogEntry
from diag_assets.core.storage.lease.base import Lease, LeaseGrant, LeaseLost


class CaptureService:
    """The capture cache: artifacts + catalog + single-flight lease + drift policy."""

    def __init__(
        self,
        artifacts: CaptureArtifacts,
        catalog: CaptureCatalog,
        lease: Lease,
        *,
        lease_wait_s: float = 600.0,
        drift: DriftPolicy | None = None,
        parity_check_rate: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= parity_check_rate <= 1.0:
            raise DiagInputError(
                f"parity_check_rate={parity_check_rate} is not a share.",
                "set it between 0 (never) and 1 (every dataset_only capture).",
            )
        self.artifacts = artifacts
        self.catalog = catalog
        self.lease = lease
        self.lease_wait_s = lease_wait_s
        self.drift = drift or DriftPolicy()
        self.parity_check_rate = parity_check_rate
        self.rng = rng or random.Random()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the catalog and the lease's connections (the cache is unusable after)."""
        try:
            self.catalog.close()
        finally:
            self.lease.close()

    def request_key(
        self,
        cell: CellRef,
        source: MarketDataSource,
        fold_spec: FoldSpec,
        recipe: Recipe,
        config: CaptureConfig,
    ) -> str:
        """The key a request is looked up by (see :func:`~.keys.request_key`).

        Raises:
            DiagInputError: the cell is not in the source's universe.
        """
        check_cell_universe(cell, source.universe)
        return request_key(cell, recipe_code_version(recipe), fold_spec, config)

    def is_warm(
        self,
        cell: CellRef,
        source: MarketDataSource,
        fold_spec: FoldSpec,
        recipe: Recipe,
        config: CaptureConfig,
    ) -> bool:
        """Whether the catalog holds a complete capture for this request.

        Reads the catalog only: no market data, no files. :meth:`get` still verifies the
        capture's files before serving it, and replays if they fail.

        Raises:
            DiagInputError: the cell is not in the source's universe.
        """
        wanted = self.request_key(cell, source, fold_spec, recipe, config)
        return self.catalog.latest_complete(wanted) is not None

    def entries(
        self, *, cell_ref: str | None = None, status: CaptureStatus | None = None
    ) -> list[CatalogEntry]:
        """The catalog's entries matching every filter given, oldest first."""
        return self.catalog.entries(cell_ref=cell_ref, status=status)

    def drift_counts(self, since: datetime | None = None) -> tuple[int, int]:
        """``(checks, drifted)``: the drift checks recorded since ``since`` (all if None)."""
        return self.catalog.drift_counts(since)

    def collect_garbage(
        self,
        *,
        now: datetime,
        ttl: timedelta,
        keep_newest: int,
        in_use: set[str],
        dry_run: bool = False,
        events: EventSink | None = None,
        keep_cells: Collection[str] = frozenset(),
    ) -> GcReport:
        """Retire captures unused for ``ttl`` (see :mod:`~diag_assets.core.capture.gc`)."""
        return run_gc(
            self.catalog,
            self.artifacts,
            lease=self.lease,
            now=now,
            ttl=ttl,
            keep_newest=keep_newest,
            in_use=in_use,
            dry_run=dry_run,
            events=events,
            keep_cells=keep_cells,
        )

    def get(
        self,
        cell: CellRef,
        source: MarketDataSource,
        fold_spec: FoldSpec,
        recipe: Recipe,
        config: CaptureConfig,
        *,
        allow_cold: bool,
        run_id: str | None = None,
        events: EventSink | None = None,
    ) -> CaptureResult:
        """Serve one request: HIT, WAITED or MISS, with provenance and events.

        A cold ``dataset_only`` capture trains nothing (at most the one trial of its parity
        check), so it does not need ``allow_cold``; ``full_replay`` and ``single_fit`` do.

        Raises:
            DiagInputError: the request is invalid (checked before anything is read or written).
            ColdCaptureRequiresOperator: a cold capture is needed and ``allow_cold`` is false.
            CaptureParityFailed: a dataset_only capture's parity check failed; nothing stored.
            LeaseTimeout: another run held the cell's lease longer than ``lease_wait_s``.
        """
        started = time.perf_counter()
        seen: list[CaptureEvent] = []

        def emit(name: str, key: str, **fields: object) -> None:
            event = CaptureEvent(name=name, capture_key=key, cell_ref=str(cell), fields=fields)
            seen.append(event)
            if events is not None:
                events(event)

        wanted = self.request_key(cell, source, fold_spec, recipe, config)
        prepared: PreparedCell | None = None

        entry = self.catalog.latest_complete(wanted)
        reason = no_capture_reason(self.catalog.latest(wanted)) if entry is None else ""
        if entry is not None:
            drift_checked = self.drift.should_check(self.rng)
            if drift_checked:
                prepared = prepare_cell(cell, source, fold_spec, recipe, config)
                drifted = prepared.source_version != entry.source_version
                self.catalog.record_drift_check(entry.key, drifted=drifted, cell_ref=str(cell))
                emit(
                    ev.CAPTURE_DRIFT_CHECKED,
                    entry.key,
                    drifted=drifted,
                    policy=str(self.drift),
                    source_version=prepared.source_version,
                )
                if drifted:
                    reason = "its market data changed since it was captured"
                    self.catalog.mark_stale(entry.key, f"source drift: {prepared.source_version}")
                    emit(
                        ev.CAPTURE_DRIFT_DETECTED,
                        entry.key,
                        captured_source_version=entry.source_version,
                        current_source_version=prepared.source_version,
                    )
                    entry = None
            if entry is not None:
                served = self._served(entry, emit)
                if isinstance(served, str):
                    reason = served
                else:
                    manifest, current = served
                    emit(
                        ev.CAPTURE_HIT,
                        entry.key,
                        producing_run_id=entry.producing_run_id,
                        created_at=entry.created_at.isoformat(),
                        use_count=current.use_count,
                    )
                    return CaptureResult(
                        outcome=CaptureOutcome.HIT,
                        manifest=manifest,
                        entry=current,
                        uri=self.artifacts.uri(entry.key),
                        drift_checked=drift_checked,
                        elapsed_s=time.perf_counter() - started,
                        events=seen,
                    )

        if prepared is None:
            prepared = prepare_cell(cell, source, fold_spec, recipe, config)
        if not allow_cold and config.mode is not CaptureMode.DATASET_ONLY:
            emit(ev.CAPTURE_COLD_REFUSED, prepared.key, reason=reason)
            raise ColdCaptureRequiresOperator(cell, reason)
        emit(ev.CAPTURE_MISS, prepared.key, reason=reason, request_key=wanted)
        return self._capture_single_flight(prepared, recipe, wanted, run_id, emit, started, seen)

    def _served(self, entry: CatalogEntry, emit) -> tuple[CaptureManifest, CatalogEntry] | str:
        """The warm path's proof of ``entry``: its manifest and fresh row, or why it is not served.

        The row is touched first, so the GC (which re-reads a row under its lease before it
        retires it) keeps what a reader is proving. A row gone by then, or retired while its
        files were being proven, is a miss, never a crash.
        """
        retired = "its capture was retired by the capture GC while it was being read"
        if not self.catalog.record_use(entry.key):
            return retired
        manifest, problem = self._verified_manifest(entry, emit)
        if manifest is None:
            if self.catalog.get(entry.key) is None:
                return retired
            return f"its stored capture failed verification: {problem}"
        current = self.catalog.get(entry.key)
        if (
            current is None
            or current.status is not CaptureStatus.COMPLETE
            or current.content_hash != manifest.content_hash
        ):
            return retired
        return manifest, current

    def _verified_manifest(self, entry: CatalogEntry, emit) -> tuple[CaptureManifest | None, str]:
        """The entry's manifest once it proved every claim and its files, else why not.

        A capture that fails (no manifest, an unreadable one, a claim that does not hold, a
        file missing or changed) is marked stale with the reason and ``capture_verify_failed``
        is emitted; the caller re-captures it or refuses.
        """
        try:
            manifest = self.artifacts.read_manifest(entry.key)
            if manifest is None:
                raise CaptureVerificationError(f"Capture {entry.key} has no manifest in the store.")
            prove_served(manifest, entry)
            self.artifacts.verify(manifest)
        except CaptureVerificationError as error:
            self.catalog.mark_stale(entry.key, f"verification failed: {error}")
            emit(ev.CAPTURE_VERIFY_FAILED, entry.key, error=str(error))
            return None, str(error)
        return manifest, ""

    def _capture_single_flight(
        self,
        prepared: PreparedCell,
        recipe: Recipe,
        wanted: str,
        run_id: str | None,
        emit,
        started: float,
        seen: list[CaptureEvent],
    ) -> CaptureResult:
        key = prepared.key

        def on_wait(elapsed_s: float) -> None:
            emit(ev.CAPTURE_LEASE_WAITING, key, waited_s=round(elapsed_s, 3))

        with self.lease.hold(key, wait_s=self.lease_wait_s, on_wait=on_wait) as grant:
            emit(
                ev.CAPTURE_LEASE_ACQUIRED,
                key,
                backend=grant.backend,
                waited=grant.waited,
                waited_s=round(grant.waited_s, 3),
            )
            try:
                entry = self.catalog.get(key)
                if entry is not None and entry.status is CaptureStatus.COMPLETE:
                    manifest, _ = self._verified_manifest(entry, emit)
                    if manifest is not None:
                        self.catalog.record_use(key)
                        emit(
                            ev.CAPTURE_WAITED,
                            key,
                            producing_run_id=entry.producing_run_id,
                            waited_s=round(grant.waited_s, 3),
                        )
                        return CaptureResult(
                            outcome=CaptureOutcome.WAITED,
                            manifest=manifest,
                            entry=self.catalog.get(key) or entry,
                            uri=self.artifacts.uri(key),
                            waited_s=grant.waited_s,
                            elapsed_s=time.perf_counter() - started,
                            events=seen,
                        )
                if entry is not None and entry.status is CaptureStatus.CAPTURING:
                    # We hold the lease, so whoever marked it capturing is gone.
                    emit(ev.CAPTURE_LEASE_TAKEN_OVER, key, previous_run_id=entry.producing_run_id)
                # Read before the catalog is touched: an unreachable store fails here, leaving
                # the catalog as it was; a complete artifact whose writer died before its
                # catalog commit is adopted instead of replayed.
                stored = self._adoptable(prepared, recipe, emit)
                if stored is not None:
                    manifest = stored
                    entry = self._commit(prepared, wanted, run_id, stored, emit, grant=grant)
                else:
                    entry, manifest = self._capture(prepared, recipe, wanted, run_id, emit, grant)
                return CaptureResult(
                    outcome=CaptureOutcome.MISS,
                    manifest=manifest,
                    entry=entry,
                    uri=self.artifacts.uri(key),
                    waited_s=grant.waited_s,
                    elapsed_s=time.perf_counter() - started,
                    events=seen,
                )
            finally:
                emit(ev.CAPTURE_LEASE_RELEASED, key)

    def _capture(
        self,
        prepared: PreparedCell,
        recipe: Recipe,
        wanted: str,
        run_id: str | None,
        emit,
        grant: LeaseGrant,
    ) -> tuple[CatalogEntry, CaptureManifest]:
        key = prepared.key
        attempt = self._begin(prepared, wanted, run_id, emit)
        check_parity = (
            prepared.config.mode is CaptureMode.DATASET_ONLY
            and self.rng.random() < self.parity_check_rate
        )
        mode = str(prepared.config.mode)
        emit(ev.CAPTURE_STARTED, key, run_id=run_id, mode=mode, attempt=attempt)
        try:
            captured = replay_cell(prepared, recipe, check_parity=check_parity)
            if captured.manifest.parity is not None:
                emit(ev.CAPTURE_PARITY_CHECKED, key, **captured.manifest.parity.model_dump())
            manifest = self.artifacts.write(
                captured,
                attempt=attempt,
                before_manifest=lambda: prove_lease(grant, key, attempt, "manifest", emit),
            )
        except BaseException as error:
            if isinstance(error, CaptureParityFailed):
                emit(ev.CAPTURE_PARITY_FAILED, key, **error.check.model_dump(), error=str(error))
            fail_attempt(self.catalog, key, attempt, error, emit)
            raise
        entry = self._commit(prepared, wanted, run_id, manifest, emit, grant=grant, attempt=attempt)
        return entry, manifest

    def _begin(self, prepared: PreparedCell, wanted: str, run_id: str | None, emit) -> str:
        """Begin a new attempt; CaptureFenced if another writer completed the key meanwhile."""
        attempt = new_attempt()
        entry = self.catalog.begin_capture(
            prepared.key,
            request_key=wanted,
            cell_ref=str(prepared.cell),
            mode=str(prepared.config.mode),
            source_version=prepared.source_version,
            run_id=run_id,
            attempt_id=attempt,
        )
        if entry.attempt_id != attempt:
            raise report_fenced(CaptureFenced.of(entry, attempt, "begin"), emit)
        return attempt

    def _adoptable(self, prepared: PreparedCell, recipe: Recipe, emit) -> CaptureManifest | None:
        """A stored artifact of ``prepared``'s key that proves it is this cell's capture.

        Its writer died between the manifest and the catalog commit. It is adopted only if its
        files match, every claim holds against the prepared cell and the recipe's prep makes
        its X/y again; anything else (a manifest copied from another cell, edited,
        unreadable) is replayed over, and ``capture_verify_failed`` says why.
        """
        try:
            stored = self.artifacts.read_manifest(prepared.key)
            if stored is None:
                return None
            self.artifacts.load(stored)  # bytes, canonical X/y hashes and the trial log's
            prove_adoptable(stored, prepared, recipe)
        except CaptureVerificationError as error:
            emit(ev.CAPTURE_VERIFY_FAILED, prepared.key, error=str(error), adoption=True)
            return None
        return stored

    def _commit(
        self,
        prepared: PreparedCell,
        wanted: str,
        run_id: str | None,
        manifest: CaptureManifest,
        emit,
        *,
        grant: LeaseGrant,
        attempt: str | None = None,
    ) -> CatalogEntry:
        """Commit ``manifest`` for ``attempt``; with none, adopt it under a new attempt."""
        key = prepared.key
        adopted = attempt is None
        if attempt is None:
            attempt = self._begin(prepared, wanted, run_id, emit)
        try:
            prove_lease(grant, key, attempt, "catalog commit", emit)
            entry = self.catalog.complete_capture(
                key,
                artifact_uri=self.artifacts.uri(key),
                x_hash=manifest.x_hash,
                y_hash=manifest.y_hash,
                trial_log_hash=manifest.trial_log_hash,
                content_hash=manifest.content_hash,
                bytes=manifest.total_bytes,
                run_id=run_id,
                attempt_id=attempt,
            )
        except CaptureFenced as fenced:
            raise report_fenced(fenced, emit) from None
        except LeaseLost as lost:
            fail_attempt(self.catalog, key, attempt, lost, emit)
            raise
        emit(
            ev.CAPTURE_COMPLETED,
            key,
            content_hash=manifest.content_hash,
            bytes=manifest.total_bytes,
            elapsed_s=manifest.elapsed_s,
            adopted=adopted,
            attempt=attempt,
        )
        return entry
