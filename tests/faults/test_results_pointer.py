"""Faults in a cell's results pointer, met by the diagnostics and the audit report.

The pointer (``results/captured_fold/<cell slug>.json``) is a file anyone with store access
can swap, edit or garble, and the capture it names can lose its files or its catalog entry
after it was written. Whatever happens to it, no diagnostic computes a verdict on a capture
that is not the catalog's complete capture of its own cell: s40 says INCONCLUSIVE_TOOLING with
the reason, the other diagnostics fail with the reason and the fix (never a traceback).

Two cells are captured once for the module; each test works on its own copy of that store.
"""

import json
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from diag_assets.audit.run_results import materialized_metadata, refused_capture
from diag_assets.core.cells import CellRef
from diag_assets.core.hashing.digests import bytes_digest
from diag_assets.partitions import cell_partition_key
from tests.dagster.conftest import APPROVED, TINY_RUN_CONFIG, local_resources
from tests.fixtures.audit import anchor_and_consumers, audit_report, captured_fold, s23_drift

UNI = CellRef.parse("defi_top5/UNIUSDC/fold-2")
OP = CellRef.parse("defi_top5/OPUSDC/fold-2")
ASSETS = [captured_fold, anchor_and_consumers, s23_drift, audit_report]
# The anchor is kept and fitted, so an unproven pointer would otherwise be CERTIFIED.
FULL_AUDIT = ["s22a1_anchor", "s40_verdict", "s23_drift"]
INCONCLUSIVE = "INCONCLUSIVE_TOOLING"
FIX = "Re-materialize captured_fold for"


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", [UNI.symbol, OP.symbol])
        yield instance


def _capture(resources, instance, cell: CellRef) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [captured_fold],
        resources=resources,
        instance=instance,
        partition_key=cell_partition_key(cell),
        run_config={"ops": {"captured_fold": TINY_RUN_CONFIG["ops"]["captured_fold"]}},
        tags=APPROVED,
    )


@pytest.fixture(scope="module")
def captured(tmp_path_factory, instance) -> Path:
    """A store in which UNI and OP are captured (no diagnostic has run yet)."""
    root = tmp_path_factory.mktemp("captured")
    resources = local_resources(root)
    for cell in (UNI, OP):
        _capture(resources, instance, cell)
    return root


@pytest.fixture
def root(captured, tmp_path) -> Path:
    """This test's own copy of the captured store."""
    copy = tmp_path / "store"
    shutil.copytree(captured, copy)
    return copy


def _pointer(root: Path, cell: CellRef) -> Path:
    return root / "artifacts" / "results" / "captured_fold" / f"{cell.slug}.json"


def _capture_key(root: Path, cell: CellRef) -> str:
    return json.loads(_pointer(root, cell).read_bytes())["capture_key"]


def _audit(root: Path, instance, cell: CellRef, selection=FULL_AUDIT, *, skip=False):
    probe = TINY_RUN_CONFIG["ops"]["anchor_and_consumers"]["config"]
    anchor_step = {"ops": {"anchor_and_consumers": {"config": {**probe, "skip_s22a1": skip}}}}
    config = anchor_step if "s40_verdict" in selection else {}
    return dg.materialize(
        ASSETS,
        selection=selection,
        resources=local_resources(root),
        instance=instance,
        partition_key=cell_partition_key(cell),
        run_config=config,
        raise_on_error=False,
    )


def _s40(result) -> dict:
    return materialized_metadata(result, "s40_verdict")


def _failure(result, node: str) -> str:
    """The description of ``node``'s dg.Failure (a raw exception has none: it fails here)."""
    failure = result.failure_data_for_node(node)
    assert failure is not None, f"{node} did not fail"
    assert failure.user_failure_data is not None, f"{node} crashed: {failure.error.message}"
    return failure.user_failure_data.description


def _assert_inconclusive(result, *words: str) -> str:
    s40 = _s40(result)
    assert s40["certification"] == INCONCLUSIVE, s40["certification_reason"]
    assert s40["signal"] == "NOT_RUN"
    for word in words:
        assert word in s40["certification_reason"]
    return s40["certification_reason"]


def test_swapped_pointers_are_never_certified_on_the_other_cells_capture(root, instance):
    uni, op = _pointer(root, UNI), _pointer(root, OP)
    uni_bytes, op_bytes = uni.read_bytes(), op.read_bytes()
    uni.write_bytes(op_bytes)
    op.write_bytes(uni_bytes)

    result = _audit(root, instance, UNI)
    _assert_inconclusive(result, f"The results pointer of {UNI} names a capture of {OP}", FIX)
    assert _s40(result)["capture_content_hash"] == ""  # no capture is claimed
    drift = _failure(result, "s23_drift")
    assert f"s23_drift for {UNI}: {INCONCLUSIVE}" in drift
    assert f"names a capture of {OP}" in drift and FIX in drift


def test_edited_content_hash_is_inconclusive(root, instance):
    pointer = _pointer(root, UNI)
    manifest = json.loads(pointer.read_bytes())
    manifest["content_hash"] = "0" * len(manifest["content_hash"])
    pointer.write_text(json.dumps(manifest))

    result = _audit(root, instance, UNI, ["s22a1_anchor", "s40_verdict"])
    _assert_inconclusive(result, "hash to content hash", FIX)


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\xffnot json at all", b'{"capture_key": "ck-1"}', b""],
    ids=["bytes", "partial-manifest", "empty"],
)
def test_garbled_pointer_is_inconclusive_with_a_clear_reason(root, instance, garbage):
    _pointer(root, UNI).write_bytes(garbage)
    result = _audit(root, instance, UNI, ["s40_verdict", "s23_drift"], skip=True)
    reason = _assert_inconclusive(result, "cannot be read as a capture manifest", FIX)
    assert "ValidationError" not in reason and "pydantic" not in reason
    assert "cannot be read as a capture manifest" in _failure(result, "s23_drift")


def test_pointer_to_a_stale_capture_is_inconclusive(root, instance):
    key = _capture_key(root, UNI)
    with local_resources(root)["capture_cache"].open() as cache:
        cache.catalog.mark_stale(key, "source drift: abc")

    _assert_inconclusive(
        _audit(root, instance, UNI, ["s22a1_anchor", "s40_verdict"]),
        f"names capture {key}, which the capture catalog marks stale: source drift",
        FIX,
    )


def test_files_deleted_after_a_hit_give_inconclusive_and_a_clear_failure(root, instance):
    hit = _capture(local_resources(root), instance, UNI)
    assert materialized_metadata(hit, "captured_fold")["cache"] == "HIT"
    key = _capture_key(root, UNI)
    for data in (root / "artifacts" / "captures" / key).rglob("*.parquet"):
        data.unlink()  # an operator clears the data files; the catalog still says complete

    result = _audit(root, instance, UNI)
    drift = _failure(result, "s23_drift")
    assert f"s23_drift for {UNI}: {INCONCLUSIVE}" in drift and "X.parquet" in drift and FIX in drift
    _assert_inconclusive(result, "captured fold failed verification", "missing", FIX)


def test_capture_retired_under_its_pointer_gives_inconclusive_and_a_clear_failure(root, instance):
    key = _capture_key(root, UNI)
    with local_resources(root)["capture_cache"].open() as cache:
        cache.artifacts.delete(key)  # retired as the GC does: files, then the catalog row
        cache.catalog.delete(key)

    result = _audit(root, instance, UNI, ["s40_verdict", "s23_drift"], skip=True)
    assert "which the capture catalog does not hold" in _failure(result, "s23_drift")
    _assert_inconclusive(result, "which the capture catalog does not hold", FIX)


def test_audit_report_shows_an_unproven_pointer_as_the_problem(root, instance):
    _pointer(root, UNI).write_bytes(_pointer(root, OP).read_bytes())
    op_hash = json.loads(_pointer(root, OP).read_bytes())["content_hash"]

    result = _audit(root, instance, UNI, ["audit_report"])
    report = materialized_metadata(result, "audit_report")
    assert report["certification"] == INCONCLUSIVE
    assert f"names a capture of {OP}" in report["headline"]
    assert op_hash not in report["report"]  # the other cell's capture is not shown as this one
    assert "captured fold not established" in report["report"]


def test_a_capture_whose_contents_fail_the_load_is_recaptured_not_inconclusive_forever(
    root, instance
):
    """X's bytes match the manifest's digest but not its canonical hash (a writer's bug):
    the cheap checks pass, the load does not. The diagnostics are inconclusive once, the
    capture is marked stale, and the next approved capture heals the cell."""
    key = _capture_key(root, UNI)
    manifest_path = root / "artifacts" / "captures" / key / "manifest.json"
    manifest = json.loads(manifest_path.read_bytes())
    (x_file,) = (root / "artifacts" / "captures" / key).rglob("X.parquet")
    frame = pd.read_parquet(x_file)
    frame.iloc[0, 0] = frame.iloc[0, 0] + 1.0
    frame.to_parquet(x_file, index=False)
    payload = x_file.read_bytes()
    manifest["files"]["X.parquet"] = {"bytes": len(payload), "digest": bytes_digest(payload)}
    manifest_path.write_text(json.dumps(manifest))
    _pointer(root, UNI).write_text(json.dumps(manifest))  # as captured_fold would write it

    first = _audit(root, instance, UNI)
    _assert_inconclusive(first, "captured fold failed verification", "canonical hash of X")
    assert "verification failed" in _failure(first, "s23_drift")

    refused = dg.materialize(
        [captured_fold],
        resources=local_resources(root),
        instance=instance,
        partition_key=cell_partition_key(UNI),
        run_config={"ops": {"captured_fold": TINY_RUN_CONFIG["ops"]["captured_fold"]}},
        raise_on_error=False,
    )
    # Refused, not failed: the capture's approval check says why.
    assert "is stale: verification failed" in (refused_capture(refused, "captured_fold") or "")
    healed = _capture(local_resources(root), instance, UNI)
    assert materialized_metadata(healed, "captured_fold")["cache"] == "MISS"
    assert _s40(_audit(root, instance, UNI))["certification"] == "CERTIFIED"
