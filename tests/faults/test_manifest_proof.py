"""Manifest faults: a capture is served or adopted only if everything it claims is proven.

Each case captures a cell, then tampers with what the store holds for it: a field of the
manifest changed (with and without its hashes recomputed to match), another cell's manifest
in its place, bytes that are no manifest at all. Then, on both profiles:

- an unapproved run is refused and told why (the capture failed verification, and how);
- the entry is STALE with that reason, so the next run can say it too;
- an approved run replays (never adopts the tampered artifact) and serves this cell's own
  capture, the one the untampered store held, and exactly one complete entry remains.
"""

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from diag_assets.core.capture import events as ev
from diag_assets.core.capture.cache import CaptureService
from diag_assets.core.capture.keys import content_hash
from diag_assets.core.capture.manifest import MANIFEST_FILE, CaptureManifest
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.outcomes import CaptureOutcome, ColdCaptureRequiresOperator
from diag_assets.core.cells import CellRef
from diag_assets.core.storage.catalog.model import CaptureStatus
from tests.fixtures.caches import CELL, PROFILES, ask, local_cache, production_cache

OTHER = CellRef.parse("defi_top5/AAVEUSDC/fold-3")

Manifest = dict[str, Any]


def _rehashed(manifest: Manifest) -> Manifest:
    """The manifest with its content hash recomputed from its (edited) fields."""
    mode = CaptureMode(manifest["mode"])
    manifest["content_hash"] = content_hash(
        manifest["x_hash"],
        manifest["y_hash"],
        manifest["trial_log_hash"],
        manifest["n_train"],
        mode,
    )
    return manifest


def _edit(**fields: Any) -> Callable[[Manifest], Manifest]:
    def edit(manifest: Manifest) -> Manifest:
        return {**manifest, **fields}

    return edit


def _shift_split(manifest: Manifest) -> Manifest:
    return {**manifest, "n_train": manifest["n_train"] - 40}


def _single_fit(manifest: Manifest) -> Manifest:
    config = {**manifest["config"], "mode": "single_fit"}
    return _rehashed({**manifest, "mode": "single_fit", "config": config})


# Edits of this cell's own manifest, each a way to make it claim something untrue.
EDITS: dict[str, Callable[[Manifest], Manifest]] = {
    "training rows changed": _shift_split,
    "training rows changed, content hash recomputed": lambda m: _rehashed(_shift_split(m)),
    "cell changed": _edit(cell_ref=str(OTHER)),
    "recipe version changed": _edit(recipe_version="rv-" + "0" * 32),
    "source version changed": _edit(source_version="0" * 32),
    "capture key changed": _edit(capture_key="ck-" + "0" * 32),
    "mode and config changed to single_fit, hashes recomputed": _single_fit,
    "x hash corrupted": _edit(x_hash="0" * 32),
    "x hash corrupted, content hash recomputed": lambda m: _rehashed({**m, "x_hash": "0" * 32}),
    "trial log hash corrupted, content hash recomputed": lambda m: _rehashed(
        {**m, "trial_log_hash": "0" * 32}
    ),
    "library versions changed": lambda m: {**m, "libraries": {**m["libraries"], "pandas": "0.1"}},
    "fold layout changed": lambda m: {**m, "fold_spec": {**m["fold_spec"], "purge_bars": 99}},
}
# Bytes that are no manifest.
GARBAGE: dict[str, bytes] = {
    "not JSON": b"\x00\xffnot a manifest",
    "truncated JSON": b'{"schema_version": 2, "capture_key": "ck-',
    "empty file": b"",
    "a JSON list": b"[1, 2, 3]",
    "a field of the wrong type": b'{"n_train": "many"}',
}


@pytest.fixture(
    params=[
        "local",
        pytest.param("production", marks=[pytest.mark.postgres, pytest.mark.s3]),
    ],
    ids=list(PROFILES),
)
def cache(request, tmp_path) -> Iterator[CaptureService]:
    if request.param == "local":
        service = local_cache(tmp_path)
    else:
        service = production_cache(
            request.getfixturevalue("postgres_dsn"),
            request.getfixturevalue("s3_endpoint"),
            request.getfixturevalue("s3_bucket"),
        )
    with service:
        yield service


def manifest_key(cache: CaptureService, capture_key: str) -> str:
    return cache.artifacts.key_of(capture_key, MANIFEST_FILE)


def replace_manifest(cache: CaptureService, capture_key: str, raw: bytes) -> None:
    cache.artifacts.store.write_bytes(manifest_key(cache, capture_key), raw)


def stored(cache: CaptureService, capture_key: str) -> Manifest:
    return json.loads(cache.artifacts.store.read_bytes(manifest_key(cache, capture_key)))


def assert_refused_then_healed(cache: CaptureService, original: CaptureManifest) -> None:
    """Nothing tampered is served; the refusal says why; an approved run re-captures it."""
    with pytest.raises(ColdCaptureRequiresOperator, match="failed verification") as refused:
        ask(cache, approved=False)
    entry = cache.catalog.get(original.capture_key)
    assert entry is not None and entry.status is CaptureStatus.STALE
    assert entry.status_reason and entry.status_reason.startswith("verification failed")
    # The next unapproved run names the failed capture instead of "no capture yet".
    with pytest.raises(ColdCaptureRequiresOperator, match="is stale: verification failed"):
        ask(cache, approved=False)
    assert "Its bytes are not used" in str(refused.value)

    healed, events = ask(cache, approved=True)
    assert healed.outcome is CaptureOutcome.MISS
    assert ev.CAPTURE_STARTED in events, "a tampered artifact must be replayed, never adopted"
    assert healed.manifest.content_hash == original.content_hash
    assert healed.manifest.n_train == original.n_train
    assert healed.manifest.cell_ref == str(CELL)
    cache.artifacts.load(healed.manifest)  # its bytes and canonical hashes verify
    complete = cache.entries(cell_ref=str(CELL), status=CaptureStatus.COMPLETE)
    assert [e.key for e in complete] == [original.capture_key]
    again, _ = ask(cache, approved=False)
    assert again.outcome is CaptureOutcome.HIT and again.manifest == healed.manifest


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_an_edited_manifest_is_never_served(cache, edit):
    original = ask(cache, approved=True)[0].manifest
    raw = json.dumps(EDITS[edit](stored(cache, original.capture_key))).encode()
    replace_manifest(cache, original.capture_key, raw)
    assert_refused_then_healed(cache, original)


@pytest.mark.parametrize("garbage", list(GARBAGE), ids=list(GARBAGE))
def test_an_unreadable_manifest_is_a_verification_failure_not_a_wedge(cache, garbage):
    original = ask(cache, approved=True)[0].manifest
    replace_manifest(cache, original.capture_key, GARBAGE[garbage])
    assert_refused_then_healed(cache, original)


def test_another_cells_manifest_in_a_capture_folder_is_never_served(cache):
    original = ask(cache, approved=True)[0].manifest
    other = ask(cache, approved=True, cell=OTHER)[0].manifest
    replace_manifest(
        cache, original.capture_key, json.dumps(stored(cache, other.capture_key)).encode()
    )
    assert_refused_then_healed(cache, original)


@pytest.mark.parametrize(
    "planted",
    ["another cell's manifest", "this cell's manifest with its split shifted and rehashed"],
)
def test_an_artifact_that_is_not_the_cells_capture_is_never_adopted(cache, planted):
    """The catalog lost the row (a writer died before committing): only proof adopts."""
    original = ask(cache, approved=True)[0].manifest
    if planted.startswith("another"):
        other = ask(cache, approved=True, cell=OTHER)[0].manifest
        raw = json.dumps(stored(cache, other.capture_key)).encode()
    else:
        raw = json.dumps(_rehashed(_shift_split(stored(cache, original.capture_key)))).encode()
    replace_manifest(cache, original.capture_key, raw)
    cache.catalog.delete(original.capture_key)

    result, events = ask(cache, approved=True)
    assert ev.CAPTURE_VERIFY_FAILED in events and ev.CAPTURE_STARTED in events  # replayed
    assert result.manifest.cell_ref == str(CELL)
    assert result.manifest.content_hash == original.content_hash
    cache.artifacts.load(result.manifest)
    assert ask(cache, approved=False)[0].manifest == result.manifest


def test_the_genuine_artifact_of_a_lost_commit_is_still_adopted(cache):
    original = ask(cache, approved=True)[0].manifest
    cache.catalog.delete(original.capture_key)
    adopted, events = ask(cache, approved=True)
    assert ev.CAPTURE_STARTED not in events and ev.CAPTURE_VERIFY_FAILED not in events
    assert adopted.manifest == original
