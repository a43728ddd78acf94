"""Captures: the key, atomic writes and verified reads."""

import os

import pytest

from diag_assets.core.capture.artifacts import CaptureArtifacts, CaptureVerificationError
from diag_assets.core.capture.manifest import MANIFEST_FILE, X_FILE
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
    path = tmp_path / "captures" / manifest.capture_key / X_FILE
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
