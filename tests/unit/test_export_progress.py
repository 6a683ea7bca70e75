"""`dealreg export` of a large data directory said "copying eventlog.sqlite3" and then
nothing until it ended: it now says how many pages of each file it has copied as it goes
(at most every `PROGRESS_EVERY_SECONDS`, and once when a file is done)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from dealreg import moving


def _database(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE records (value BLOB)")
        conn.executemany("INSERT INTO records VALUES (?)", [(b"x" * 1000,)] * rows)
        conn.commit()
    finally:
        conn.close()


def test_export_says_how_far_each_file_is_as_it_copies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moving, "BACKUP_PAGES_PER_STEP", 50)
    monkeypatch.setattr(moving, "PROGRESS_EVERY_SECONDS", 0.0)
    monkeypatch.setattr(moving, "log_summary", lambda path: {})  # no log schema needed
    data = tmp_path / "data"
    data.mkdir()
    _database(data / "eventlog.sqlite3", 2_000)  # about 500 pages
    _database(data / "readmodel.sqlite3", 10)
    said: list[str] = []
    moving.export_data_dir(data, tmp_path / "out.tar.gz", said.append)
    steps = [(int(done.replace(",", "")), int(total.replace(",", "")))
             for done, total in re.findall(r"eventlog\.sqlite3: ([\d,]+)/([\d,]+) pages",
                                           "\n".join(said))]
    assert len(steps) >= 5, said  # several steps, not one line at the end
    dones = [done for done, _ in steps]
    assert dones == sorted(dones) and steps[-1][0] == steps[-1][1] > 400, steps
    assert said[-1].endswith("(100 %)") and "readmodel.sqlite3" in said[-1], said
