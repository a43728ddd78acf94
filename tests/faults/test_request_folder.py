"""A poisoned re-audit request folder: the tick completes, reports each bad entry, leaks nothing.

Entries an operator or another system can leave in the folder under a ``*.json`` name: a
folder, a dangling link, links to secret files, a fifo, an unreadable file, invalid JSON, a
huge file, a cell ref with a trailing newline. Beside them two good requests must launch,
every bad entry must be named once with its fix, and no byte of a secret may reach a log, a
skip reason, a cursor or a run request.
"""

import dataclasses
import io
import json
import logging
import os
import stat
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from diag_assets.component.location import build_audit
from diag_assets.core.audit import requests as request_folder
from diag_assets.core.audit.requests import MAX_REQUEST_BYTES, read_requests
from diag_assets.core.cells import CellRef
from diag_assets.core.names import CAPTURED_FOLD, REAUDIT_SENSOR
from diag_assets.core.recipe.protocol import TrialSettings
from diag_assets.definitions import REFERENCE_AUDIT
from diag_assets.partitions import cell_partition_key
from tests.dagster.conftest import APPROVED, local_resources
from tests.fixtures.unprivileged import IS_ROOT, as_nobody

WARM = CellRef.parse("defi_top5/UNIUSDC/fold-1")
SECRET_TEXT = "password=hunter2-SECRET-TEXT-7f3a"
SECRET_REQUESTER = "SECRET-REQUESTER-91c2"
INVALID_MARKER = "INVALID-JSON-MARKER-55d0"
HUGE_MARKER = "HUGE-REQUEST-MARKER-0b7e"
# The packaged audit with tiny default trials: the sensor re-audits with the audit's defaults,
# so a warm cell is captured in a second.
TINY = build_audit(
    dataclasses.replace(REFERENCE_AUDIT, trials=TrialSettings(n_trials=2, max_rounds=40))
)
captured_fold = TINY.asset(CAPTURED_FOLD)
(reaudit_requests,) = [s for s in TINY.defs.sensors or [] if s.name == REAUDIT_SENSOR]


@pytest.fixture
def resources(tmp_path):
    return local_resources(tmp_path / "location")


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", [WARM.symbol])
        yield instance


def _write(directory: Path, name: str, body) -> Path:
    path = directory / name
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


def poison(directory: Path, secrets: Path) -> dict[str, str]:
    """Every bad entry of the campaign, by file name -> the word its rejection must say."""
    directory.mkdir(parents=True, exist_ok=True)
    secrets.mkdir(parents=True, exist_ok=True)
    text_secret = _write(secrets, "secret.txt", SECRET_TEXT)
    # A secret that is itself a valid request: followed, it would launch a run carrying it.
    request_secret = _write(
        secrets, "secret.json", {"cell_ref": str(WARM), "requested_by": SECRET_REQUESTER}
    )
    (directory / "x.json").mkdir()
    (directory / "dangling.json").symlink_to(secrets / "nowhere.json")
    (directory / "secret-link.json").symlink_to(text_secret)
    (directory / "request-link.json").symlink_to(request_secret)
    os.mkfifo(directory / "y.json")
    _write(directory, "broken.json", '{"cell_ref": "defi_top5/UNIUSDC/fold-1", ' + INVALID_MARKER)
    huge = {"cell_ref": str(WARM), "reason": HUGE_MARKER * (2 * MAX_REQUEST_BYTES // 20)}
    _write(directory, "huge.json", huge)
    _write(directory, "newline.json", {"cell_ref": f"{WARM}\n", "requested_by": "carol"})
    bad = {
        "x.json": "is a folder",
        "dangling.json": "is a symbolic link",
        "secret-link.json": "is a symbolic link",
        "request-link.json": "is a symbolic link",
        "y.json": "is a named pipe (fifo)",
        "broken.json": "Invalid JSON",
        "huge.json": f"more than the {MAX_REQUEST_BYTES}",
        "newline.json": "Malformed cell_ref",
    }
    if not IS_ROOT:  # root reads any file: test_an_unreadable_file_is_rejected_on_its_own
        locked = _write(directory, "locked.json", {"cell_ref": str(WARM)})
        locked.chmod(0)
        bad["locked.json"] = "cannot be read (Permission denied)"
    return bad


def _capture_warm(resources, instance) -> None:
    # The sensor asks for the default run config, so the cell is captured with it.
    dg.materialize(
        [captured_fold],
        resources=resources,
        instance=instance,
        partition_key=cell_partition_key(WARM),
        run_config={"ops": {"captured_fold": {"config": {}}}},
        tags=APPROVED,
    )


def _tick(resources, instance, cursor=None):
    """One tick; returns its result, its cursor and everything it logged."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        context.log.addHandler(handler)
        try:
            result = reaudit_requests(context)
        finally:
            context.log.removeHandler(handler)
        # A result with runs carries the new cursor; a skip updates the context's.
        cursor = getattr(result, "cursor", None) or context.cursor
        return result, cursor, stream.getvalue()


def _everything_said(result, cursor, logged) -> str:
    runs = getattr(result, "run_requests", None) or []
    return "\n".join(
        [
            logged,
            str(cursor),
            str(getattr(result, "skip_message", "")),
            *(f"{run.run_key} {run.tags}" for run in runs),
        ]
    )


def test_a_poisoned_folder_launches_the_good_requests_and_names_every_bad_one(
    resources, instance, tmp_path
):
    directory = Path(resources["audit_requests"].directory)
    bad = poison(directory, tmp_path / "secrets")
    _write(directory, "good-alice.json", {"cell_ref": str(WARM), "requested_by": "alice"})
    _write(directory, "good-bob.json", {"cell_ref": str(WARM), "requested_by": "bob"})
    _capture_warm(resources, instance)

    # The tick that rejects the bad entries says so in its status and archives them; the
    # good requests launch on the next tick.
    first, cursor, logged = _tick(resources, instance)
    assert isinstance(first, dg.SkipReason) and "launch on the next tick" in first.skip_message
    result, cursor, logged_next = _tick(resources, instance, cursor=cursor)

    assert isinstance(result, dg.SensorResult)
    assert sorted(run.tags["diag/requested_by"] for run in result.run_requests) == ["alice", "bob"]
    assert all(run.partition_key == cell_partition_key(WARM) for run in result.run_requests)
    for name, word in bad.items():
        lines = [line for line in logged.splitlines() if f"request: {name!r}" in line]
        assert len(lines) == 1, (name, logged)  # named once, by name
        assert word in lines[0] and "Fix:" in lines[0], lines[0]
        assert repr(name) in first.skip_message
        assert not os.path.lexists(directory / name)  # archived, beside its outcome
    outcomes = list((directory / "archive").glob("*.outcome.json"))
    assert len(outcomes) == len(bad)
    said = _everything_said(first, cursor, logged) + _everything_said(result, cursor, logged_next)
    said += "".join(path.read_text() for path in outcomes)
    for secret in (SECRET_TEXT, SECRET_REQUESTER, INVALID_MARKER, HUGE_MARKER):
        assert secret not in said
    assert "input_value" not in said
    # a link is moved as a link: its target is left alone
    assert (tmp_path / "secrets" / "secret.txt").read_text() == SECRET_TEXT

    # The next tick (no run created yet): nothing new, no rejection reported again.
    again, _, logged_again = _tick(resources, instance, cursor=cursor)
    assert "Rejected" not in logged_again and "Rejected" not in logged_next


def test_rejected_entries_are_named_in_the_skip_reason(resources, instance, tmp_path):
    directory = Path(resources["audit_requests"].directory)
    bad = poison(directory, tmp_path / "secrets")
    result, cursor, logged = _tick(resources, instance)
    assert isinstance(result, dg.SkipReason)
    assert f"{len(bad)} request(s) rejected" in result.skip_message
    for name in bad:
        assert repr(name) in result.skip_message
    assert SECRET_TEXT not in _everything_said(result, cursor, logged)


def test_a_fixed_entry_is_a_new_request(resources, instance, tmp_path):
    directory = Path(resources["audit_requests"].directory)
    directory.mkdir(parents=True)
    (directory / "late.json").symlink_to(tmp_path / "nowhere.json")
    first, cursor, _ = _tick(resources, instance)
    assert isinstance(first, dg.SkipReason) and "'late.json'" in first.skip_message
    assert not os.path.lexists(directory / "late.json")  # archived
    _write(directory, "late.json", {"cell_ref": str(WARM), "requested_by": "dave"})
    fixed, _, logged = _tick(resources, instance, cursor=cursor)
    # Now a valid request: its (cold) cell waits for approval, nothing is rejected.
    assert isinstance(fixed, dg.SkipReason) and str(WARM) in fixed.skip_message
    assert "rejected" not in fixed.skip_message and "Rejected" not in logged


def test_a_file_gone_between_listing_and_reading_is_skipped(tmp_path, monkeypatch):
    _write(tmp_path, "kept.json", {"cell_ref": str(WARM)})
    listed = os.listdir
    monkeypatch.setattr(
        request_folder.os, "listdir", lambda d: [*listed(d), "gone.json", "gone-too.json"]
    )
    (only,) = read_requests(tmp_path)
    assert only.path.name == "kept.json" and only.request is not None


def test_a_link_swapped_in_after_the_listing_is_never_followed(tmp_path, monkeypatch):
    # The entry was a regular file when listed and is a link to a secret when opened.
    secret = _write(tmp_path, "secret.json", {"cell_ref": str(WARM), "requested_by": SECRET_TEXT})
    folder = tmp_path / "requests"
    folder.mkdir()
    (folder / "swapped.json").symlink_to(secret)
    real_lstat = os.lstat
    monkeypatch.setattr(
        request_folder.os,
        "lstat",
        lambda path: os.stat(path) if Path(path).name == "swapped.json" else real_lstat(path),
    )
    (item,) = read_requests(folder)
    assert item.request is None and "is a symbolic link" in (item.error or "")
    assert SECRET_TEXT not in (item.error or "")


def _read_as_nobody(folder: Path) -> list[tuple[str, str | None, bool]]:
    """read_requests in a child process that runs as an unprivileged user."""
    return as_nobody(
        lambda: [(i.path.name, i.error, i.request is not None) for i in read_requests(folder)]
    )


def test_an_unreadable_file_is_rejected_on_its_own():
    # Root reads every file, so as root the folder is read by a child running as nobody.
    folder = Path(tempfile.mkdtemp(prefix="diag-requests-"))
    try:
        folder.chmod(0o755)
        _write(folder, "good.json", {"cell_ref": str(WARM)}).chmod(0o644)
        _write(folder, "locked.json", {"cell_ref": str(WARM), "reason": SECRET_TEXT}).chmod(0)
        if IS_ROOT:
            items = _read_as_nobody(folder)
        else:
            items = [(i.path.name, i.error, i.request is not None) for i in read_requests(folder)]
        by_name = {name: (error, ok) for name, error, ok in items}
        assert by_name["good.json"] == (None, True)
        error, ok = by_name["locked.json"]
        assert not ok and "cannot be read (Permission denied)" in (error or "")
        assert "Fix: make it readable" in (error or "") and SECRET_TEXT not in (error or "")
    finally:
        for path in folder.iterdir():
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)
            path.unlink()
        folder.rmdir()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"cell_ref": "x", ' + INVALID_MARKER, "Invalid JSON"),
        (json.dumps({"cell_ref": str(WARM), INVALID_MARKER: 1}), "Extra inputs are not permitted"),
        (json.dumps({"cell_ref": str(WARM), "requested_by": INVALID_MARKER * 20}), "at most 200"),
        (json.dumps([INVALID_MARKER]), "Input should be an object"),
    ],
    ids=["truncated", "unknown-field", "long-requester", "not-an-object"],
)
def test_an_invalid_request_says_where_without_quoting_its_values(tmp_path, body, expected):
    _write(tmp_path, "bad.json", body)
    (item,) = read_requests(tmp_path)
    assert item.request is None and expected in (item.error or "")
    assert "input_value" not in (item.error or "")
    # A field name is the request's own text: quoted, but cut short.
    assert INVALID_MARKER * 2 not in (item.error or "")
    if expected != "Extra inputs are not permitted":
        assert INVALID_MARKER not in (item.error or "")


def test_a_long_malformed_cell_ref_is_quoted_only_in_part(tmp_path):
    _write(tmp_path, "long.json", {"cell_ref": "x" * 10_000})
    (item,) = read_requests(tmp_path)
    assert "Malformed cell_ref" in (item.error or "") and len(item.error or "") < 600
