"""Edge inputs: names with a stray newline or space, near-miss spellings, a full or read-only store.

Every name is matched whole and every run input is checked before any work: a typo in a run
tag or in the anchor step's run config fails the capture step before it replays a fine-tune,
and nothing is captured. A store that cannot be written says which file, why and the fix, and
leaves no half-written object behind.
"""

import errno
import os
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from diag_assets.component.audit import check_prefix
from diag_assets.core.audit.anchor_skip import load_policy, parse_flag, resolve_skip_s22a1
from diag_assets.core.capture.mode_policy import parse_mode
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.outcomes import ColdCaptureRequiresOperator
from diag_assets.core.cells import CellRef
from diag_assets.core.diagnostics.plugin import check_declarations
from diag_assets.core.errors import DiagInputError
from diag_assets.core.market_data.synthetic import SyntheticMarketData
from diag_assets.core.names import ALLOW_COLD_CAPTURE_TAG, AUDIT_KIND_TAG, SKIP_TAG
from diag_assets.core.recipe.reference import ReferenceRecipe
from diag_assets.core.storage import blob
from diag_assets.core.storage.blob import LocalBlobStore, StoreError, check_key
from diag_assets.core.storage.s3 import StoreUnavailable
from diag_assets.partitions import cell_partition_key
from resources.market_data import SyntheticMarketDataResource
from tests.conftest import TINY_BARS, TINY_CAPTURE, TINY_FOLDS
from tests.dagster.conftest import APPROVED, TINY_RUN_CONFIG, local_resources
from tests.fixtures.audit import anchor_and_consumers, captured_fold
from tests.fixtures.caches import local_cache
from tests.fixtures.unprivileged import IS_ROOT, as_nobody

REF = "defi_top5/UNIUSDC/fold-3"
CELL = CellRef.parse(REF)
STRAY = ["{}\n", " {}", "{} ", "{}\t"]  # a trailing newline, a leading/trailing space, a tab


def _strays(name: str) -> list[str]:
    return [shape.format(name) for shape in STRAY]


# --- names ----------------------------------------------------------------------------------


def test_a_cell_ref_with_a_stray_newline_or_space_is_refused():
    for text in _strays(REF):
        with pytest.raises(DiagInputError, match="Malformed cell_ref.*Fix:"):
            CellRef.parse(text)


def test_a_symbol_with_a_stray_newline_or_space_is_refused():
    for symbol in _strays("UNIUSDC"):
        with pytest.raises(DiagInputError, match="not a valid symbol"):
            CellRef("defi_top5", symbol, 3)


def test_a_universe_with_a_stray_newline_or_space_is_refused():
    for universe in _strays("defi_top5"):
        with pytest.raises(DiagInputError, match="not a valid universe name"):
            CellRef(universe, "UNIUSDC", 3)


def test_a_store_key_with_a_stray_newline_or_space_is_refused():
    for key in _strays("results/captured_fold/x.json"):
        with pytest.raises(ValueError, match="unsafe store key"):
            check_key(key)
    assert check_key("results/captured_fold/x.json") == "results/captured_fold/x.json"


def test_an_audit_prefix_with_a_stray_newline_or_space_is_refused():
    for prefix in _strays("team"):
        with pytest.raises(DiagInputError, match="audit prefix"):
            check_prefix(prefix)
    assert check_prefix("team") == "team"


def test_a_diagnostic_name_with_a_stray_newline_or_space_is_refused():
    for name in _strays("my_check"):
        declared = type("Declared", (), {"name": name})
        with pytest.raises(DiagInputError, match="declares no valid name"):
            check_declarations(declared)


def test_a_long_refused_value_is_quoted_only_in_part():
    with pytest.raises(DiagInputError) as refused:
        CellRef.parse("defi_top5/" + "A" * 100_000)
    assert len(str(refused.value)) < 400


# --- run inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "meant"),
    [("FULL_REPLAY", "full_replay"), ("single_fit ", "single_fit"), ("dataset-only", None)],
)
def test_a_capture_mode_is_spelled_exactly(value, meant):
    with pytest.raises(DiagInputError) as refused:
        parse_mode(value, what="capture_mode")
    message = str(refused.value)
    assert f"capture_mode={value!r}" in message
    assert "full_replay, dataset_only, single_fit" in message
    assert f"exactly {meant or 'dataset_only'!r}" in message
    assert parse_mode("single_fit", what="capture_mode") is CaptureMode.SINGLE_FIT


def test_a_flag_with_spaces_is_refused_naming_the_spelling():
    with pytest.raises(DiagInputError, match=r"exactly 'true'"):
        parse_flag(" true\n", what=SKIP_TAG)
    assert parse_flag("TRUE", what=SKIP_TAG) is True  # any case, as documented


@pytest.mark.parametrize(
    "override", [{"config_override": True}, {"tag_override": "false"}], ids=["config", "tag"]
)
def test_an_unknown_audit_kind_is_refused_beside_an_override(override):
    arguments = {"config_override": None, "tag_override": None, **override}
    with pytest.raises(DiagInputError, match="'light_s4O'.*not in the skip policy.*light_s40"):
        resolve_skip_s22a1(audit_kind="light_s4O", policy=load_policy(), **arguments)
    with pytest.raises(DiagInputError, match=f"the run tag {AUDIT_KIND_TAG}"):
        resolve_skip_s22a1(audit_kind=None, tag_audit_kind="S22", policy=load_policy(), **arguments)


# --- run inputs through Dagster: refused before the capture ---------------------------------

KEY = cell_partition_key(CELL)
PROBE = TINY_RUN_CONFIG["ops"]["anchor_and_consumers"]["config"]


@pytest.fixture
def resources(tmp_path):
    return local_resources(tmp_path)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", [CELL.symbol])
        yield instance


@pytest.fixture
def market_reads(monkeypatch) -> list[str]:
    """Every read of the market data source (the first thing a capture touches)."""
    reads: list[str] = []
    original = SyntheticMarketDataResource.source

    def spy(self):
        reads.append("source")
        return original(self)

    monkeypatch.setattr(SyntheticMarketDataResource, "source", spy)
    return reads


@pytest.mark.parametrize(
    ("tags", "anchor_config", "expected"),
    [
        ({AUDIT_KIND_TAG: "light_s4O"}, {}, f"'light_s4O' (the run tag {AUDIT_KIND_TAG})"),
        ({SKIP_TAG: "yes"}, {}, f"{SKIP_TAG}='yes' is not a boolean"),
        ({ALLOW_COLD_CAPTURE_TAG: "ture"}, {}, f"{ALLOW_COLD_CAPTURE_TAG}='ture'"),
    ],
    ids=["audit-kind-tag", "skip-tag", "approval-tag"],
)
def test_a_run_input_typo_fails_the_capture_before_any_replay(
    resources, instance, market_reads, tags, anchor_config, expected
):
    result = dg.materialize(
        [captured_fold, anchor_and_consumers],
        selection=["captured_fold", "s40_verdict"],
        resources=resources,
        instance=instance,
        partition_key=KEY,
        run_config={
            "ops": {
                "captured_fold": TINY_RUN_CONFIG["ops"]["captured_fold"],
                "anchor_and_consumers": {"config": {**PROBE, **anchor_config}},
            }
        },
        tags={**APPROVED, **tags},
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("captured_fold")
    assert failure is not None
    message = failure.user_failure_data.description if failure.user_failure_data else ""
    assert expected in (message or "") and "Fix:" in (message or ""), message
    assert market_reads == []  # neither the market data nor the recipe was touched
    assert not any("capture_started" in str(e.message) for e in result.all_events if e.message)
    with resources["capture_cache"].open() as cache:
        assert cache.entries() == []
    assert not (Path(resources["artifacts"].root) / "captures").exists()


@pytest.mark.parametrize(
    ("op", "config", "expected"),
    [
        ("anchor_and_consumers", {"audit_kind": "S22"}, "not in enum type AuditKindChoice got S22"),
        ("captured_fold", {"capture_mode": "FULL_REPLAY"}, "CaptureModeChoice got FULL_REPLAY"),
    ],
    ids=["audit-kind-config", "capture-mode-config"],
)
def test_a_run_config_typo_in_a_choice_is_refused_before_the_run_starts(
    resources, instance, market_reads, op, config, expected
):
    run_config = {
        "ops": {
            "captured_fold": TINY_RUN_CONFIG["ops"]["captured_fold"],
            "anchor_and_consumers": {"config": PROBE},
        }
    }
    run_config["ops"][op] = {"config": {**run_config["ops"][op]["config"], **config}}
    with pytest.raises(dg.DagsterInvalidConfigError) as refused:
        dg.materialize(
            [captured_fold, anchor_and_consumers],
            selection=["captured_fold", "s40_verdict"],
            resources=resources,
            instance=instance,
            partition_key=KEY,
            run_config=run_config,
            tags=APPROVED,
        )
    assert expected in str(refused.value)
    assert market_reads == []
    assert instance.get_runs() == []  # refused at launch: no run exists


# --- the store: read-only and full ----------------------------------------------------------


def _attempt(root: Path, operation: str) -> tuple[str, str, int | None]:
    store = LocalBlobStore(root)
    try:
        if operation == "write":
            store.write_bytes("results/x.json", b"new")
        else:
            store.delete("results/x.json")
    except OSError as error:
        return type(error).__name__, str(error), error.errno
    return "no error", "", None


@pytest.mark.parametrize("operation", ["write", "delete"])
def test_a_read_only_store_names_the_file_and_the_fix(operation):
    # A real read-only folder: chmod stops everyone but root, so as root the write is made
    # by a child process running as nobody.
    base = Path(tempfile.mkdtemp(prefix="diag-store-"))
    root = base / "store"
    try:
        base.chmod(0o755)
        LocalBlobStore(root).write_bytes("results/x.json", b"old")
        for folder in (root / "results", root):
            folder.chmod(0o555)
        if IS_ROOT:
            kind, message, code = as_nobody(lambda: _attempt(root, operation))
        else:
            kind, message, code = _attempt(root, operation)
        assert kind == "StoreError" and code == errno.EACCES
        assert f"Could not {operation} {root}/results/x.json" in message
        assert f"Fix: make {root} writable by the user running the code location" in message
        assert "DIAG_STORAGE_DIR" in message
        assert (root / "results" / "x.json").read_bytes() == b"old"  # nothing half-written
        assert sorted(p.name for p in (root / "results").iterdir()) == ["x.json"]
    finally:
        for folder in (root, root / "results"):
            folder.chmod(0o755)
        for path in sorted(base.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        base.rmdir()


def test_a_full_disk_names_the_file_and_the_fix(tmp_path, monkeypatch):
    store = LocalBlobStore(tmp_path)
    store.write_bytes("results/x.json", b"old")

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(blob.os, "fsync", full)
    with pytest.raises(StoreError) as raised:
        store.write_bytes("results/x.json", b"new" * 1000)
    message = str(raised.value)
    assert raised.value.errno == errno.ENOSPC and not isinstance(raised.value, FileNotFoundError)
    assert f"Could not write {tmp_path}/results/x.json" in message
    assert f"free space on the file system of {tmp_path}" in message
    assert (tmp_path / "results" / "x.json").read_bytes() == b"old"
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["x.json"]  # no temp file


def test_a_missing_object_stays_file_not_found_and_every_store_error_is_one_type(tmp_path):
    with pytest.raises(FileNotFoundError):
        LocalBlobStore(tmp_path).read_bytes("results/none.json")
    assert issubclass(StoreUnavailable, StoreError) and issubclass(StoreError, OSError)
    (tmp_path / "results").write_text("a file where a folder belongs")
    with pytest.raises(StoreError, match="Fix: something in .* is a file where the store needs"):
        LocalBlobStore(tmp_path).write_bytes("results/x.json", b"x")


def test_the_capture_reads_the_anchor_config_fields_the_anchor_step_defines():
    from diag_assets.audit.diagnostics import AuditRunConfig
    from diag_assets.core.audit.anchor_skip import AUDIT_KIND_CONFIG, SKIP_CONFIG

    assert {SKIP_CONFIG, AUDIT_KIND_CONFIG} <= set(AuditRunConfig.model_fields)


def test_a_capture_failed_by_a_full_disk_is_named_by_the_next_run(tmp_path, monkeypatch):
    """The catalog keeps the failed capture's reason: the next run says what failed."""
    source, recipe = SyntheticMarketData(n_bars=TINY_BARS), ReferenceRecipe()
    with local_cache(tmp_path) as cache:
        fsync = blob.os.fsync

        def full(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(blob.os, "fsync", full)
        with pytest.raises(StoreError, match="free space on the file system"):
            cache.get(CELL, source, TINY_FOLDS, recipe, TINY_CAPTURE, allow_cold=True)
        monkeypatch.setattr(blob.os, "fsync", fsync)
        with pytest.raises(ColdCaptureRequiresOperator) as refused:
            cache.get(CELL, source, TINY_FOLDS, recipe, TINY_CAPTURE, allow_cold=False)
        assert "is failed: StoreError: Could not write" in str(refused.value)
        assert "free space on the file system" in str(refused.value)
        healed = cache.get(CELL, source, TINY_FOLDS, recipe, TINY_CAPTURE, allow_cold=True)
        cache.artifacts.load(healed.manifest)
