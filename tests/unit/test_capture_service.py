"""get_diagnostic_capture on the embedded backends (SQLite catalog, file locks)."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from diag_assets.core.capture import events as ev
from diag_assets.core.capture.artifacts import CaptureArtifacts
from diag_assets.core.capture.cache import CaptureService
from diag_assets.core.capture.events import EventRecorder
from diag_assets.core.capture.manifest import X_FILE
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.outcomes import CaptureOutcome, ColdCaptureRequiresOperator
from diag_assets.core.capture.replay import prepare_cell
from diag_assets.core.capture.source_drift import DriftPolicy
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.market_data.synthetic import SyntheticMarketData
from diag_assets.core.recipe.reference import ReferenceRecipe
from diag_assets.core.storage.blob import LocalBlobStore
from diag_assets.core.storage.catalog.catalog import SqliteCatalog
from diag_assets.core.storage.catalog.model import (
    CaptureFenced,
    CaptureStatus,
    CatalogUnavailable,
)
from diag_assets.core.storage.lease.base import LeaseLost
from diag_assets.core.storage.lease.file import FileLease
from tests.conftest import TINY_BARS, TINY_CAPTURE, TINY_FOLDS
from tests.fixtures.recipes import PausingRecipe

CELL = CellRef.parse("defi_top5/UNIUSDC/fold-3")
RECIPE = ReferenceRecipe()
ROOT = Path(__file__).resolve().parents[2]


class CountingSource(SyntheticMarketData):
    """Counts how often the market data is read."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loads = 0

    def load(self, symbol):
        self.loads += 1
        return super().load(symbol)


def make_service(root: Path, drift: str = "off", wait_s: float = 30.0) -> CaptureService:
    return CaptureService(
        CaptureArtifacts(LocalBlobStore(root / "store")),
        SqliteCatalog(root / "catalog.sqlite"),
        FileLease(root / "leases"),
        lease_wait_s=wait_s,
        drift=DriftPolicy.parse(drift),
    )


def request(service, source, *, allow_cold, recipe=RECIPE, run_id="run-1"):
    recorder = EventRecorder()
    result = service.get(
        CELL,
        source,
        TINY_FOLDS,
        recipe,
        TINY_CAPTURE,
        allow_cold=allow_cold,
        run_id=run_id,
        events=recorder,
    )
    return result, recorder.names()


@pytest.fixture
def source():
    return CountingSource(n_bars=TINY_BARS)


def test_cold_without_approval_fails_fast_and_changes_nothing(tmp_path, source):
    service = make_service(tmp_path)
    with pytest.raises(
        ColdCaptureRequiresOperator,
        match="COLD_CAPTURE_REQUIRES_OPERATOR.*diag/allow_cold_capture=true",
    ):
        request(service, source, allow_cold=False)
    assert service.catalog.entries() == []
    assert not (tmp_path / "store").exists()


def test_miss_then_hit_serves_the_same_verified_capture(tmp_path, source):
    service = make_service(tmp_path)
    cold, cold_events = request(service, source, allow_cold=True, run_id="cold-run")
    assert cold.outcome is CaptureOutcome.MISS
    assert cold_events == [
        ev.CAPTURE_MISS,
        ev.CAPTURE_LEASE_ACQUIRED,
        ev.CAPTURE_STARTED,
        ev.CAPTURE_COMPLETED,
        ev.CAPTURE_LEASE_RELEASED,
    ]
    assert cold.entry.status is CaptureStatus.COMPLETE and cold.entry.producing_run_id == "cold-run"

    loads_before = source.loads
    warm, warm_events = request(service, source, allow_cold=False, run_id="warm-run")
    assert warm.outcome is CaptureOutcome.HIT and warm_events == [ev.CAPTURE_HIT]
    assert warm.manifest.content_hash == cold.manifest.content_hash
    assert warm.entry.producing_run_id == "cold-run"  # provenance: who captured it
    assert warm.entry.use_count == 1
    assert source.loads == loads_before  # drift off: a warm read never touches market data


def test_config_change_is_a_different_capture(tmp_path, source):
    service = make_service(tmp_path)
    request(service, source, allow_cold=True)
    other = TINY_CAPTURE.model_copy(
        update={"trials": TINY_CAPTURE.trials.model_copy(update={"seed": 5})}
    )
    with pytest.raises(ColdCaptureRequiresOperator):
        service.get(CELL, source, TINY_FOLDS, RECIPE, other, allow_cold=False)


def test_drift_on_read_detects_changed_source_and_requires_a_new_capture(tmp_path, source):
    service = make_service(tmp_path, drift="on_read")
    cold, _ = request(service, source, allow_cold=True)
    _, events = request(service, source, allow_cold=False)
    assert events == [ev.CAPTURE_DRIFT_CHECKED, ev.CAPTURE_HIT]

    changed = CountingSource(n_bars=TINY_BARS, seed=7)  # same symbols, different bars
    recorder = EventRecorder()
    with pytest.raises(ColdCaptureRequiresOperator, match="market data changed"):
        service.get(
            CELL, changed, TINY_FOLDS, RECIPE, TINY_CAPTURE, allow_cold=False, events=recorder
        )
    assert recorder.names() == [
        ev.CAPTURE_DRIFT_CHECKED,
        ev.CAPTURE_DRIFT_DETECTED,
        ev.CAPTURE_COLD_REFUSED,
    ]
    assert service.catalog.get(cold.entry.key).status is CaptureStatus.STALE
    assert service.catalog.drift_counts() == (2, 1)
    recaptured, events = request(service, changed, allow_cold=True)
    assert events[0] == ev.CAPTURE_MISS and recaptured.outcome is CaptureOutcome.MISS
    assert recaptured.entry.key != cold.entry.key


def test_sampled_drift_policy_checks_at_its_rate(tmp_path, source):
    never = make_service(tmp_path / "a", drift="sampled:0")
    request(never, source, allow_cold=True)
    assert all(request(never, source, allow_cold=False)[1] == [ev.CAPTURE_HIT] for _ in range(5))
    always = make_service(tmp_path / "b", drift="sampled:1")
    request(always, source, allow_cold=True)
    assert request(always, source, allow_cold=False)[1][0] == ev.CAPTURE_DRIFT_CHECKED


@pytest.mark.parametrize("text", ["sometimes", "sampled:2", "sampled:", "on-read"])
def test_bad_drift_policy_names_the_fix(text):
    with pytest.raises(DiagInputError, match="sampled:P"):
        DriftPolicy.parse(text)


def test_flipped_bytes_are_never_served(tmp_path, source):
    service = make_service(tmp_path)
    cold, _ = request(service, source, allow_cold=True)
    x_path = tmp_path / "store" / service.artifacts.file_key(cold.manifest, X_FILE)
    raw = bytearray(x_path.read_bytes())
    raw[100] ^= 0x01
    x_path.write_bytes(bytes(raw))

    with pytest.raises(ColdCaptureRequiresOperator, match="failed verification"):
        request(service, source, allow_cold=False)
    assert service.catalog.get(cold.entry.key).status is CaptureStatus.STALE

    recovered, events = request(service, source, allow_cold=True)
    assert recovered.outcome is CaptureOutcome.MISS
    assert recovered.manifest.content_hash == cold.manifest.content_hash  # a faithful re-capture
    service.artifacts.verify(recovered.manifest)


def test_verify_failure_event_is_emitted(tmp_path, source):
    service = make_service(tmp_path)
    cold, _ = request(service, source, allow_cold=True)
    (tmp_path / "store" / service.artifacts.file_key(cold.manifest, X_FILE)).write_bytes(
        b"not parquet"
    )
    _, events = request(service, source, allow_cold=True)
    assert events[:2] == [ev.CAPTURE_VERIFY_FAILED, ev.CAPTURE_MISS]


def test_concurrent_requests_capture_once(tmp_path, source):
    results, errors = [], []

    def worker(n):
        try:
            results.append(
                request(make_service(tmp_path), source, allow_cold=True, run_id=f"r{n}")[0]
            )
        except Exception as error:  # noqa: BLE001 - surfaced below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    outcomes = sorted(r.outcome.value for r in results)
    assert outcomes.count("MISS") == 1 and outcomes.count("WAITED") + outcomes.count("HIT") == 2
    assert len({r.manifest.content_hash for r in results}) == 1


def test_a_dead_holders_capture_is_taken_over(tmp_path, source):
    service = make_service(tmp_path)
    prepared = prepare_cell(CELL, source, TINY_FOLDS, RECIPE, TINY_CAPTURE)
    service.catalog.begin_capture(
        prepared.key,
        request_key="rk-x",
        cell_ref=str(CELL),
        mode="full_replay",
        source_version=prepared.source_version,
        run_id="dead-run",
        attempt_id="dead-attempt",
    )
    result, events = request(service, source, allow_cold=True)
    assert ev.CAPTURE_LEASE_TAKEN_OVER in events and result.outcome is CaptureOutcome.MISS


def test_sigkilled_capture_leaves_nothing_visible_and_the_next_request_captures(tmp_path):
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from tests.unit.test_capture_service import CELL, make_service
        from tests.fixtures.recipes import PausingRecipe
        from tests.conftest import TINY_BARS, TINY_CAPTURE, TINY_FOLDS
        from diag_assets.core.market_data.synthetic import SyntheticMarketData
        service = make_service(Path({str(tmp_path)!r}))
        service.get(CELL, SyntheticMarketData(n_bars=TINY_BARS), TINY_FOLDS, PausingRecipe(),
                    TINY_CAPTURE, allow_cold=True, run_id="doomed")
        """
    )
    env = {**os.environ, "DIAG_TEST_PAUSE_FILE": str(ready), "DIAG_TEST_PAUSE_S": "60"}
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, "the capturing process died before it paused"
            assert time.monotonic() < deadline, "the capturing process never paused"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()

    service = make_service(tmp_path, wait_s=10)
    (entry,) = service.catalog.entries()
    assert entry.status is CaptureStatus.CAPTURING and entry.producing_run_id == "doomed"
    assert service.artifacts.read_manifest(entry.key) is None  # nothing partial is visible
    result, events = request(
        service, SyntheticMarketData(n_bars=TINY_BARS), allow_cold=True, recipe=PausingRecipe()
    )
    assert ev.CAPTURE_LEASE_TAKEN_OVER in events
    assert result.outcome is CaptureOutcome.MISS and result.entry.key == entry.key
    service.artifacts.verify(result.manifest)


def test_an_artifact_whose_catalog_commit_was_lost_is_adopted_not_replayed(tmp_path, source):
    service = make_service(tmp_path)
    cold, _ = request(service, source, allow_cold=True)
    service.catalog.delete(cold.entry.key)  # as if the writer died after the manifest
    adopted, events = request(service, source, allow_cold=True)
    assert adopted.outcome is CaptureOutcome.MISS
    assert ev.CAPTURE_STARTED not in events  # no replay
    assert service.catalog.get(cold.entry.key).status is CaptureStatus.COMPLETE
    assert adopted.manifest == cold.manifest


def test_is_warm_reads_only_the_catalog_and_follows_the_entry(tmp_path, source):
    with make_service(tmp_path) as cache:
        assert not cache.is_warm(CELL, source, TINY_FOLDS, RECIPE, TINY_CAPTURE)
        result, _ = request(cache, source, allow_cold=True)
        loads = source.loads
        assert cache.is_warm(CELL, source, TINY_FOLDS, RECIPE, TINY_CAPTURE)
        assert source.loads == loads  # no market data read to answer
        other_mode = TINY_CAPTURE.with_mode(CaptureMode.DATASET_ONLY)
        assert not cache.is_warm(CELL, source, TINY_FOLDS, RECIPE, other_mode)
        cache.catalog.mark_stale(result.entry.key, "test")
        assert not cache.is_warm(CELL, source, TINY_FOLDS, RECIPE, TINY_CAPTURE)


def test_the_cache_refuses_a_cell_of_another_universe_before_any_read(tmp_path, source):
    other = CellRef.parse("binance/UNIUSDC/fold-3")
    with make_service(tmp_path) as cache:
        for ask in (cache.is_warm, cache.request_key):
            with pytest.raises(DiagInputError, match="universe 'binance'.*serves 'defi_top5'"):
                ask(other, source, TINY_FOLDS, RECIPE, TINY_CAPTURE)
    assert source.loads == 0


def test_leaving_the_block_closes_the_catalog_and_the_lease_even_on_error(tmp_path, source):
    closed = []
    cache = make_service(tmp_path)
    cache.catalog.close = lambda: closed.append("catalog")
    cache.lease.close = lambda: closed.append("lease")
    with pytest.raises(ColdCaptureRequiresOperator), cache:
        request(cache, source, allow_cold=False)
    assert closed == ["catalog", "lease"]


def test_a_begin_that_finds_the_key_completed_meanwhile_is_fenced(tmp_path, source):
    service = make_service(tmp_path)
    # A writer whose lease is elsewhere: what another writer is once ours was lost unnoticed.
    other = CaptureService(
        service.artifacts, SqliteCatalog(tmp_path / "catalog.sqlite"), FileLease(tmp_path / "x")
    )
    real_read = service.artifacts.read_manifest

    def completed_meanwhile(key):
        service.artifacts.read_manifest = real_read
        request(other, source, allow_cold=True, run_id="other")
        return None  # as read a moment before the other writer published

    service.artifacts.read_manifest = completed_meanwhile
    recorder = EventRecorder()
    with pytest.raises(CaptureFenced, match="may not begin it.*status complete, run other"):
        service.get(
            CELL, source, TINY_FOLDS, RECIPE, TINY_CAPTURE, allow_cold=True, events=recorder
        )
    assert ev.CAPTURE_FENCED in recorder.names() and ev.CAPTURE_STARTED not in recorder.names()
    (entry,) = service.catalog.entries()
    assert entry.status is CaptureStatus.COMPLETE and entry.producing_run_id == "other"
    other.close()


class LockFileDeletingRecipe(ReferenceRecipe):
    """Deletes the capture's lock files while it trains: the writer loses its file lease."""

    name = "lock_file_deleting"

    def __init__(self, leases: Path) -> None:
        super().__init__()
        self.leases = leases

    def run_trials(self, data, settings, observer=None):
        for lock_file in self.leases.glob("*.lock"):
            lock_file.unlink()
        return super().run_trials(data, settings, observer)


def test_a_lost_lease_propagates_even_when_the_catalog_is_down_too(tmp_path, source):
    service = make_service(tmp_path)

    def catalog_down(*args, **kwargs):
        raise CatalogUnavailable("sqlite", "here", "the server restarted", "Fix: wait.")

    service.catalog.fail_capture = catalog_down
    recorder = EventRecorder()
    with pytest.raises(LeaseLost, match="lock file .* was deleted"):
        service.get(
            CELL,
            source,
            TINY_FOLDS,
            LockFileDeletingRecipe(tmp_path / "leases"),
            TINY_CAPTURE,
            allow_cold=True,
            events=recorder,
        )
    failed = next(e for e in recorder.events if e.name == ev.CAPTURE_FAILED)
    assert failed.fields["marked_failed"] is False
    assert "the server restarted" in failed.fields["catalog_error"]
    names = recorder.names()
    assert names.index(ev.CAPTURE_LEASE_LOST) < names.index(ev.CAPTURE_FAILED)
    (entry,) = service.catalog.entries()
    assert service.artifacts.read_manifest(entry.key) is None  # nothing published
