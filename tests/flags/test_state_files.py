"""monitoring/files.py, through which the state and every generated file are written: a replaced file keeps
its owner and mode, and many files are made durable by one os.sync() instead of an fsync each."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitoring import files
from monitoring.files import FSYNC_EACH, NEW_FILE_MODE, replace_atomically, write_all

NOBODY = 65534


def test_a_new_file_gets_the_default_mode(tmp_path: Path) -> None:
    replace_atomically(tmp_path / "new.json", "{}")
    assert (tmp_path / "new.json").stat().st_mode & 0o7777 == NEW_FILE_MODE


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")
    path.chmod(0o600)
    replace_atomically(path, "new")
    assert path.read_text() == "new" and path.stat().st_mode & 0o7777 == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a file to another user")
def test_root_replacing_another_users_file_keeps_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")
    os.chown(path, NOBODY, NOBODY)
    path.chmod(0o640)
    replace_atomically(path, "new")
    after = path.stat()
    assert (after.st_uid, after.st_gid, after.st_mode & 0o7777) == (NOBODY, NOBODY, 0o640)


@pytest.mark.parametrize("count", [FSYNC_EACH, FSYNC_EACH + 1])
def test_many_files_are_synced_once_few_files_one_by_one(tmp_path: Path, monkeypatch, count: int) -> None:
    calls = {"fsync": 0, "sync": 0}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        calls["fsync"] += 1
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "sync", lambda: calls.__setitem__("sync", calls["sync"] + 1))
    written = write_all(tmp_path, {f"docs/{k}.md": f"runbook {k}\n" for k in range(count)})
    assert len(written) == count and (tmp_path / f"docs/{count - 1}.md").read_text() == f"runbook {count - 1}\n"
    folders = 1
    if count <= FSYNC_EACH:
        assert calls == {"fsync": count + folders, "sync": 0}
    else:
        assert calls == {"fsync": folders, "sync": 1}
