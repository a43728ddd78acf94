"""Faults in the results pointers the capture GC reads to know which captures are in use.

A pointer the GC cannot read must neither fail the whole collection nor let the GC retire a
capture that cell's diagnostics may read: the job succeeds, reports the pointer (its store
key and why, never its content) and keeps every capture of that cell, while the other cells'
old captures are retired as usual.

Two cells are captured twice each (an old and a current capture) once for the module; each
test collects its own copy of that store.
"""

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from diag_assets.core.cells import CellRef
from diag_assets.definitions import defs
from diag_assets.partitions import cell_partition_key
from tests.dagster.conftest import APPROVED, local_resources
from tests.fixtures.audit import captured_fold

UNI = CellRef.parse("defi_top5/UNIUSDC/fold-1")
OP = CellRef.parse("defi_top5/OPUSDC/fold-1")
OLD, CURRENT = ({"n_trials": 1, "max_rounds": 10, "seed": seed} for seed in (0, 3))
POINTERS = "results/captured_fold"
SECRET = b"operator-notes: do not echo me"


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", [UNI.symbol, OP.symbol])
        yield instance


@pytest.fixture(scope="module")
def captured(tmp_path_factory, instance) -> Path:
    """A store where each cell has an old capture and a current one its pointer names."""
    root = tmp_path_factory.mktemp("captured")
    resources = local_resources(root)
    for cell in (UNI, OP):
        for config in (OLD, CURRENT):
            dg.materialize(
                [captured_fold],
                resources=resources,
                instance=instance,
                partition_key=cell_partition_key(cell),
                run_config={"ops": {"captured_fold": {"config": config}}},
                tags=APPROVED,
            )
    return root


@pytest.fixture
def root(captured, tmp_path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(captured, copy)
    return copy


def _pointer(root: Path, name: str) -> Path:
    return root / "artifacts" / POINTERS / name


def _keys_by_cell(root: Path) -> dict[str, set[str]]:
    with local_resources(root)["capture_cache"].open() as cache:
        entries = cache.entries()
    found: dict[str, set[str]] = {}
    for entry in entries:
        found.setdefault(entry.cell_ref, set()).add(entry.key)
    return found


def _collect(root: Path, instance) -> dict:
    result = defs.resolve_job_def("capture_gc_job").execute_in_process(
        instance=instance,
        resources=local_resources(root),
        run_config={
            "ops": {"collect_capture_garbage": {"config": {"ttl_days": 1e-9, "keep_newest": 1}}}
        },
        raise_on_error=False,
    )
    assert result.success, "the GC job failed"
    (output,) = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    return {key: value.value for key, value in output.event_specific_data.metadata.items()}


def _current_key(root: Path, cell: CellRef) -> str:
    return json.loads(_pointer(root, f"{cell.slug}.json").read_bytes())["capture_key"]


def test_garbled_pointer_is_reported_and_its_cell_keeps_every_capture(root, instance):
    before = _keys_by_cell(root)
    assert all(len(keys) == 2 for keys in before.values())
    op_current = _current_key(root, OP)
    _pointer(root, f"{UNI.slug}.json").write_bytes(b"\x00" + SECRET)
    _pointer(root, "not-a-cell.json").write_bytes(SECRET)

    metadata = _collect(root, instance)
    bad = metadata["bad_pointers"]
    assert set(bad) == {f"{POINTERS}/{UNI.slug}.json", f"{POINTERS}/not-a-cell.json"}
    assert "cannot be read as a capture manifest" in bad[f"{POINTERS}/{UNI.slug}.json"]
    assert "not a cell slug" in bad[f"{POINTERS}/not-a-cell.json"]
    assert SECRET.decode() not in json.dumps(metadata, default=str)
    assert metadata["retired"] == 1
    after = _keys_by_cell(root)
    assert after[str(UNI)] == before[str(UNI)]  # which one UNI's diagnostics read is unknown
    assert after[str(OP)] == {op_current}
    assert "results pointer is unreadable" in metadata["decisions"]


def test_pointer_naming_another_cell_is_reported_and_keeps_its_cell(root, instance):
    before = _keys_by_cell(root)
    uni = _pointer(root, f"{UNI.slug}.json")
    uni.write_bytes(_pointer(root, f"{OP.slug}.json").read_bytes())

    metadata = _collect(root, instance)
    assert metadata["bad_pointers"] == {f"{POINTERS}/{UNI.slug}.json": f"names a capture of {OP}"}
    after = _keys_by_cell(root)
    assert after[str(UNI)] == before[str(UNI)]
    assert len(after[str(OP)]) == 1
