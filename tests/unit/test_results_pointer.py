"""The proof of a results pointer, and the pointers the capture GC reads, without Dagster."""

from datetime import UTC, datetime

import pytest

from diag_assets.core.capture.artifacts import CaptureVerificationError
from diag_assets.core.capture.keys import capture_key, content_hash
from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.capture.modes import CaptureConfig, CaptureMode
from diag_assets.core.capture.pointer import PointerNotProven, pointers_in_use, prove_pointer
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import FoldSpec
from diag_assets.core.storage.blob import LocalBlobStore
from diag_assets.core.storage.catalog.model import CaptureStatus, CatalogEntry

CELL = CellRef.parse("defi_top5/UNIUSDC/fold-3")
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _manifest(cell: CellRef = CELL, mode: CaptureMode = CaptureMode.FULL_REPLAY, **changes):
    hashes = {"x_hash": "x" * 32, "y_hash": "y" * 32, "trial_log_hash": "t" * 32, "n_train": 90}
    fields = {
        "capture_key": capture_key(
            cell, "s1", "r1", FoldSpec(), CaptureConfig(mode=mode), libraries={}
        ),
        "cell_ref": str(cell),
        "mode": mode,
        "recipe": "reference",
        "recipe_version": "r1",
        "config": CaptureConfig(mode=mode),
        "fold_spec": vars(FoldSpec()),
        "fold": {},
        "source": "synthetic",
        "source_version": "s1",
        "window_first": "a",
        "window_last": "b",
        "window_bars": 100,
        "rows": 100,
        "feature_names": ["f"],
        "label_balance_train": 0.5,
        "label_balance_validation": 0.5,
        **hashes,
        "content_hash": content_hash(
            hashes["x_hash"], hashes["y_hash"], hashes["trial_log_hash"], 90, mode
        ),
        "n_trials": 1,
        "best_trial": 0,
        "best_iter": 3,
        "best_score": 0.6,
        "prep_s": 0.0,
        "trials_s": 0.0,
        "elapsed_s": 0.0,
        "files": {},
        "libraries": {},
        "created_at": NOW.isoformat(),
    }
    return CaptureManifest.model_validate({**fields, **changes})


def _entry(manifest: CaptureManifest, **changes) -> CatalogEntry:
    fields = {
        "key": manifest.capture_key,
        "request_key": "rk",
        "cell_ref": manifest.cell_ref,
        "status": CaptureStatus.COMPLETE,
        "mode": str(manifest.mode),
        "source_version": manifest.source_version,
        "artifact_uri": None,
        "x_hash": manifest.x_hash,
        "y_hash": manifest.y_hash,
        "trial_log_hash": manifest.trial_log_hash,
        "content_hash": manifest.content_hash,
        "bytes": 1,
        "created_at": NOW,
        "updated_at": NOW,
        "last_used_at": None,
        "use_count": 0,
        "producing_run_id": None,
        "status_reason": None,
    }
    return CatalogEntry.model_validate({**fields, **changes})


def _prove(manifest: CaptureManifest, entry: CatalogEntry | None, cell: CellRef = CELL):
    raw = manifest.model_dump_json().encode()
    return prove_pointer(cell, raw, lambda key: entry)


def test_a_pointer_to_its_cells_complete_capture_is_proven():
    manifest = _manifest()
    assert _prove(manifest, _entry(manifest)) == manifest


OTHER = _manifest(CellRef.parse("defi_top5/AAVEUSDC/fold-3"))
FORGED = _manifest(content_hash="f" * 32)
SINGLE = _manifest(mode=CaptureMode.SINGLE_FIT, trial_log_hash="t" * 32)


@pytest.mark.parametrize(
    ("manifest", "entry", "says"),
    [
        (OTHER, _entry(OTHER), f"of {CELL} names a capture of defi_top5/AAVEUSDC/fold-3"),
        (FORGED, _entry(FORGED), "hash to content hash"),
        (_manifest(), None, "which the capture catalog does not hold"),
        (
            _manifest(),
            _entry(_manifest(), status=CaptureStatus.STALE, status_reason="source drift: s2"),
            "which the capture catalog marks stale: source drift: s2",
        ),
        (_manifest(), _entry(_manifest(), key="ck-else"), "does not hold"),
        (
            _manifest(),
            _entry(_manifest(), cell_ref="defi_top5/OPUSDC/fold-3"),
            f"with cell {CELL}, but the capture catalog records defi_top5/OPUSDC/fold-3",
        ),
        (
            SINGLE,
            _entry(_manifest(), key=SINGLE.capture_key),
            "with mode single_fit, but the capture catalog records",
        ),
        (
            _manifest(),
            _entry(_manifest(), content_hash="c" * 32),
            "with content hash",
        ),
    ],
    ids=["other-cell", "forged-hash", "not-in-catalog", "stale", "other-key", "catalog-cell",
         "mode", "catalog-hash"],
)  # fmt: skip
def test_an_unproven_pointer_is_refused_with_what_is_wrong_and_the_fix(manifest, entry, says):
    with pytest.raises(PointerNotProven) as refused:
        _prove(manifest, entry)
    assert isinstance(refused.value, CaptureVerificationError)
    assert says in str(refused.value)
    assert f"Re-materialize captured_fold for {CELL}" in str(refused.value)


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe", b"[]", b'{"capture_key": "ck-1"}'])
def test_a_garbled_pointer_is_refused_without_echoing_it(raw):
    with pytest.raises(PointerNotProven, match="cannot be read as a capture manifest") as refused:
        prove_pointer(CELL, raw, lambda key: None)
    assert "ck-1" not in str(refused.value)


def test_a_cell_slug_round_trips_and_anything_else_is_refused():
    for cell in (CELL, CellRef.parse("my__uni_verse/BTC/fold-0")):
        assert CellRef.from_slug(cell.slug) == cell
    for slug in ("defi_top5__UNIUSDC", "defi_top5__uniusdc__fold-3", "ab__BC__fold-3\n", "x.json"):
        with pytest.raises(DiagInputError, match="not a cell slug"):
            CellRef.from_slug(slug)


def test_pointers_in_use_keep_the_named_captures_and_report_the_bad_ones(tmp_path):
    store = LocalBlobStore(tmp_path)
    good, other = _manifest(), _manifest(CellRef.parse("defi_top5/OPUSDC/fold-3"))
    swapped = CellRef.parse("defi_top5/LDOUSDC/fold-3")
    store.write_bytes(f"p/{CELL.slug}.json", good.model_dump_json().encode())
    store.write_bytes(f"p/{swapped.slug}.json", other.model_dump_json().encode())
    store.write_bytes("p/defi_top5__ARBUSDC__fold-3.json", b"secret")
    store.write_bytes("p/notes.json", b"secret")

    found = pointers_in_use(store, [*store.list_keys("p"), "p/gone.json"])
    assert found.keys == {good.capture_key, other.capture_key}
    assert found.keep_cells == {str(swapped), "defi_top5/ARBUSDC/fold-3"}
    assert set(found.bad) == {
        f"p/{swapped.slug}.json",
        "p/defi_top5__ARBUSDC__fold-3.json",
        "p/notes.json",
    }
    assert "names a capture of defi_top5/OPUSDC/fold-3" in found.bad[f"p/{swapped.slug}.json"]
    assert "not a cell slug" in found.bad["p/notes.json"]
    assert not any("secret" in why for why in found.bad.values())
