"""Captures: the key, atomic writes and verified reads."""

import json
import os
import time

import pytest
from pydantic import ValidationError

from diag_assets.core.capture.artifacts import CaptureArtifacts, CaptureVerificationError
from diag_assets.core.capture.manifest import MANIFEST_FILE, X_FILE, CaptureManifest
from diag_assets.core.capture.modes import CaptureConfig
from diag_assets.core.capture.replay import prepare_cell, replay_cell
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.recipe.protocol import TrialSettings
from diag_assets.core.recipe.reference import ReferenceRecipe
from diag_assets.core.storage.blob import LocalBlobStore, check_key
from tests.conftest import TINY_CAPTURE, TINY_FOLDS

CELL = CellRef.parse("defi_top5/UNIUSDC/fold-3")
RECIPE = ReferenceRecipe()


@pytest.fixture(scope="module")
def captured(tiny_source):
    return replay_cell(prepare_cell(CELL, tiny_source, TINY_FOLDS, RECIPE, TINY_CAPTURE), RECIPE)


def test_capture_key_changes_with_every_input(tiny_source):
    base = prepare_cell(CELL, tiny_source, TINY_FOLDS, RECIPE, TINY_CAPTURE).key
    variants = [
        prepare_cell(
            CellRef.parse("defi_top5/UNIUSDC/fold-2"), tiny_source, TINY_FOLDS, RECIPE, TINY_CAPTURE
        ),
        prepare_cell(
            CellRef.parse("defi_top5/OPUSDC/fold-3"), tiny_source, TINY_FOLDS, RECIPE, TINY_CAPTURE
        ),
        prepare_cell(
            CELL,
            tiny_source,
            TINY_FOLDS,
            RECIPE,
            CaptureConfig(trials=TrialSettings(n_trials=3, max_rounds=40)),
        ),
        prepare_cell(
            CELL,
            tiny_source,
            TINY_FOLDS,
            RECIPE,
            CaptureConfig(trials=TrialSettings(n_trials=2, max_rounds=40, seed=9)),
        ),
    ]
    keys = {base} | {v.key for v in variants}
    assert len(keys) == 1 + len(variants)
    assert prepare_cell(CELL, tiny_source, TINY_FOLDS, RECIPE, TINY_CAPTURE).key == base


def test_capture_is_reproducible(tiny_source, captured):
    again = replay_cell(prepare_cell(CELL, tiny_source, TINY_FOLDS, RECIPE, TINY_CAPTURE), RECIPE)
    assert again.manifest.content_hash == captured.manifest.content_hash
    assert again.manifest.capture_key == captured.manifest.capture_key


def test_write_then_load_verifies_and_round_trips(tmp_path, captured):
    artifacts = CaptureArtifacts(LocalBlobStore(tmp_path))
    manifest = artifacts.write(captured)
    assert artifacts.read_manifest(manifest.capture_key) == manifest
    loaded = artifacts.load(manifest)
    assert loaded.manifest.content_hash == captured.manifest.content_hash
    assert loaded.data.X.equals(captured.data.X) and loaded.data.y.equals(captured.data.y)
    assert loaded.trial_log == captured.trial_log
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


def test_flipped_bytes_are_detected_and_never_served(tmp_path, captured):
    artifacts = CaptureArtifacts(LocalBlobStore(tmp_path))
    manifest = artifacts.write(captured)
    path = tmp_path / artifacts.file_key(manifest, X_FILE)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CaptureVerificationError, match="X.parquet does not match"):
        artifacts.load(manifest)


def test_capture_without_manifest_is_not_visible(tmp_path, captured):
    artifacts = CaptureArtifacts(LocalBlobStore(tmp_path))
    manifest = artifacts.write(captured)
    os.remove(tmp_path / "captures" / manifest.capture_key / MANIFEST_FILE)
    assert artifacts.read_manifest(manifest.capture_key) is None


def test_bad_input_fails_before_training_and_writes_nothing(tmp_path, tiny_source):
    with pytest.raises(DiagInputError, match="History too short for fold 4"):
        prepare_cell(
            CellRef.parse("defi_top5/UNIUSDC/fold-4"),
            tiny_source,
            TINY_FOLDS.__class__(n_folds=5, min_train_bars=2_500, validation_bars=300),
            RECIPE,
            TINY_CAPTURE,
        )
    with pytest.raises(DiagInputError, match="DOGEUSDC"):
        prepare_cell(
            CellRef.parse("defi_top5/DOGEUSDC/fold-1"),
            tiny_source,
            TINY_FOLDS,
            RECIPE,
            TINY_CAPTURE,
        )
    with pytest.raises(DiagInputError, match="universe"):
        prepare_cell(
            CellRef.parse("other/UNIUSDC/fold-1"), tiny_source, TINY_FOLDS, RECIPE, TINY_CAPTURE
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["../x", "a/../b", "/abs", "a//b", "a/./b", "a b", ""])
def test_store_refuses_unsafe_keys(key):
    with pytest.raises(ValueError, match="unsafe"):
        check_key(key)


def _digests(root, keys):
    return {key: (root / key).read_bytes() for key in keys}


def test_each_attempt_writes_its_own_folder_and_the_manifest_names_the_last(tmp_path, captured):
    artifacts = CaptureArtifacts(LocalBlobStore(tmp_path))
    first = artifacts.write(captured, attempt="a" * 32)
    first_files = [artifacts.file_key(first, name) for name in first.files]
    assert all(key.startswith(f"captures/{first.capture_key}/{'a' * 32}/") for key in first_files)
    before = _digests(tmp_path, first_files)
    second = artifacts.write(captured, attempt="b" * 32)
    assert _digests(tmp_path, first_files) == before  # a later attempt never touches them
    assert artifacts.read_manifest(captured.manifest.capture_key) == second
    assert second.attempt == "b" * 32 and second.files == first.files
    artifacts.verify(second)
    artifacts.verify(first)  # both attempts' folders are whole
    assert artifacts.leftovers(second.capture_key, keep=second) == sorted(first_files)


def test_a_write_whose_check_before_the_manifest_raises_publishes_nothing(tmp_path, captured):
    artifacts = CaptureArtifacts(LocalBlobStore(tmp_path))

    def lost() -> None:
        raise RuntimeError("lease lost")

    with pytest.raises(RuntimeError, match="lease lost"):
        artifacts.write(captured, attempt="c" * 32, before_manifest=lost)
    key = captured.manifest.capture_key
    assert artifacts.read_manifest(key) is None
    stored = artifacts.leftovers(key, keep=None)
    assert len(stored) == 4 and all(k.startswith(f"captures/{key}/{'c' * 32}/") for k in stored)


def test_a_capture_stored_before_attempts_stays_readable(tmp_path, captured):
    artifacts = CaptureArtifacts(LocalBlobStore(tmp_path))
    manifest = artifacts.write(captured)
    key = manifest.capture_key
    for name in manifest.files:  # lay it out as releases before attempts stored it
        os.replace(
            tmp_path / artifacts.file_key(manifest, name), tmp_path / "captures" / key / name
        )
    raw = json.loads(manifest.model_dump_json())
    del raw["attempt"]
    (tmp_path / artifacts.key_of(key, MANIFEST_FILE)).write_text(json.dumps(raw))
    old = artifacts.read_manifest(key)
    assert old is not None and old.attempt == ""
    assert artifacts.file_key(old, X_FILE) == f"captures/{key}/{X_FILE}"
    artifacts.verify(old)
    assert artifacts.load(old).manifest.content_hash == manifest.content_hash
    assert artifacts.leftovers(key, keep=old) == []
    newer = artifacts.write(captured, attempt="d" * 32)  # a re-capture replaces the flat files
    assert sorted(artifacts.leftovers(key, keep=newer)) == sorted(
        f"captures/{key}/{name}" for name in manifest.files
    )


@pytest.mark.parametrize("attempt", ["../x", "a/b", "a.b", "manifest.json", "x" * 65])
def test_an_attempt_that_is_not_a_folder_name_is_refused(tmp_path, captured, attempt):
    artifacts = CaptureArtifacts(LocalBlobStore(tmp_path))
    with pytest.raises(ValueError, match="not a capture attempt id"):
        artifacts.write(captured, attempt=attempt)
    raw = json.loads(captured.manifest.model_dump_json())
    with pytest.raises(ValidationError, match="attempt"):
        CaptureManifest.model_validate({**raw, "attempt": attempt})
    assert not (tmp_path / "captures").exists()


def test_stale_temp_files_are_found_only_once_old_enough(tmp_path, captured):
    store = LocalBlobStore(tmp_path)
    artifacts = CaptureArtifacts(store)
    manifest = artifacts.write(captured)
    folder = tmp_path / "captures" / manifest.capture_key / manifest.attempt
    old, young = folder / ".X.parquet.abc123.tmp", folder / ".y.parquet.def456.tmp"
    old.write_bytes(b"half")
    young.write_bytes(b"half")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    relative = str(old.relative_to(tmp_path))
    assert artifacts.stale_temp_files(manifest.capture_key, older_than_s=600) == [relative]
    assert len(artifacts.stale_temp_files(manifest.capture_key, older_than_s=0)) == 2
    assert store.list_keys("captures") == sorted(  # still hidden from listings
        [artifacts.key_of(manifest.capture_key, MANIFEST_FILE)]
        + [artifacts.file_key(manifest, name) for name in manifest.files]
    )
    store.delete(relative)
    assert not old.exists()
    assert artifacts.stored_keys() == [manifest.capture_key]
