"""Issue 12: a journal that opens but cannot be read, and ``%durable restore --at``.

Each test failed on the code before its fix (finding 3 and finding 8).
"""

from __future__ import annotations

import duckdb
from helpers import cell, dnb_lines, lines, steps_cell


def test_journal_that_fails_while_loading_leaves_the_extension_loaded(start_kernel, workdir):
    # Finding 3: an error reading the journal after it opened (here a damaged table)
    # unloaded the extension; the reason went to the kernel's stderr, no cell showed it.
    k = start_kernel()
    cell(k, steps_cell(workdir / "setup.txt"), "setup")
    k.close()
    journal = workdir / ".durable" / "nb.duckdb"
    con = duckdb.connect(str(journal))
    con.execute("ALTER TABLE cells DROP COLUMN error")
    con.close()

    k = start_kernel()
    r = cell(k, "x = 1", "c0")
    msgs = dnb_lines(r.stderr)
    assert len(msgs) == 1, r.stderr
    assert str(journal) in msgs[0] and "aside" in msgs[0], msgs
    status = cell(k, "%durable status", "st").stdout
    assert "not journaling" in status and str(journal) in status, status
    out = workdir / "effects.txt"
    r = k.run(steps_cell(out), cell_id="setup")  # the journal holds these: they stop
    assert not r.ok and "did not run" in r.error["evalue"], r
    assert lines(out) == []


def test_restore_at_an_unknown_cell_names_the_valid_range(start_kernel, workdir):
    # Finding 8: "%durable restore --at 999" said "restored 2 variables as of cell 999".
    k = start_kernel()
    for i, code in enumerate(["a = 1", "b = 2", "c = a + b", "d = c * 2"]):
        cell(k, code, f"c{i}")
    # Each execution is numbered, the failed restores too: the range grows by one.
    for last, at in enumerate((999, 0, -3), start=4):
        r = k.run(f"%durable restore --at {at}", cell_id=f"r{at}")
        assert not r.ok and "UsageError" in r.stderr, r  # one line, no traceback
        assert f"--at {at}" in r.stderr and f"1 to {last}" in r.stderr, r
    r = cell(k, "%durable restore --at 2", "ok")
    assert "as of cell 2" in r.stdout, r
