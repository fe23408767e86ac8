"""Opening a journal whose folder, side files or template someone else may have touched
(review4's open findings): checked in full, never hung, never followed, never left open."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from durable_nb import trust
from durable_nb.errors import JournalCorrupt
from durable_nb.store import Journal, opening, template

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def secret(tmp_path, monkeypatch):
    """A signing secret and a Jupyter data folder of this test's own (not the person's).
    The empty journal this process keeps (``opening._EMPTY``) is kept: the tests of the
    template itself put it aside (:func:`new_process`)."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.setattr(trust, "_secret", None)


@pytest.fixture
def new_process(monkeypatch):
    """As in a new process: no empty journal kept, the template is read (or built)."""
    monkeypatch.setattr(opening, "_EMPTY", None)


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "project" / ".durable" / "nb.duckdb"


def _in_time(fn, seconds: float = 10.0):
    """``fn()``'s result, or a failure when it has not returned within ``seconds`` (a FIFO
    opened blocking never does)."""
    out: list = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"{fn} blocked for {seconds} s"
    return out[0]


def test_a_template_that_is_a_fifo_is_not_waited_for(tmp_path, new_process):
    # review4: the template was opened blocking: a FIFO planted in the Jupyter data folder
    # (an archive of it unpacked, a synced folder) hung every new journal's opening.
    version = opening.engine().__version__
    kept = template.template_path(version)
    kept.parent.mkdir(parents=True)
    os.mkfifo(kept)
    try:
        assert _in_time(lambda: template.load(version)) is None
        j = _in_time(lambda: Journal.open(tmp_path / "new.duckdb"))  # built, kept anew
        j.close()
        assert kept.is_file() and template.load(version)
    finally:  # a reader still blocked on the FIFO (the code before) gets its end of file
        if kept.exists() and not kept.is_file():
            os.close(os.open(kept, os.O_WRONLY | os.O_NONBLOCK))


def test_a_template_that_is_a_link_is_not_followed(tmp_path, monkeypatch, new_process):
    # A link to a file this user signed (another key's template, say) is no template:
    # only the regular file at the template's own name is; the link's target is left as
    # it was when the template is written anew.
    version = opening.engine().__version__
    kept = template.template_path(version)
    Journal.open(tmp_path / "first.duckdb").close()  # a template of this user's
    elsewhere = tmp_path / "elsewhere.duckdb"
    os.replace(kept, elsewhere)
    os.symlink(elsewhere, kept)
    before = elsewhere.read_bytes()
    assert template.load(version) is None
    monkeypatch.setattr(opening, "_EMPTY", None)  # a new process: it reads the template
    Journal.open(tmp_path / "second.duckdb").close()
    assert not kept.is_symlink() and template.load(version)
    assert elsewhere.read_bytes() == before


def _lock_is_free(path: Path) -> bool:
    """Whether another process can open ``path`` for writing: no connection of this
    process holds it (DuckDB allows one writing process per file)."""
    probe = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"
    probed = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True)
    return probed.returncode == 0


def test_a_hostile_meta_value_is_refused_and_the_connection_closed(path):
    # review4: migrate raising what is neither DuckDB's nor the OS's (here OverflowError:
    # an INTERVAL schema version Python's timedelta cannot hold) left the connection open,
    # holding the file's lock, until the garbage collector found it.
    Journal.open(path).close()
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE meta")
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value INTERVAL, sig VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', to_days(2000000000), NULL)")
    con.close()
    with pytest.raises(Exception) as raised:
        Journal.open(path)
    # The traceback (migrate's frames, the connection among their names) is still alive.
    assert _lock_is_free(path)
    # One line naming the file, as for any journal it cannot read.
    assert isinstance(raised.value, JournalCorrupt), raised.value
    assert f"journal {path} cannot be read" in str(raised.value)


def _stop_a_checkpoint(path: Path) -> None:
    """Leave ``path`` as a close whose checkpoint stopped half-way leaves it (a full disk):
    DuckDB's WAL holding a checkpoint marker (in a process of its own: DuckDB then calls
    the database invalid)."""
    stop = (
        "import duckdb, os, sys\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute(\"SET checkpoint_threshold = '1GB'\")\n"
        "con.execute(\"INSERT INTO meta (key, value) VALUES ('late', 'row')\")\n"
        "con.execute(\"PRAGMA debug_checkpoint_abort = 'before_header'\")\n"
        "try:\n"
        "    con.execute('CHECKPOINT')\n"
        "except duckdb.Error:\n"
        "    os._exit(0)\n"
        "os._exit(1)\n"
    )
    assert subprocess.run([sys.executable, "-c", stop, str(path)]).returncode == 0
    assert Path(f"{path}.wal").exists()


@pytest.mark.parametrize("side", [".wal.checkpoint", ".wal.recovery"])
def test_a_stamp_vouches_for_duckdbs_checkpoint_and_recovery_wals_too(path, tmp_path, side):
    # review4: DuckDB (2.x) reads <stem>.duckdb.wal.checkpoint at open when its WAL holds a
    # checkpoint marker (a read-only connection replays it): one planted beside a journal
    # stamped in that state gave the connection its macros while the stamp still vouched
    # for the file and its WAL, so they were never looked for.
    Journal.open(path).close()
    hostile = tmp_path / "hostile" / path.name  # a WAL made for this very file
    hostile.parent.mkdir()
    hostile.write_bytes(path.read_bytes())
    con = duckdb.connect(str(hostile))
    con.execute("PRAGMA disable_checkpoint_on_shutdown")
    con.execute("CREATE MACRO planted() AS 42")
    con.close()
    _stop_a_checkpoint(path)
    with duckdb.connect(str(path), read_only=True) as con:
        (nonce,) = con.execute("SELECT value FROM meta WHERE key = 'closed'").fetchone()
    opening.closed(path, nonce)  # as Journal.close stamps what its close left
    con, made_here = opening.connect(path, read_only=True)
    con.close()
    assert made_here  # as stamped: its checks skipped
    Path(f"{path}{side}").write_bytes(Path(f"{hostile}.wal").read_bytes())
    con, made_here = opening.connect(path, read_only=True)
    con.close()
    assert not made_here
    if side == ".wal.checkpoint":  # the one DuckDB reads: what it brought is refused
        with pytest.raises(JournalCorrupt, match="views or macros"):
            Journal.open(path, read_only=True)


def _made_here(path: Path, remembered: bool = False) -> bool:
    """Whether an opening takes ``path`` for the file this user's durable_nb closed last,
    unchanged (its checks skipped): by its stamp, or ``remembered`` by this process."""
    if not remembered:
        opening._CLOSED.clear()
    con, made_here = opening.connect(path)
    con.close()
    return made_here


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o730, 0o703, 0o1777, 0o1770], ids=oct)
def test_a_journal_in_a_folder_others_can_write_is_checked_in_full(path, mode):
    # review4: the stamp skipped the checks whatever the folder: in one another user can
    # write to, they can put a WAL (or the file) in place between the identity's look and
    # DuckDB's open. A sticky bit does not help: DuckDB's side files are mostly absent,
    # and anyone may create them. Checked in full, never refused.
    Journal.open(path).close()
    assert _made_here(path)
    os.chmod(path.parent, mode)
    assert not _made_here(path)
    j = Journal.open(path)  # opened, checked in full: and this process remembers no close
    j.close()
    assert not _made_here(path, remembered=True) and not _made_here(path)
    os.chmod(path.parent, 0o700)  # this user's again: stamped at its next close
    Journal.open(path).close()
    assert _made_here(path)


@pytest.mark.parametrize("mode, vouched", [(0o777, False), (0o775, False), (0o1777, True),
                                           (0o755, True)],
                         ids=lambda v: oct(v) if type(v) is int else str(v))  # fmt: skip
def test_a_folder_on_the_way_others_can_write_is_no_private_folder(path, mode, vouched):
    # Another user who can rename the journal's folder (its parent is theirs to write,
    # not sticky) can swap the whole folder; in a sticky one (/tmp) they cannot.
    Journal.open(path).close()
    os.chmod(path.parent.parent, mode)
    assert _made_here(path) is vouched


def test_no_stamp_is_written_in_a_folder_others_can_write(path):
    path.parent.mkdir(parents=True)
    os.chmod(path.parent, 0o777)
    Journal.open(path).close()
    assert not path.with_suffix(".closed").exists()
    assert not _made_here(path, remembered=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user takes root")
def test_a_folder_or_link_of_another_user_is_no_private_folder(path, tmp_path):
    Journal.open(path).close()
    assert _made_here(path)
    other = 4242
    os.chown(path.parent, other, -1)  # not this user's: its owner can swap the files
    assert not _made_here(path)
    os.chown(path.parent, 0, -1)
    os.chown(path.parent.parent, other, -1)  # its owner can rename the journal's folder
    assert not _made_here(path)
    os.chown(path.parent.parent, 0, -1)
    # Reached through a link: the link's owner can point it elsewhere (in a sticky /tmp).
    link = tmp_path / "link"
    os.symlink(path.parent.parent, link)
    through = link / ".durable" / path.name
    Journal.open(through).close()
    assert _made_here(through)
    os.lchown(link, other, -1)
    assert not _made_here(through)


@pytest.mark.parametrize("side", [".wal.checkpoint", ".wal.recovery"])
def test_a_side_file_that_cannot_be_looked_at_is_refused_saying_so(path, side):
    # A side file stat() fails on (a link to itself): a link, refused with one line saying
    # what to do (DuckDB writes through links to its side files: test_store's links
    # test), never a journal called unreadable.
    Journal.open(path).close()
    loop = Path(f"{path}{side}")
    os.symlink(loop.name, loop)
    with pytest.raises(JournalCorrupt, match=f"{re.escape(str(loop))} is not a regular file"):
        Journal.open(path)
    loop.unlink()  # moved aside, as the line says: it opens, its checks skipped
    assert _made_here(path)


#: A child process's session: ``j`` open on ``sys.argv[1]``; ``cell(seq)`` writes a cell's
#: end record and folds it into DuckDB (what a session does between two ticks).
_SESSION = """
import os, sys, threading, time
from durable_nb.store import CellRow, Journal, stamp as st
j = Journal.open(sys.argv[1])
def cell(seq):
    now = time.time()
    j.write(CellRow(f"r:{seq}", seq, "r", "k", "k", "x", now, now, "ok", None, 1, 0), sync=False)
    j.fold()
"""
#: Stamp as the flusher's tick does (``stamp``: yes or no), write and fold again when asked
#: (``after``), then die as a SIGKILL leaves it (no close).
_KILLED = (
    _SESSION
    + """
stamp, after = sys.argv[2] == "yes", sys.argv[3] == "yes"
cell(1)
if stamp:
    j.stamp(), j.stamp()  # two ticks, nothing appended between: idle, stamped
if after:
    cell(2)
os._exit(0)
"""
)


def _killed(path: Path, stamp: bool, after: bool = False) -> None:
    args = [sys.executable, "-c", _KILLED, str(path), "yes" if stamp else "no",
            "yes" if after else "no"]  # fmt: skip
    assert subprocess.run(args, env=os.environ).returncode == 0


def test_a_journal_stamped_as_it_stood_when_its_kernel_was_killed_is_not_checked_again(path):
    # The flusher's tick vouches for DuckDB's file as it stands (Journal.stamp): the crash
    # a durable notebook is for leaves a journal the next kernel opens without the full
    # check (~40 ms of DuckDB's listings), as after a clean close.
    _killed(path, stamp=False)
    assert not _made_here(path)  # no stamp of that state: checked in full
    _killed(path, stamp=True)
    assert _made_here(path)
    j = Journal.open(path)
    assert [c.seq for c in j.cells()] == [1]  # (the same cell, written again)
    j.close()


def test_a_stamp_never_vouches_for_what_was_written_after_it(path):
    _killed(path, stamp=True, after=True)  # a fold after the tick's stamp, then the kill
    assert not _made_here(path)


def test_a_stamped_journal_changed_after_its_kernel_died_is_checked_and_refused(path):
    _killed(path, stamp=True)
    con = duckdb.connect(str(path))  # someone else's write: a macro the journal never has
    con.execute("CREATE MACRO planted() AS 42")
    con.close()
    assert not _made_here(path)
    with pytest.raises(JournalCorrupt, match="views or macros"):
        Journal.open(path)


def test_a_stamp_is_written_once_written_since_and_idle_for_a_tick(path):
    j = Journal.open(path)
    closed = path.with_suffix(".closed")
    try:
        j.stamp()  # the first tick: what was appended since the last is not known yet
        assert not closed.exists()
        j.stamp()
        first = closed.read_bytes()
        j.stamp()  # nothing written meanwhile: the stamp stands
        assert closed.read_bytes() == first
        j.write_meta("k", "v")
        j.fold()
        j.stamp()  # a row appended since the last tick: not idle, no commit for it to wait on
        assert closed.read_bytes() == first
        j.stamp()
        assert closed.read_bytes() != first
    finally:
        j.close()


def test_a_stamp_whose_nonce_could_not_be_written_is_tried_again(path, monkeypatch):
    real, calls = opening.mark_closed, []

    def refused_once(con):
        calls.append(con)
        return None if len(calls) == 1 else real(con)

    monkeypatch.setattr(opening, "mark_closed", refused_once)
    j = Journal.open(path)
    try:
        j.stamp(), j.stamp()  # DuckDB refused the nonce (a moment of full disk): no stamp
        assert calls and not path.with_suffix(".closed").exists()
        j.stamp()
        assert path.with_suffix(".closed").exists()
    finally:
        j.close()


def test_a_journal_that_writes_nothing_more_is_never_stamped(path):
    j = Journal.open(path)
    try:
        before = j.meta("closed")
        j.stop_writing()  # (the disk refused a write)
        j.stamp(), j.stamp()
        assert not path.with_suffix(".closed").exists()
    finally:
        j.abandon()
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'closed'").fetchone()[0] == before


#: helper-77 F1: a fold on another thread between the stamp's nonce and its look at the
#: files went into the identity it vouched for. The stamp's look is held (``identity``
#: wrapped on its thread) while the main thread folds; then the process dies.
_RACED = (
    _SESSION
    + """
cell(1)
j.stamp()
real, held, go = st.identity, threading.Event(), threading.Event()
def identity(p):
    if threading.current_thread().name == "tick":
        held.set(), go.wait(10)
    return real(p)
st.identity = identity
tick = threading.Thread(target=j.stamp, name="tick")
tick.start()
assert held.wait(10)
folder = threading.Thread(target=cell, args=(2,))
folder.start()
folder.join(0.5)  # (held by the journal's lock meanwhile)
go.set(), tick.join(), folder.join()
os._exit(0)
"""
)


def test_a_write_racing_the_stamp_is_never_vouched_for(path):
    assert subprocess.run([sys.executable, "-c", _RACED, str(path)]).returncode == 0
    assert not _made_here(path)  # the fold came after the stamp: checked in full
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT seq FROM cells ORDER BY seq").fetchall() == [(1,), (2,)]
