"""A full disk, a read-only journal (issue 12, findings 4 and 5) and damage found late.

The disk is real: a small tmpfs, filled by a file (root only, as CI runs; skipped
elsewhere). A read-only journal needs no mount: it is opened ``read_only``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell

import durable_nb as dnb
from durable_nb import runtime
from durable_nb.errors import JournalCorrupt, JournalUnwritable
from durable_nb.runtime import Runtime
from durable_nb.snapshot import Snapshots
from durable_nb.store import Journal, StepRow
from durable_nb.store.stamp import stamp_path

pytestmark = pytest.mark.unit


@pytest.fixture
def disk(tmp_path):
    """A 4 MB tmpfs of its own."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs ({proc.stderr.strip()})")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(disk: Path, free: int = 0) -> Path:
    """Fill ``disk`` but ``free`` bytes; return the filler (remove it to free the space)."""
    filler = disk / "filler"
    with open(filler, "ab") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - free))
    return filler


def lines(capsys) -> list[str]:
    return [s for s in capsys.readouterr().err.splitlines() if s.startswith("durable_nb:")]


@pytest.mark.parametrize("free", [0, 4096, 200_000])
def test_a_full_disk_leaves_no_journal_file(disk, free):
    folder = disk / "j"
    filler = fill(disk, free)
    with pytest.raises(JournalUnwritable, match="No space left") as caught:
        Journal.open(folder / "nb.duckdb")
    assert str(folder / "nb.duckdb") in str(caught.value)
    assert not folder.exists() or os.listdir(folder) == []  # no 0-byte or half-made file
    filler.unlink()  # space is back: the next open makes the journal
    Journal.open(folder / "nb.duckdb").close()


def test_a_zero_byte_journal_is_made_anew(tmp_path):
    path = tmp_path / "nb.duckdb"
    path.touch()  # what an earlier version left on a full disk: it holds nothing
    j = Journal.open(path)
    assert j.completed == 0
    j.close()
    assert path.stat().st_size > 0
    assert sorted(os.listdir(tmp_path)) == ["nb.closed", "nb.duckdb", "nb.log"]  # no leftover


def _step(i: int) -> StepRow:
    now = time.time()
    return StepRow(f"r{i}", f"id{i}", 0, "f", "c", 1, "run", None, 0, None, "ok", "json",
                   str(i).encode(), None, None, 1, None, now, now)  # fmt: skip


def test_a_read_only_journal_replays_and_changes_nothing(tmp_path):
    path = tmp_path / "nb.duckdb"
    j = Journal.open(path)
    for i in range(3):
        j.write(_step(i))
    j.close()
    j = Journal.open(path)
    for i in range(3, 5):  # a crash: these stay in the log, unfolded
        j.write(_step(i))
    j.abandon()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    r = Journal.open(path, read_only=True)
    assert r.read_only and r.completed == 5
    assert [r.lookup(f"id{i}") for i in range(5)] == [("json", str(i).encode()) for i in range(5)]
    with pytest.raises(JournalUnwritable, match="read-only"):
        r.write(_step(9))
    stamp_path(path).unlink()  # nor is it stamped at close (its folder is not written to)
    del before["nb.closed"]
    r.close()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_damage_met_mid_session_names_the_file_and_keeps_the_log(tmp_path):
    # DuckDB checks a page's checksum when it reads the page: a flipped byte in the last
    # block (index pages) passes the open and is met at the first fold, mid-session.
    path = tmp_path / "nb.duckdb"
    j = Journal.open(path)
    for i in range(150):
        j.write(_step(i), sync=False)
    j.close()
    data = bytearray(path.read_bytes())
    data[len(data) - (128 << 10)] ^= 1
    path.write_bytes(bytes(data))
    j = Journal.open(path)
    try:
        j.write(_step(150))
        with pytest.raises(JournalCorrupt, match="Corrupt") as caught:
            _ = j.completed  # a read folds the log first
        assert str(path) in str(caught.value) and "%durable off" in str(caught.value)
    finally:
        j.abandon()
    assert path.with_suffix(".log").stat().st_size > 0  # the new record waits in the log


@pytest.fixture
def step_runs():
    runs: list[int] = []

    @dnb.step(retries=0)
    def effect(i, size=0):
        runs.append(i)
        return "x" * size if size else i

    return effect, runs


def _cell(rt: Runtime, code: str, body) -> None:
    rt.begin_cell("cell-1", code)
    try:
        body()
    finally:
        rt.end_cell("ok", None)


def test_a_disk_that_fills_mid_session_keeps_replaying(disk, monkeypatch, capsys, step_runs):
    effect, runs = step_runs
    monkeypatch.setenv("DURABLE_NB_DIR", str(disk / "j"))
    rt = Runtime(str(disk / "nb.py"))
    runtime.install(rt)
    try:
        _cell(rt, "loop", lambda: [effect(i) for i in range(5)])
        filler = fill(disk)
        capsys.readouterr()
        # A result too big for the log goes to a blob file: the disk refuses it.
        _cell(rt, "loop", lambda: [effect(i) for i in range(5)] + [effect(5, 1 << 20)])
        said = lines(capsys)
        assert len(said) == 1 and "No space left" in said[0] and str(rt.path) in said[0]
        assert "5 completed steps replay" in said[0] and not rt.journaling
        assert runs == [0, 1, 2, 3, 4, 5]  # the journaled ones replayed, not run again
        _cell(rt, "loop", lambda: [effect(i) for i in range(5)] + [effect(6)])
        assert runs == [0, 1, 2, 3, 4, 5, 6] and lines(capsys) == []  # said once
    finally:
        runtime.install(None)
        rt.close()
    filler.unlink()
    rt = Runtime(str(disk / "nb.py"))  # space is back: journaling again, nothing lost
    runtime.install(rt)
    try:
        assert rt.journaling
        _cell(rt, "loop", lambda: [effect(i) for i in range(5)])
        assert runs == [0, 1, 2, 3, 4, 5, 6]
    finally:
        runtime.install(None)
        rt.close()


def test_a_snapshot_that_fills_the_disk_leaves_no_chunks(disk, monkeypatch, capsys):
    monkeypatch.setenv("DURABLE_NB_DIR", str(disk / "j"))
    shell = InteractiveShell.instance()
    rt = Runtime(str(disk / "nb.ipynb"))
    snaps = Snapshots(shell, rt)
    try:
        rt.begin_cell(None, "big = ...")
        shell.user_ns["big"] = np.random.default_rng(1).random(1 << 20)  # 8 MB on 4 MB
        snaps.after_cell("big = ...", True)
        rt.end_cell("ok", None)
        blobs = rt.path.with_suffix(".blobs")
        assert not blobs.exists() or os.listdir(blobs) == []
        said = lines(capsys)
        assert len(said) == 1 and "No space left" in said[0] and str(rt.path) in said[0]
        assert rt.readonly is not None and not rt.journaling
    finally:
        shell.user_ns.pop("big", None)
        rt.close()
    shutil.rmtree(disk / "j")


def _read_only_journal_as_owner(folder: Path) -> dict:
    """As the journal's owner, not root: 3 steps journaled; the files made 0444; reopened.

    Returns what was seen: the runs of each open, the ``durable_nb:`` lines of the
    read-only open, whether the files changed, and the runs once they are writable again.
    """
    import contextlib
    import io

    runs: list[int] = []

    @dnb.step(retries=0)
    def effect(i):
        runs.append(i)
        return i * 10

    def session(n: int, err: io.StringIO | None = None) -> tuple[list[int], list[int], Runtime]:
        rt = Runtime(str(folder / "nb.py"))  # a kernel's start: what it says is shown again
        runtime.install(rt)  # in the first cell, so only what the cell shows is counted
        del runs[:]
        try:
            vals: list[int] = []
            with contextlib.redirect_stderr(err or io.StringIO()):
                _cell(rt, "loop", lambda: vals.extend(effect(i) for i in range(n)))
            return list(runs), vals, rt
        finally:
            runtime.install(None)
            rt.close()

    seen: dict = {}
    session(3)
    journal = folder / ".durable"
    for p in journal.rglob("*"):
        p.chmod(0o444 if p.is_file() else 0o555)
    journal.chmod(0o555)
    before = {p.name: p.read_bytes() for p in journal.iterdir() if p.is_file()}
    err = io.StringIO()
    seen["runs"], seen["vals"], rt = session(5, err)
    seen["read_only"] = rt.readonly is not None
    seen["said"] = [s for s in err.getvalue().splitlines() if s.startswith("durable_nb:")]
    seen["unchanged"] = before == {p.name: p.read_bytes() for p in journal.iterdir()
                                   if p.is_file()}  # fmt: skip
    journal.chmod(0o755)
    for p in journal.rglob("*"):
        p.chmod(0o644 if p.is_file() else 0o755)
    seen["later"], _, rt = session(3)  # writable again: nothing was lost
    seen["journaling_later"] = rt.readonly is None and rt.problem is None
    return seen


def test_a_read_only_journal_file_as_its_owner_not_root(tmp_path):
    # Root ignores file modes, so as root the check runs in a child forked as nobody.
    if os.geteuid() != 0:
        seen = _read_only_journal_as_owner(tmp_path)
    else:
        import json
        import tempfile

        # Nobody cannot reach this Python's folders (under /root): every module the
        # check imports on first use is imported first, by the same check run as root.
        _read_only_journal_as_owner(tmp_path)
        folder = Path(tempfile.mkdtemp(prefix="dnb-ro-"))  # tmp_path's parents are 0700
        try:
            os.chown(folder, 65534, 65534)
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: nobody, with a home of its own for the signing secret
                code = 1
                try:
                    os.close(r)
                    os.setgid(65534)
                    os.setuid(65534)
                    os.environ["HOME"] = os.environ["JUPYTER_DATA_DIR"] = str(folder / "home")
                    from durable_nb import trust

                    trust._secret = None  # root's, cached by the parent: read nobody's
                    seen = _read_only_journal_as_owner(folder)
                    os.write(w, json.dumps(seen).encode())
                    code = 0
                except BaseException:
                    import traceback

                    os.write(w, json.dumps({"error": traceback.format_exc()}).encode())
                finally:
                    os._exit(code)
            os.close(w)
            with os.fdopen(r) as f:
                seen = json.loads(f.read() or "{}")
            os.waitpid(pid, 0)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    assert "error" not in seen, seen.get("error")
    assert seen["read_only"] and seen["unchanged"]
    assert seen["runs"] == [3, 4] and seen["vals"] == [0, 10, 20, 30, 40]  # 0-2 replayed
    assert len(seen["said"]) == 1, "\n".join(seen["said"])
    assert "read-only" in seen["said"][0] and "not journaled" in seen["said"][0]
    assert "3 completed steps replay" in seen["said"][0]
    assert seen["said"][0].count("cannot write") == 1  # the cause quoted, not a whole message
    assert seen["later"] == [] and seen["journaling_later"]
