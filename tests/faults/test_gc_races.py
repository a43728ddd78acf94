"""The capture GC racing readers: a retired capture is a miss for the reader, never a crash.

The GC retires a capture between the steps of a warm read: after the catalog lookup, after
the reader touched the row, while its files are being proven. Each time the reader either
serves a capture that is still complete and verified, or re-captures (approved), or is told
the capture was retired (not approved). Then a real race: a reader thread and a GC thread on
one catalog, hundreds of passes, with nothing but verified captures served.
"""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from diag_assets.core.capture import events as ev
from diag_assets.core.capture.cache import CaptureService
from diag_assets.core.capture.outcomes import CaptureOutcome, ColdCaptureRequiresOperator
from diag_assets.core.storage.catalog.model import CaptureStatus
from tests.conftest import TINY_CAPTURE
from tests.fixtures.caches import ask, local_cache

READS = 24


def retire(cache: CaptureService, key: str) -> None:
    """What the GC does to a capture it retires, in its order."""
    cache.catalog.mark_stale(key, "retired by GC: test")
    cache.artifacts.delete(key)
    cache.catalog.delete(key)


class RetiringAt:
    """Wraps one catalog method so the GC retires the capture right after it returns."""

    def __init__(self, cache: CaptureService, method: str, *, files_only: bool = False):
        self.cache, self.method, self.files_only = cache, method, files_only
        self.fired = False
        original = getattr(cache.catalog, method)

        def wrapped(*args, **kwargs):
            value = original(*args, **kwargs)
            if not self.fired:
                self.fired = True
                key = args[0] if method != "latest_complete" else value.key
                if files_only:
                    cache.artifacts.delete(key)
                else:
                    retire(cache, key)
            return value

        setattr(cache.catalog, method, wrapped)


# Where in a warm read the GC strikes: after the lookup (the row goes before the touch),
# after the touch (files and row go while the files are proven), and files alone going
# under a row that stays (an operator's rm, or a GC of another catalog).
MOMENTS = {
    "after the lookup": ("latest_complete", False),
    "after the touch": ("record_use", False),
    "files gone after the touch": ("record_use", True),
}


@pytest.mark.parametrize("moment", list(MOMENTS), ids=list(MOMENTS))
@pytest.mark.parametrize("approved", [True, False], ids=["approved", "not approved"])
def test_a_capture_retired_during_a_warm_read_is_a_miss_never_a_crash(tmp_path, moment, approved):
    with local_cache(tmp_path) as cache:
        original = ask(cache, approved=True)[0].manifest
        method, files_only = MOMENTS[moment]
        race = RetiringAt(cache, method, files_only=files_only)
        if not approved:
            with pytest.raises(ColdCaptureRequiresOperator) as refused:
                ask(cache, approved=False)
            assert race.fired
            expected = "failed verification" if files_only else "retired by the capture GC"
            assert expected in str(refused.value)
            return
        result, events = ask(cache, approved=True)
        assert race.fired
        assert result.outcome is CaptureOutcome.MISS and ev.CAPTURE_STARTED in events
        assert result.manifest.content_hash == original.content_hash
        cache.artifacts.load(result.manifest)
        (entry,) = cache.entries(status=CaptureStatus.COMPLETE)
        assert entry.key == result.manifest.capture_key


def test_a_capture_touched_by_a_reader_after_the_plan_is_kept(tmp_path):
    with local_cache(tmp_path) as cache:
        ask(cache, approved=True)
        newer = TINY_CAPTURE.model_copy(
            update={"trials": TINY_CAPTURE.trials.model_copy(update={"seed": 1})}
        )
        ask(cache, approved=True, config=newer)  # keep_newest=1 leaves the first one to retire
        plan_time = datetime.now(UTC) + timedelta(days=60)
        catalog = cache.catalog
        entries = catalog.entries

        def read_after_planning(**filters):
            listed = entries(**filters)
            ask(cache, approved=False)  # a warm read of the first capture, after the plan
            return listed

        catalog.entries = read_after_planning  # type: ignore[method-assign]
        report = cache.collect_garbage(
            now=plan_time, ttl=timedelta(days=30), keep_newest=1, in_use=set()
        )
        catalog.entries = entries  # type: ignore[method-assign]
        assert report.deleted == []
        assert any(d.reason == "used while GC ran" for d in report.decisions)
        assert ask(cache, approved=False)[0].outcome is CaptureOutcome.HIT


@pytest.mark.slow
def test_a_reader_and_the_gc_racing_serve_only_verified_captures(tmp_path):
    """A real race on one catalog: every read is verified, re-captured, or told why."""
    with local_cache(tmp_path) as cache:
        first = ask(cache, approved=True)[0].manifest.content_hash
        newer = TINY_CAPTURE.model_copy(
            update={"trials": TINY_CAPTURE.trials.model_copy(update={"seed": 1})}
        )
        expected = {
            first: TINY_CAPTURE,
            ask(cache, approved=True, config=newer)[0].manifest.content_hash: newer,
        }
        stop = threading.Event()
        errors: list[BaseException] = []
        retired = 0

        def collect() -> None:
            nonlocal retired
            with local_cache(tmp_path) as gc_cache:
                while not stop.is_set():
                    try:
                        report = gc_cache.collect_garbage(
                            now=datetime.now(UTC) + timedelta(days=60),
                            ttl=timedelta(days=30),
                            keep_newest=1,
                            in_use=set(),
                        )
                        retired += len(report.deleted)
                        stop.wait(0.02)
                    except BaseException as error:  # noqa: BLE001 - reported below
                        errors.append(error)
                        return

        collector = threading.Thread(target=collect)
        collector.start()
        outcomes: dict[str, int] = {}
        try:
            for i in range(READS):
                # Whichever of the two is older is the GC's to retire; the reader reads both.
                config = newer if i % 2 else TINY_CAPTURE
                result, _ = ask(cache, approved=True, config=config)
                # Served only after its proof: the capture of this request, never another.
                assert expected[result.manifest.content_hash] == config
                outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        finally:
            stop.set()
            collector.join(timeout=60)
        assert errors == []
        assert sum(outcomes.values()) == READS
        assert retired > 0 and outcomes.get(CaptureOutcome.MISS, 0) > 0, (retired, outcomes)
