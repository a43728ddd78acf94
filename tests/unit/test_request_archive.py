"""The archive of handled re-audit requests, on real files: moved with the outcome, or kept."""

import json
import os
from pathlib import Path

import pytest

from diag_assets.core.audit.request_archive import (
    RequestNotArchived,
    RequestOutcome,
    archive_request,
    read_outcome,
)
from diag_assets.core.audit.requests import read_requests


def _one(folder: Path, name: str, body: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(body)
    (item,) = [p for p in read_requests(folder) if p.path.name == name]
    return item


def test_a_handled_request_moves_to_the_archive_with_its_outcome(tmp_path):
    body = json.dumps({"cell_ref": "defi_top5/UNIUSDC/fold-3", "requested_by": "alice"})
    item = _one(tmp_path, "alice.json", body)
    where = archive_request(item, RequestOutcome.LAUNCHED, "re-audit launched", run_id="r-1")
    assert where == tmp_path / "archive" / f"{item.request_id}.json"
    assert where.read_text() == body and not (tmp_path / "alice.json").exists()
    outcome = read_outcome(where.with_name(f"{item.request_id}.outcome.json"))
    assert (outcome.outcome, outcome.run_id, outcome.requested_by) == ("LAUNCHED", "r-1", "alice")
    assert outcome.request_file == "alice.json"
    assert [p.path.name for p in read_requests(tmp_path)] == []  # the archive is not listed

    # The same request filed again is archived beside the first, never over it.
    again = _one(tmp_path, "alice.json", body)
    second = archive_request(again, RequestOutcome.SERVED, "served", run_id="r-2")
    assert second.name == f"{item.request_id}-1.json" and where.exists()


def test_a_link_is_archived_as_a_link_and_its_target_is_left_alone(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    folder = tmp_path / "requests"
    folder.mkdir()
    (folder / "link.json").symlink_to(secret)
    (item,) = read_requests(folder)
    where = archive_request(item, RequestOutcome.REJECTED, item.error or "")
    assert where is not None and where.is_symlink() and secret.read_text() == "s3cret"


def test_an_archive_reached_through_a_link_is_refused_and_the_request_kept(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "requests"
    item = _one(folder, "bob.json", '{"cell_ref": "defi_top5/UNIUSDC/fold-3"}')
    (folder / "archive").symlink_to(elsewhere)
    with pytest.raises(RequestNotArchived, match="could not be moved") as refused:
        archive_request(item, RequestOutcome.REJECTED, "why")
    assert "Fix:" in str(refused.value)
    assert (folder / "bob.json").exists() and list(elsewhere.iterdir()) == []


def test_a_file_that_cannot_be_moved_leaves_no_outcome_behind(tmp_path, monkeypatch):
    item = _one(tmp_path, "carol.json", '{"cell_ref": "defi_top5/UNIUSDC/fold-3"}')

    def no_rename(source, target):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "rename", no_rename)
    with pytest.raises(RequestNotArchived, match="Permission denied"):
        archive_request(item, RequestOutcome.REJECTED, "why")
    assert (tmp_path / "carol.json").exists()
    assert list((tmp_path / "archive").iterdir()) == []


def test_a_file_gone_before_the_move_is_not_a_request_any_more(tmp_path):
    item = _one(tmp_path, "dave.json", '{"cell_ref": "defi_top5/UNIUSDC/fold-3"}')
    (tmp_path / "dave.json").unlink()
    assert archive_request(item, RequestOutcome.REJECTED, "why") is None
    assert list((tmp_path / "archive").iterdir()) == []
