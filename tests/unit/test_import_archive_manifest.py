"""`dealreg import` of an archive whose manifest is valid JSON but not a dealreg manifest
(edited by hand, written by another tool) is refused in one line, never a traceback."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from dealreg.moving import FILES, FORMAT, FORMAT_VERSION, MANIFEST, import_archive
from dealreg.preflight import OperatorError


def _archive(path: Path, manifest: Any) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [(MANIFEST, json.dumps(manifest).encode()),
                           *((name, b"not sqlite") for name in FILES)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("manifest", [
    [],
    "dealreg",
    {"format": FORMAT, "format_version": FORMAT_VERSION},
    {"format": FORMAT, "format_version": FORMAT_VERSION, "files": {"eventlog.sqlite3": 1}},
    {"format": FORMAT, "format_version": FORMAT_VERSION, "files": []},
], ids=["list", "string", "no-files", "file-not-an-object", "files-a-list"])
def test_a_manifest_that_is_not_a_dealreg_manifest_is_refused(
        tmp_path: Path, manifest: Any) -> None:
    archive = _archive(tmp_path / "export.tar.gz", manifest)
    with pytest.raises(OperatorError, match="not a valid dealreg export") as refused:
        import_archive(archive, tmp_path / "data", lambda _: None)
    assert refused.value.exit_code == 1
    assert not (tmp_path / "data").exists()
