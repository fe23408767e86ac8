"""durable_nb's own failures never break the notebook (DESIGN.md, semantics 2 and 3).

Each test puts a real kernel in front of a real fault: a second kernel on the same
journal, a corrupt, truncated, foreign or too-new journal file, a read-only folder,
a disk that fills up mid-session, a torn write-ahead log. In every case the user sees
one ``durable_nb:`` line naming the cause and what to do, and the cells keep working.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import duckdb
import pytest
from helpers import cell, dnb_lines, lines, steps_cell


def expected(n: int = 3) -> str:
    return "vals " + repr([i * 10 for i in range(n)])


def status_text(k) -> str:
    return cell(k, "%durable status").stdout


@pytest.fixture
def tmpfs(tmp_path: Path):
    """Factory: mount a tmpfs with ``options`` on a new folder; unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            pytest.skip(
                f"cannot mount a tmpfs at {where} ({proc.stderr.strip()}): these tests need "
                "root with CAP_SYS_ADMIN, since chmod cannot make a folder read-only for root"
            )
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        # Lazy: a kernel that did not stop yet must not leave the mount behind.
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


# -- 1. a second kernel on the same journal ------------------------------------------------


def test_second_kernel_stops_journaled_steps_until_told(start_kernel, workdir):
    # issue 12, finding 6: the second kernel used to run a's journaled steps again.
    out_a, out_b = workdir / "a.txt", workdir / "b.txt"
    a = start_kernel()
    r = cell(a, steps_cell(out_a), "a1")
    assert expected() in r.stdout
    assert dnb_lines(r.stderr) == []

    b = start_kernel()  # same JPY_SESSION_NAME: same journal, held by a
    first = cell(b, "x = 1", "b0")  # a cell without steps runs as usual
    msgs = dnb_lines(first.stderr)
    assert len(msgs) == 1, first.stderr
    msg = msgs[0]
    journal = workdir / ".durable" / "nb.duckdb"
    assert str(journal) in msg
    assert str(a.pid) in msg
    assert "un-journaled" in msg
    status = status_text(b)
    assert str(a.pid) in status and "not journaling" in status, status

    # A step the journal may hold stops, saying why and the ways out; it does not run.
    r = b.run(steps_cell(out_b), cell_id="b1")
    assert not r.ok and r.error["ename"] == "JournalLocked", r
    stop = r.error["evalue"]
    assert "'effect' did not run" in stop and str(a.pid) in stop and str(journal) in stop
    assert "%durable off" in stop and "Stop that kernel" in stop, stop
    assert lines(out_b) == []
    assert cell(b, "print(x + 1)", "b2").stdout.strip() == "2"

    # %durable off: b runs its steps un-journaled, on purpose; a re-run runs them again.
    cell(b, "%durable off", "b3")
    for _ in range(2):
        r = cell(b, steps_cell(out_b), "b1")
        assert expected() in r.stdout
        assert dnb_lines(r.stderr) == [], r.stderr
    assert len(lines(out_b)) == 6
    assert cell(b, "print(effect(7) + 1)", "b4").stdout.strip() == "71"

    # a journals on, undisturbed, while b is alive.
    r = cell(a, steps_cell(out_a, n=5), "a2")
    assert expected(5) in r.stdout
    assert dnb_lines(r.stderr) == []
    assert len(lines(out_a)) == 3 + 5
    b.close()
    a.close()

    # After a restart, a's steps replay: nothing runs again.
    a2 = start_kernel()
    r = cell(a2, steps_cell(out_a), "a1")
    assert expected() in r.stdout
    assert "3 steps replayed" in r.stdout, r.stdout
    r = cell(a2, steps_cell(out_a, n=5), "a2")
    assert expected(5) in r.stdout
    assert "5 steps replayed" in r.stdout, r.stdout
    assert len(lines(out_a)) == 8


# -- 2. a corrupt journal ------------------------------------------------------------------


def _one_message(r, journal: Path, what_to_do: str) -> str:
    """The one ``durable_nb:`` line of the first cell: the journal, and what to do."""
    msgs = dnb_lines(r.stderr)
    assert len(msgs) == 1, r.stderr
    msg = msgs[0]
    assert str(journal) in msg and "un-journaled" in msg, msg
    assert what_to_do in msg.lower(), msg
    assert "Traceback" not in r.stderr
    return msg


def _assert_steps_stop(k, workdir: Path, journal: Path, *, what_to_do: str) -> str:
    """The first cell shows one message about ``journal``; a step call stops until
    ``%durable off``; returns the message."""
    out = workdir / "effects.txt"
    msg = _one_message(cell(k, "x = 20", "c0"), journal, what_to_do)  # runs as usual
    # issue 12, finding 6: the journal may hold the steps, so they do not run again.
    r = k.run(steps_cell(out), cell_id="c1")
    assert not r.ok and "'effect' did not run" in r.error["evalue"], r
    assert str(journal) in r.error["evalue"] and "%durable off" in r.error["evalue"], r
    assert lines(out) == []
    status = status_text(k)
    assert "not journaling" in status and str(journal) in status, status
    # %durable off runs them un-journaled, on purpose; re-running runs them again.
    cell(k, "%durable off", "off")
    for _ in range(2):
        r = cell(k, steps_cell(out), "c1")
        assert expected() in r.stdout
        assert dnb_lines(r.stderr) == [], r.stderr
    assert len(lines(out)) == 6
    assert cell(k, "print(sum(vals) + effect(4) + x)", "c2").stdout.strip() == "90"
    return msg


def _assert_runs_unjournaled(k, workdir: Path, journal: Path, *, what_to_do: str) -> str:
    """The first cell shows one message about ``journal``; steps run; returns the message."""
    out = workdir / "effects.txt"
    r = cell(k, steps_cell(out), "c1")
    assert expected() in r.stdout
    msg = _one_message(r, journal, what_to_do)
    # The notebook runs on: later cells work, and re-running runs the steps again.
    r = cell(k, steps_cell(out), "c1")
    assert expected() in r.stdout
    assert dnb_lines(r.stderr) == [], r.stderr
    assert len(lines(out)) == 6
    assert cell(k, "print(sum(vals) + effect(4))", "c2").stdout.strip() == "70"
    status = status_text(k)
    assert "not journaling" in status and str(journal) in status, status
    return msg


def _make_journal(start_kernel, workdir: Path) -> Path:
    """A real journal with a few steps in it, released by a clean kernel shutdown."""
    k = start_kernel()
    cell(k, steps_cell(workdir / "setup.txt"), "setup")
    k.close()
    journal = workdir / ".durable" / "nb.duckdb"
    assert journal.exists()
    return journal


def test_garbage_journal_file(start_kernel, workdir):
    journal = workdir / ".durable" / "nb.duckdb"
    journal.parent.mkdir()
    garbage = random.Random(1).randbytes(64 * 1024)
    journal.write_bytes(garbage)
    k = start_kernel()
    msg = _assert_steps_stop(k, workdir, journal, what_to_do="aside")
    assert "cannot be read" in msg
    k.close()
    assert journal.read_bytes() == garbage  # the user's file is left as it was


def test_truncated_journal_file(start_kernel, workdir):
    journal = _make_journal(start_kernel, workdir)
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) // 2])
    k = start_kernel()
    _assert_steps_stop(k, workdir, journal, what_to_do="aside")
    k.close()
    assert journal.stat().st_size == len(data) // 2


def test_duckdb_file_that_is_not_a_journal(start_kernel, workdir):
    journal = workdir / ".durable" / "nb.duckdb"
    journal.parent.mkdir()
    con = duckdb.connect(str(journal))
    con.execute("CREATE TABLE foo (x INTEGER)")
    con.execute("INSERT INTO foo VALUES (42)")
    con.close()
    k = start_kernel()
    msg = _assert_runs_unjournaled(k, workdir, journal, what_to_do="aside")
    assert "not a durable_nb journal" in msg and "foo" in msg
    k.close()
    con = duckdb.connect(str(journal), read_only=True)
    tables = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    assert tables == {"foo"}  # nothing was added to the user's database
    assert con.execute("SELECT x FROM foo").fetchall() == [(42,)]
    con.close()


def test_journal_with_a_view_is_refused_before_anything_is_loaded(start_kernel, workdir):
    # A crafted journal: `steps` is a VIEW serving a pickle that writes a file when loaded
    # (a view could also read the signing secret). It must be refused, never queried.
    journal = _make_journal(start_kernel, workdir)
    marker = workdir / "pwned"
    payload = (
        b"cos\nsystem\n(Vtouch " + str(marker).encode() + b"\ntR."  # pickle: os.system(...)
    )
    con = duckdb.connect(str(journal))
    con.execute("CREATE TABLE real_steps AS SELECT * FROM steps")
    con.execute("DROP TABLE steps")
    blob = "".join(f"\\x{b:02x}" for b in payload)
    con.execute(
        "CREATE VIEW steps AS SELECT * REPLACE ('pickle' AS kind, "
        f"'{blob}'::BLOB AS result) FROM real_steps"
    )
    con.close()
    k = start_kernel()
    msg = _assert_steps_stop(k, workdir, journal, what_to_do="aside")
    assert "views or macros" in msg, msg
    k.close()
    assert not marker.exists()


# -- 3. a journal written by a newer durable_nb -------------------------------------------


def test_too_new_journal(start_kernel, workdir):
    journal = _make_journal(start_kernel, workdir)
    con = duckdb.connect(str(journal))
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [
        ("999",)
    ]
    con.close()
    k = start_kernel()
    msg = _assert_steps_stop(k, workdir, journal, what_to_do="upgrade")
    assert "999" in msg and "newer" in msg, msg
    k.close()
    con = duckdb.connect(str(journal), read_only=True)
    version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    con.close()
    assert version == [("999",)]  # not "migrated" down


# -- 4. a read-only folder -----------------------------------------------------------------


@pytest.mark.parametrize("sub", ["", "sub"], ids=["folder", "missing-subfolder"])
def test_read_only_folder(start_kernel, workdir, kernel_env, tmpfs, sub):
    ro = tmpfs("ro", "ro,size=1m")
    folder = ro / sub if sub else ro
    env = dict(kernel_env, DURABLE_NB_DIR=str(folder))
    k = start_kernel(env)
    journal = folder / "nb.duckdb"
    out = workdir / "effects.txt"
    warnings = []
    for i in range(3):
        r = cell(k, steps_cell(out), f"c{i}")
        assert expected() in r.stdout
        warnings += dnb_lines(r.stderr)
    assert len(warnings) == 1, warnings
    msg = warnings[0]
    assert str(journal) in msg and "un-journaled" in msg, msg
    assert "DURABLE_NB_DIR" in msg, msg  # what to do: point it at a writable folder
    assert len(lines(out)) == 9  # not journaled: each run ran the steps
    assert cell(k, "print(effect(5))").stdout.strip() == "50"
    k.close()
    assert os.listdir(ro) == []


# -- 5. the disk fills up mid-session ------------------------------------------------------

BIG = """
import durable_nb as dnb

@dnb.step
def big(i):
    with open({out!r}, "a") as f:
        f.write(f"{{i}}\\n")
    return bytes([i]) * 400_000
"""


def test_disk_fills_up_mid_session(start_kernel, workdir, kernel_env, tmpfs):
    disk = tmpfs("disk", "size=2m")
    env = dict(kernel_env, DURABLE_NB_DIR=str(disk))
    journal = disk / "nb.duckdb"
    out = workdir / "big.txt"
    k = start_kernel(env)
    r = cell(k, BIG.format(out=str(out)), "define")
    assert dnb_lines(r.stderr) == []
    assert "journaling" in status_text(k)

    warnings: list[str] = []
    n = 8  # 8 × 400 KB cannot fit in 2 MB
    for i in range(n):
        r = cell(k, f"x = big({i}); print(len(x), x == bytes([{i}]) * 400_000)", f"big-{i}")
        assert r.stdout.splitlines()[0].split() == ["400000", "True"], r
        warnings += dnb_lines(r.stderr)
    for _ in range(2):  # later cells work and are not warned again
        r = cell(k, "print(sum(range(10)))")
        assert r.stdout.strip() == "45"
        warnings += dnb_lines(r.stderr)
    assert len(warnings) == 1, warnings
    msg = warnings[0]
    assert str(journal) in msg and "not journaled" in msg, msg
    assert "space" in msg.lower(), msg
    assert lines(out) == [str(i) for i in range(n)]
    status = status_text(k)  # kept open read-only: what it holds replays (finding 4)
    assert "read-only" in status, status
    r = cell(k, "x = big(0); print(len(x))", "big-0")
    assert r.stdout.splitlines()[0] == "400000" and lines(out) == [str(i) for i in range(n)]
    k.close()

    # Space is freed: the journal opens again and holds the steps recorded before the
    # disk filled up, so they replay instead of running.
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    k2 = start_kernel(env)
    cell(k2, BIG.format(out=str(out)), "define")
    r = cell(k2, "x = big(0); print(len(x), x == bytes([0]) * 400_000)", "big-0")
    assert r.stdout.splitlines()[0].split() == ["400000", "True"], r
    msgs = dnb_lines(r.stderr + r.stdout)
    assert len(msgs) == 1 and msgs[0].startswith("durable_nb: 1 step replayed"), msgs
    assert lines(out) == [str(i) for i in range(n)]  # big(0) did not run again
    assert "journaling" in status_text(k2)
    k2.close()


# -- 6. a torn write-ahead log tail --------------------------------------------------------


def test_torn_log_tail_is_ignored(start_kernel, workdir):
    out = workdir / "effects.txt"
    k = start_kernel()
    r = cell(k, steps_cell(out, n=4), "steps")
    assert expected(4) in r.stdout
    k.kill()  # SIGKILL: the records stay in the log, not yet folded into DuckDB
    wal = workdir / ".durable" / "nb.log"
    assert wal.stat().st_size > 0, "the killed kernel left no log records"
    with open(wal, "ab") as f:  # a crash in the middle of an append
        f.write(random.Random(6).randbytes(777))

    k2 = start_kernel()
    r = cell(k2, steps_cell(out, n=4), "steps")
    assert expected(4) in r.stdout
    msgs = dnb_lines(r.stderr + r.stdout)  # no warning: only the quiet replay line
    assert len(msgs) == 1 and msgs[0].startswith("durable_nb: 4 steps replayed"), msgs
    assert lines(out) == ["0", "1", "2", "3"]  # nothing ran twice
    n = cell(k2, "%durable sql SELECT count(*) AS n FROM steps WHERE status = 'ok'")
    assert n.data[-1]["text/plain"].split()[-1] == "4", n.data
    assert "journaling" in status_text(k2)
