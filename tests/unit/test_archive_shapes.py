"""Review B2 (issue 11): crafted export archives (JSON of the wrong type in the zip comment
or manifest.json, a foreign signature of the wrong type, a damaged member, a local header
naming another file) end ``import`` and ``trust FILE`` with one line and exit 2, not a
traceback, and change nothing."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest

from durable_nb import trust
from durable_nb.cli import main, share
from durable_nb.cli._exit import USAGE

NB, JOURNAL = "nb.ipynb", "journal/nb.duckdb"


@pytest.fixture(autouse=True)
def secret(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(trust, "_secret", None)


def _archive(path, manifest=None, comment=b"{}", members=None):
    members = members or {NB: b"{}" * 200, JOURNAL: b"journal bytes " * 200}
    if manifest is None:
        files = {n: hashlib.sha256(d).hexdigest() for n, d in members.items()}
        manifest = {"format": share.EXPORT_FORMAT, "notebook": NB, "files": files}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest))
        for name, data in members.items():
            z.writestr(name, data)
        z.comment = comment
    return path


def _flip(path, name, at, value=None):
    """Change one byte of ``name``'s local entry (``at`` bytes after its header)."""
    data = bytearray(path.read_bytes())
    offset = zipfile.ZipFile(path).getinfo(name).header_offset + at
    data[offset] = value if value is not None else data[offset] ^ 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("comment", [b"[1]", b'"x"', b'{"sig": 5}', b'{"sig": [1]}', b"[" * 5000])
def test_a_seal_of_the_wrong_shape_is_not_yours(tmp_path, comment):
    z, manifest, mine = share._read_archive(_archive(tmp_path / "a.zip", comment=comment))
    z.close()
    assert manifest["notebook"] == NB and mine is False


CRAFTED = {
    "manifest-list": lambda p: _archive(p, manifest=[1, 2]),
    "manifest-string": lambda p: _archive(p, manifest="str"),
    "manifest-number": lambda p: _archive(p, manifest=5),
    "files-int": lambda p: _archive(
        p, manifest={"format": share.EXPORT_FORMAT, "notebook": NB, "files": {NB: 1, JOURNAL: 1}}
    ),
    "damaged-deflate": lambda p: _flip(_archive(p), JOURNAL, 30 + len(JOURNAL) + 8) or p,
    "local-name-differs": lambda p: _flip(_archive(p), NB, 30, ord("X")) or p,
}


@pytest.mark.parametrize("shape", sorted(CRAFTED))
@pytest.mark.parametrize("command", ["import", "trust"])
def test_a_crafted_archive_is_one_line_and_exit_2(tmp_path, capsys, shape, command):
    archive = CRAFTED[shape](tmp_path / "a.zip")
    before = archive.read_bytes()
    inbox = tmp_path / "inbox"
    argv = ["import", str(archive), "--dir", str(inbox)] if command == "import" else [
        "trust", str(archive)]  # fmt: skip
    assert main(argv) == USAGE
    err = capsys.readouterr().err
    assert err.startswith("durable-nb: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and not inbox.exists() and archive.read_bytes() == before
