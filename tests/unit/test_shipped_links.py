"""A repository or an archive can carry links where durable_nb keeps or writes files: the
``.durable`` folder, the notebook's name in ``import``, the export's temporary file. None
is followed: one line says what to do, and the user's files they point to are untouched
(helper-57 F1-F4)."""

from __future__ import annotations

import os

import nbformat
import pytest

from durable_nb import trust
from durable_nb.cli import main
from durable_nb.cli._exit import OK, USAGE
from durable_nb.errors import JournalCorrupt
from durable_nb.store import Journal

MINE = b"the user's own\n" * 16


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    """The session's Jupyter data folder and secret (conftest.py's): the one the archive
    below is signed with. No folder named for the journals."""
    monkeypatch.delenv("DURABLE_NB_DIR", raising=False)


@pytest.fixture
def home(tmp_path):
    """A user's folder holding files named as a journal's would be."""
    home = tmp_path / "home"
    (home / "notes.blobs").mkdir(parents=True)
    for name in ("notes.log", "notes.wal", "notes.closed", "notes.duckdb.wal",
                 "notes.blobs/thesis.tex"):  # fmt: skip
        (home / name).write_bytes(MINE)
    return home


def _untouched(home) -> bool:
    return all((home / n).read_bytes() == MINE for n in ("notes.log", "notes.wal",
               "notes.closed", "notes.duckdb.wal", "notes.blobs/thesis.tex"))  # fmt: skip


def _notebook(folder):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "notes.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), path)
    return path


def test_a_durable_folder_shipped_as_a_link_is_not_followed(tmp_path, home, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    os.symlink(home, project / ".durable")
    with pytest.raises(JournalCorrupt, match=r"\.durable is a link .*DURABLE_NB_DIR"):
        Journal.open(project / ".durable" / "notes.duckdb")
    assert _untouched(home) and not (home / "notes.duckdb").exists()
    # The folder the person names for their journals may be a link: their own doing.
    elsewhere = tmp_path / "big-disk"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "journals")
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path / "journals"))
    Journal.open(tmp_path / "journals" / "notes.duckdb").close()
    assert (elsewhere / "notes.duckdb").is_file()


@pytest.fixture(scope="module")
def archive(tmp_path_factory, _session_jupyter_data):
    """An export of a notebook with a journal, signed with the session's secret (the
    tests' own: conftest.py). Made once: the tests only read it."""
    with pytest.MonkeyPatch.context() as mp:  # as the tests run (before their fixtures)
        mp.setenv("JUPYTER_DATA_DIR", _session_jupyter_data)
        mp.delenv("DURABLE_NB_DIR", raising=False)
        mp.setattr(trust, "_secret", None)
        folder = tmp_path_factory.mktemp("archive")
        source = _notebook(folder / "source")
        Journal.open(source.parent / ".durable" / "notes.duckdb").close()
        out = folder / "notes.zip"
        assert main(["export", str(source), "-o", str(out)]) == OK
    return out


@pytest.mark.parametrize("planted", ["link", "dangling link", "fifo", "folder"])
def test_import_never_writes_the_notebook_through_what_is_at_its_name(
    tmp_path, archive, capsys, planted
):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    victim = tmp_path / "bashrc"
    victim.write_bytes(MINE)
    at = inbox / "notes.ipynb"
    if planted == "link":
        os.symlink(victim, at)
    elif planted == "dangling link":
        os.symlink(tmp_path / "not-yet", at)
    elif planted == "fifo":
        os.mkfifo(at)  # (read, it hung the import)
    else:
        at.mkdir()
    assert main(["import", str(archive), "--dir", str(inbox), "--force"]) == USAGE
    err = capsys.readouterr().err
    assert "is not a regular file" in err and err.count("\n") == 1
    assert victim.read_bytes() == MINE and not (tmp_path / "not-yet").exists()
    assert not (inbox / ".durable").exists()


@pytest.mark.parametrize("force", [False, True])
def test_import_keeps_no_journal_in_a_durable_folder_that_is_a_link(
    tmp_path, archive, home, capsys, force
):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    os.symlink(home, inbox / ".durable")
    argv = ["import", str(archive), "--dir", str(inbox)] + ["--force"] * force
    assert main(argv) == USAGE
    assert "is a link" in capsys.readouterr().err
    assert _untouched(home) and not (home / "notes.duckdb").exists()


@pytest.mark.parametrize("stray", ["notes.log", "notes.duckdb.wal", "notes.blobs"])
def test_import_replaces_any_journal_file_only_when_forced(tmp_path, archive, capsys, stray):
    inbox = tmp_path / "inbox"
    (inbox / ".durable").mkdir(parents=True)
    there = inbox / ".durable" / stray
    there.mkdir() if stray.endswith(".blobs") else there.write_bytes(MINE)
    assert main(["import", str(archive), "--dir", str(inbox)]) == USAGE
    assert "already has a journal" in capsys.readouterr().err and there.exists()
    assert main(["import", str(archive), "--dir", str(inbox), "--force"]) == OK


def test_export_never_writes_through_a_link_at_a_temporary_name(tmp_path, capsys):
    source = _notebook(tmp_path / "project")
    Journal.open(source.parent / ".durable" / "notes.duckdb").close()
    victim = tmp_path / "bashrc"
    victim.write_bytes(MINE)
    out = source.parent / "notes.zip"
    os.symlink(victim, source.parent / ".notes.zip.tmp")  # the name it used to write
    assert main(["export", str(source), "-o", str(out)]) == OK
    assert victim.read_bytes() == MINE and out.is_file() and not out.is_symlink()
    inbox = tmp_path / "inbox"
    assert main(["import", str(out), "--dir", str(inbox)]) == OK  # the archive is whole
    assert (inbox / ".durable" / "notes.duckdb").is_file()
