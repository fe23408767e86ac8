"""The store without a kernel: the append log, fold, typed rows, the named reads, trust."""

from __future__ import annotations

import json
import os
import pickle
import re
import time
from pathlib import Path

import duckdb
import pytest

from durable_nb import trust
from durable_nb.errors import JournalCorrupt, JournalTooNew, UntrustedJournal
from durable_nb.store import (
    SCHEMA_VERSION,
    CellRow,
    Journal,
    PayloadRow,
    RunRow,
    StepRow,
    VariableRow,
    copy_journal,
    journal_files,
    opening,
    remove_journal,
    schema,
    stamp,
    template,
)
from durable_nb.store import journal as journal_module
from durable_nb.store.log import Log, decode
from durable_nb.store.schema import TABLES

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def secret(tmp_path, monkeypatch):
    """A signing secret of this test's own (not the person's)."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.setattr(trust, "_secret", None)


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / ".durable" / "nb.duckdb"


@pytest.fixture
def journal(path):
    j = Journal.open(path)
    yield j
    j.abandon()


def run(run_id="r1", started=None, ended=None, status="running") -> RunRow:
    return RunRow(run_id, os.getpid(), "host", "nb.ipynb", started or time.time(), ended, status)


def cell(seq, run_id="r1", status="ok", source="x = 1", error=None) -> CellRow:
    return CellRow(f"{run_id}:{seq}", seq, run_id, f"id{seq}", f"key{seq}", source, time.time(),
                   time.time(), status, error, 1, 0)  # fmt: skip


def step(identity, seq=1, status="ok", kind="json", result=b"1", blob=None, error=None,
         record_id=None, ended=None, epoch=0) -> StepRow:  # fmt: skip
    now = time.time()
    return StepRow(record_id or f"rec-{identity}-{status}-{now}", identity, epoch, "fetch",
                   f"key{seq}", seq, "r1", "(1,)", 0, None, status, kind, result, blob, error,
                   1, "[]", now, ended or now)  # fmt: skip


def variable(seq, name, state="saved", value_id="v1", item=None, detail=None) -> VariableRow:
    return VariableRow(f"{seq}:{name}", seq, name, state, value_id, item, seq, 10, detail)


def raw(path: Path, sql: str) -> list[tuple]:
    """Rows straight from the DuckDB file (the journal must be closed)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# -- the append log ----------------------------------------------------------------------


def test_log_reads_back_what_was_appended(tmp_path):
    log = Log(tmp_path / "x.log")
    records = [("step", (f"r{i}", i, b"\0" * i, None)) for i in range(50)]
    for i, r in enumerate(records):
        log.append(r, sync=i % 7 == 0)
    log.sync()
    assert log.read() == records and log.count == 50
    log.truncate()
    assert log.read() == [] and log.size == 0 and log.count == 0
    log.close()


def test_log_ignores_a_torn_or_corrupt_tail(tmp_path):
    log = Log(tmp_path / "x.log")
    log.append(("meta", ("a", "1")), sync=True)
    log.append(("meta", ("b", "2")), sync=True)
    data = (tmp_path / "x.log").read_bytes()
    assert decode(data[:-15]) == [("meta", ("a", "1"))]  # the second record cut short
    flipped = bytearray(data)
    flipped[-13] ^= 0xFF  # its crc no longer matches (the last 12 bytes are its trailer)
    assert decode(bytes(flipped)) == [("meta", ("a", "1"))]
    assert decode(data + os.urandom(100)) == [("meta", ("a", "1")), ("meta", ("b", "2"))]
    log.close()


def test_log_refuses_records_that_name_globals(tmp_path):
    """A crafted log cannot run code when read: a record naming a global ends the read."""
    log = Log(tmp_path / "x.log")
    log.append(("meta", ("a", "1")), sync=True)
    log.append(("meta", (Path("/etc"), "2")), sync=True)  # pickled by reference to a class
    assert log.read() == [("meta", ("a", "1"))]
    log.close()


# -- schema and typed rows -------------------------------------------------------------------


def test_row_types_match_the_tables_columns(path):
    Journal.open(path).close()
    con = duckdb.connect(str(path), read_only=True)  # one connection for all the reads
    try:
        for row_type, (_, table) in TABLES.items():
            ask = ("SELECT column_name FROM information_schema.columns WHERE "
                   f"table_name = '{table}' ORDER BY ordinal_position")  # fmt: skip
            columns = con.execute(ask).fetchall()
            # Columns a migration added come last in the table; a row type keeps ``sig`` last.
            assert sorted(c for (c,) in columns) == sorted(row_type._fields), table
        version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        assert version == [(str(SCHEMA_VERSION),)]
    finally:
        con.close()


def test_rows_read_back_by_name(journal):
    journal.write(run())
    journal.write(cell(1, source="import os"))
    journal.write(step("a", result=b'"x"'))
    journal.write(variable(1, "os", state="module", value_id=None, detail="os"))
    [c] = journal.cells()
    assert (c.seq, c.cell_key, c.source, c.status) == (1, "key1", "import os", "ok")
    assert c.sig is not None and c.started.tzinfo is not None  # signed; times are datetimes
    [s] = journal.steps(results=True)
    assert (s.identity, s.kind, s.result, s.status) == ("a", "json", b'"x"', "ok")
    assert journal.signed(s) and journal.signed(c)  # every row is signed, JSON results too
    assert journal.steps()[0].result is None  # results are read only when asked for
    assert journal.variables_as_of(1)["os"].detail == "os"


def test_foreign_and_newer_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE sales (n INTEGER)")
    con.close()
    with pytest.raises(JournalCorrupt, match="not a durable_nb journal"):
        Journal.open(foreign)
    newer = tmp_path / "newer.duckdb"
    Journal.open(newer).close()
    con = duckdb.connect(str(newer))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(JournalTooNew):
        Journal.open(newer)


@pytest.mark.parametrize("crafted", [
    "CREATE MACRO count_star() AS 1",  # a scalar macro (could shadow a function we call)
    "CREATE MACRO rows_of(t) AS TABLE SELECT 1",  # a table macro
    "CREATE VIEW extra AS SELECT 1 AS x",  # a view (could read the signing secret)
    "CREATE SCHEMA other; CREATE VIEW other.extra AS SELECT 1 AS x",  # in another schema
    # a macro answering in place of the function the view listing filters on
    "CREATE MACRO current_database() AS 'nothing'; CREATE VIEW extra AS SELECT 1 AS x",
    # a table macro answering in place of DuckDB's listing, hiding the others
    "CREATE MACRO duckdb_functions() AS TABLE SELECT true AS internal, 'x' AS function_type;"
    "CREATE MACRO duckdb_views() AS TABLE SELECT true AS internal",
])  # fmt: skip
def test_journals_holding_macros_or_views_are_refused(path, crafted):
    Journal.open(path).close()
    con = duckdb.connect(str(path))
    con.execute(crafted)
    con.close()
    with pytest.raises(JournalCorrupt, match="views or macros"):
        Journal.open(path)


def test_macros_are_asked_on_a_cursor_of_their_own_and_waited_for(path, tmp_path):
    # Listing the file's macros takes DuckDB ~40 ms, the interpreter released: it runs on
    # a cursor in a thread while the other listings are read, and migrate waits for it
    # before it writes anything or returns, even when it refuses the file for another
    # reason (the cursor must not outlive the connection the caller then closes).
    Journal.open(path).close()
    con = duckdb.connect(str(path))
    con.execute("CREATE MACRO count_star() AS 1")
    con.close()
    con, made_here = opening.connect(path)
    try:
        check = opening.macros(con, made_here)
        assert not made_here and check._thread.name == "durable_nb-check"
        with pytest.raises(JournalCorrupt, match="views or macros"):
            schema.migrate(path, con, macros=check)
        assert check.found() and not check._thread.is_alive()
    finally:
        con.close()
    foreign = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE sales (n INTEGER)")
    try:
        check = opening.MacroCheck(con)
        with pytest.raises(JournalCorrupt, match="not a durable_nb journal"):
            schema.migrate(foreign, con, macros=check)
        assert not check._thread.is_alive() and check.found() is False
    finally:
        con.close()


def _made_here(path: Path) -> bool:
    """Whether a new process would take ``path`` for the file this user's durable_nb
    closed last, unchanged (its checks skipped): the stamp, not this process's memory."""
    opening._CLOSED.clear()
    con, made_here = opening.connect(path)
    con.close()
    return made_here


@pytest.mark.parametrize("crafted, said", [
    ("CREATE MACRO count_star() AS 1", "views or macros"),
    ("ALTER TABLE runs ALTER COLUMN host SET DEFAULT 'x'", "default value"),
])  # fmt: skip
def test_a_journal_this_user_closed_is_not_checked_again_unless_changed(path, crafted, said):
    Journal.open(path).close()
    assert stamp.stamp_path(path).stat().st_mode & 0o777 == 0o600
    opening._CLOSED.clear()
    j = Journal.open(path)  # stamped: its checks skipped, then stamped again at close
    j.close()
    assert _made_here(path)
    # Changed afterwards by another connection: the full check refuses it, whatever the
    # stamp says.
    Journal.open(path).close()
    con = duckdb.connect(str(path))
    con.execute(crafted)
    con.close()
    assert not _made_here(path)
    opening._CLOSED.clear()
    with pytest.raises(JournalCorrupt, match=said):
        Journal.open(path)


def test_a_stamp_is_no_stamp_for_a_copy_another_path_or_another_user(path, tmp_path,
                                                                       monkeypatch):  # fmt: skip
    Journal.open(path).close()
    copy = tmp_path / "copy" / ".durable"
    copy.mkdir(parents=True)
    for f in (path, stamp.stamp_path(path)):
        (copy / f.name).write_bytes(f.read_bytes())
    assert not _made_here(copy / path.name)  # another inode, another path
    stamp.stamp_path(path).write_text('{"files": [[1, 2, 3, 4, 5], null], "sig": "00"}')
    assert not _made_here(path)  # not signed by this user
    Journal.open(path).close()
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "another-user"))
    monkeypatch.setattr(trust, "_secret", None)
    assert not _made_here(path)  # signed with another secret


def test_a_new_journal_is_a_copy_of_this_users_signed_template(tmp_path):
    # Each reset and open holds the template's lock: a journal of an earlier test still
    # opening in a thread of its own set the process's template (opening._EMPTY) between
    # this test's reset and its open (a flake in 3 CI runs of ~60).
    version = opening.engine().__version__
    with opening.TEMPLATE_LOCK:
        opening._EMPTY = None  # as in a new process
        Journal.open(tmp_path / "a.duckdb").close()  # the first one is built, and kept
    kept = template.template_path(version)
    assert kept.stat().st_mode & 0o777 == 0o600 and template.load(version)
    # A template of this user's (a mark in it) is what a new process's journals copy.
    data, nonce = template.load(version)
    marked = tmp_path / "marked.duckdb"
    marked.write_bytes(data)
    con = duckdb.connect(str(marked))
    assert con.execute("SELECT value FROM meta WHERE key = 'closed'").fetchall() == [(nonce,)]
    con.execute("INSERT INTO meta (key, value) VALUES ('mark', 'template')")
    con.execute("CHECKPOINT")
    con.close()
    template.save(version, marked.read_bytes(), nonce)
    with opening.TEMPLATE_LOCK:
        opening._EMPTY = None
        j = Journal.open(tmp_path / "b.duckdb")
    try:
        assert j._query_as_is("SELECT value FROM meta WHERE key = 'mark'", []) == [("template",)]
    finally:
        j.close()
    # Not signed by this user (changed, its nonce too, or another user's): built again,
    # and kept anew.
    signed = kept.read_bytes()
    for forged in (b"0" * 64 + signed[64:], signed.replace(nonce.encode(), b"f" * 32, 1)):
        kept.write_bytes(forged)
        with opening.TEMPLATE_LOCK:
            opening._EMPTY = None
            j = Journal.open(tmp_path / f"c{len(forged)}-{forged[:1].hex()}.duckdb")
        try:
            assert j._query_as_is("SELECT value FROM meta WHERE key = 'mark'", []) == []
        finally:
            j.close()
        assert template.load(version) and b"template" not in template.load(version)[0]
        marked_again = template.load(version)[1]
        assert marked_again != nonce  # built anew: a nonce of its own
        template.save(version, marked.read_bytes(), nonce)


@pytest.mark.parametrize(
    "crafted, said",
    [
        # a DEFAULT fills the rows this user writes with what it reads (a folder's path)
        ("ALTER TABLE runs ADD COLUMN leak VARCHAR DEFAULT (current_setting('temp_directory'))",
         "default value"),
        ("ALTER TABLE runs ALTER COLUMN host SET DEFAULT 'x'", "default value"),
        ("ALTER TABLE cells ADD COLUMN extra INTEGER", "columns differ"),
        ("ALTER TABLE steps DROP COLUMN args", "columns differ"),
        ("CREATE TABLE notes (t VARCHAR)", "columns differ"),
        ("CREATE SCHEMA s; CREATE TABLE s.cells (x INTEGER)", "columns differ"),
        # a constraint makes every fold of this user's records fail
        ("DROP TABLE outputs; CREATE TABLE outputs (exec_id VARCHAR PRIMARY KEY, seq BIGINT "
         "CHECK (seq < 0), outputs VARCHAR, nbytes BIGINT, dropped BIGINT, sig VARCHAR)",
         "CHECK"),
        # DuckDB runs a trigger as rows are written: it could rewrite or copy them
        ("CREATE TRIGGER t AFTER INSERT ON steps FOR EACH STATEMENT DELETE FROM cells",
         "triggers"),
        ("CREATE UNIQUE INDEX u ON steps (name)", "indexes"),  # folds of two calls fail
        ("CREATE INDEX i ON cells (seq)", "indexes"),
        ("CREATE SEQUENCE s", "sequences"),
        ("CREATE TYPE mood AS ENUM ('a')", "types"),
    ],
    ids=["leaking-default", "set-default", "added", "dropped", "table", "schema", "check",
         "trigger", "unique-index", "index", "sequence", "type"],
)  # fmt: skip
def test_journals_whose_tables_were_reshaped_are_refused(path, crafted, said):
    Journal.open(path).close()
    con = duckdb.connect(str(path))
    con.execute(crafted)
    con.close()
    with pytest.raises(JournalCorrupt, match=said) as refused:
        Journal.open(path)
    assert str(path) in str(refused.value)


# -- fold and recovery ------------------------------------------------------------------------


def test_rows_reach_duckdb_only_when_folded(path):
    j = Journal.open(path)
    j.write(run())
    j.write(cell(1, status="running"), sync=False)
    j.write(cell(1, status="ok"))  # same key: replaces the first
    log = path.with_suffix(".log")
    assert log.stat().st_size > 0
    j.abandon()  # a crash: nothing was folded
    assert raw(path, "SELECT count(*) FROM cells") == [(0,)]
    j = Journal.open(path)  # recovery folds the log
    assert [c.status for c in j.cells()] == ["ok"]
    assert log.stat().st_size == 0
    j.close()
    assert raw(path, "SELECT status FROM runs") == [("crashed",)]  # its process died


def test_recovery_marks_running_cells_crashed_and_finds_the_interrupted_one(path):
    j = Journal.open(path)
    j.write(run("r1"))
    j.write(cell(1, "r1"))
    j.write(cell(2, "r1", status="running", source="long()"))
    j.write(step("a", seq=2))
    j.write(step("b", seq=2, status="error", kind=None, result=None, error="ValueError: no"))
    j.abandon()
    j = Journal.open(path)
    assert j.seq == 2 and j.last_ok_seq() == 1
    found = j.interrupted_cell("r2")
    assert found.cell.seq == 2 and found.cell.status == "crashed"
    assert (found.steps_done, found.step_error) == (1, "ValueError: no")
    assert j.interrupted_cell("r1") is None  # only earlier runs' cells count
    j.write(cell(3, "r2"))
    assert j.interrupted_cell("r3") is None  # the last cell succeeded
    j.close()


def test_fold_in_passing_failure_is_told_not_printed_and_loses_nothing(path, capsys):
    told = []
    j = Journal.open(path, warn=lambda message, once: told.append((message, once)))
    j._fold_at = 3
    j._con.close()  # DuckDB fails from here on; the log still takes records
    for i in range(5):
        j.write(cell(i + 1))
    assert len(told) == 1 and "records are safe in the log" in told[0][0]
    assert told[0][1] == f"fold:{path}"
    assert capsys.readouterr() == ("", "")  # the store never prints
    j.abandon()
    j = Journal.open(path)
    assert [c.seq for c in j.cells()] == [1, 2, 3, 4, 5]
    j.close()


def test_a_legacy_wal_log_is_folded_and_removed(path):
    Journal.open(path).close()
    legacy = path.with_suffix(".wal")
    old = Log(legacy)  # what an earlier version left after a crash
    old.append(("run", tuple(run("old"))), sync=True)
    old.append(("cell", tuple(cell(1, "old"))[:-1]), sync=True)  # schema 2: no sig column
    old.append(("meta", ("epoch", "0")), sync=True)
    old.close()
    duckdb_wal = Path(f"{path}.wal")  # DuckDB's own file must be left alone
    assert legacy != duckdb_wal
    j = Journal.open(path)
    assert [(c.run_id, c.sig) for c in j.cells()] == [("old", None)]
    assert [r.run_id for r in j.runs()] == ["old"]
    assert not legacy.exists() and path.with_suffix(".log").exists()
    j.close()


def test_legacy_and_new_logs_fold_oldest_first(path):
    j = Journal.open(path)
    j.write(cell(1, status="running"))
    j.abandon()
    new = path.with_suffix(".log")
    legacy = Log(path.with_suffix(".wal"))
    legacy.append(("cell", tuple(cell(1, status="error"))), sync=True)
    legacy.close()
    os.utime(path.with_suffix(".wal"), (time.time() - 60,) * 2)  # written before the new log
    os.utime(new, (time.time(),) * 2)
    j = Journal.open(path)
    assert [c.status for c in j.cells()] == ["crashed"]  # the newer log's "running" won
    j.close()


def test_checkpoint_leaves_a_whole_duckdb_file(path, tmp_path):
    j = Journal.open(path)
    j.write(run())
    j.write(cell(1))
    j.checkpoint()
    wal = Path(f"{path}.wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert path.with_suffix(".log").stat().st_size == 0
    j.close()


# -- named reads -----------------------------------------------------------------------------


def test_variables_as_of_takes_each_names_latest_row(journal):
    for seq, status, error in [
        (1, "ok", None),
        (2, "ok", None),
        (3, "ok", None),
        (4, "crashed", None),
        (5, "ok", "the namespace was not saved"),
    ]:
        journal.write(cell(seq, status=status, error=error))
    journal.write(variable(4, "a", value_id="a4"))  # rows of cells no restore stops at
    journal.write(variable(5, "a", value_id="a5"))
    journal.write(variable(1, "a", value_id="a1"))
    journal.write(variable(1, "b", value_id="b1"))
    journal.write(variable(2, "a", value_id="a2"))
    journal.write(variable(3, "b", state="deleted", value_id=None))
    assert {n: v.value_id for n, v in journal.variables_as_of(1).items()} == {"a": "a1", "b": "b1"}
    assert {n: v.value_id for n, v in journal.variables_as_of(2).items()} == {"a": "a2", "b": "b1"}
    assert set(journal.variables_as_of(3)) == {"a"}
    assert journal.variables_as_of(5)["a"].value_id == "a2" and journal.live_names() == {"a"}
    assert [journal.last_ok_seq(upto=n) for n in (0, 3, 4, 5)] == [0, 3, 3, 3]


def test_payloads_and_referenced_blobs(journal):
    stream = pickle.dumps(b"s" * 100)
    chunks = journal.blobs.put_chunks(stream)
    buffers = journal.blobs.put_chunks(b"b" * (3 << 20))  # three 1 MiB chunks
    journal.write(PayloadRow("v1", "pickle", 3, b"abc", None, "[]"))
    journal.write(PayloadRow("v2", "pickle", 5, None, json.dumps([len(stream), chunks]),
                             json.dumps([[3 << 20, buffers]])), sync=False)  # fmt: skip
    _, blob = journal.put_payload(b"r" * (2 << 20))
    journal.write(step("big", kind="pickle", result=None, blob=blob))
    assert journal.payload_ids(fold=False) == set()  # still in the log: not read, not folded
    assert journal.payload_ids() == {"v1", "v2"}
    assert journal.payload_ids(fold=False) == {"v1", "v2"}
    assert set(journal.payloads(["v1", "v1", "nope"])) == {"v1"}
    assert journal.payloads([]) == {}
    assert journal.referenced_blobs() == {*chunks, *buffers, blob}
    orphan = journal.blobs.put(b"nobody refers to this")
    assert journal.gc() == (1, len(b"nobody refers to this"))
    assert orphan not in journal.blobs.names()


def test_cell_reads(journal):
    journal.write(run("r1", started=100.0))
    journal.write(run("r2", started=200.0))
    for seq in range(1, 6):
        journal.write(cell(seq, "r1" if seq < 4 else "r2"))
    assert [c.seq for c in journal.cell_log(2)] == [4, 5]
    assert journal.cell_log(-1) == []
    assert [c.seq for c in journal.cells([5, 1, 1])] == [1, 5]
    assert [c.seq for c in journal.cells_of_run("r2")] == [4, 5]
    assert journal.first_run_since(150.0) == "r2"
    assert journal.first_run_since(300.0) is None
    assert [r.run_id for r in journal.runs()] == ["r1", "r2"]
    o = journal.overview()
    assert (o.cells, o.cells_ok, o.steps, o.last_cell_status, o.schema) == (
        5, 5, 0, "ok", str(SCHEMA_VERSION)
    )  # fmt: skip


def test_failures_and_replay_index(journal):
    journal.write(step("a", status="error", kind=None, result=None, error="E: 1", ended=1.0))
    journal.write(step("a", status="ok", ended=2.0))
    journal.write(step("b", status="error", kind=None, result=None, error="E: 2"))
    assert journal.failures() == {"b": "E: 2"}  # a's latest outcome succeeded
    assert journal.lookup("a") == ("json", b"1") and journal.lookup("b") is None
    assert journal.completed == 1
    journal.new_epoch()
    assert journal.lookup("a") is None and journal.failures() == {}
    assert journal.meta("epoch") == "1"


def test_meta_and_query(journal):
    journal.write_meta("ignore", '["x"]')
    assert journal.meta("ignore") == '["x"]' and journal.meta("nope") is None
    journal.write(cell(1))
    df = journal.query("SELECT seq FROM cells")
    assert list(df["seq"]) == [1]
    with pytest.raises(ValueError, match="Catalog"):
        journal.query("SELECT * FROM nope")


# -- blobs, trust, copies ----------------------------------------------------------------------


def test_a_missing_blob_is_told_and_the_step_runs_again(path):
    told = []
    j = Journal.open(path, warn=lambda message, once: told.append(message))
    inline, blob = j.put_payload(pickle.dumps(b"\0" * (2 << 20)))
    assert inline is None
    j.write(step("big", kind="pickle", result=None, blob=blob))
    (j.blobs.folder / blob).unlink()
    assert j.lookup("big") is None and "missing" in told[0]
    assert j.gc() == (0, 0)
    j.close()


def test_content_of_another_user_is_refused_naming_the_notebook(path, tmp_path, monkeypatch):
    j = Journal.open(path)
    j.write(step("p", kind="pickle", result=pickle.dumps([1])))
    j.write(cell(1))
    j.close()
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "someone-else"))
    monkeypatch.setattr(trust, "_secret", None)
    j = Journal.open(path, notebook="/home/me/nb.ipynb")
    assert j.untrusted() == 2
    with pytest.raises(UntrustedJournal, match=re.escape("durable-nb trust /home/me/nb.ipynb")):
        j.lookup("p")
    with pytest.raises(UntrustedJournal):
        j.check_restorable()
    assert j.trust() == 3  # a cell, a pickled result and the run the cell names (unknown)
    assert j.untrusted() == 0 and j.lookup("p") == ("pickle", pickle.dumps([1]))
    j.close()


def test_a_copy_of_a_held_journal_has_the_unfolded_records(path, tmp_path):
    j = Journal.open(path)
    j.write(cell(1))  # in the log only
    dest = tmp_path / "copy"
    dest.mkdir()
    copy = copy_journal(path, dest)
    c = Journal.open(copy)
    assert [x.seq for x in c.cells()] == [1]
    c.close()
    j.close()
    remove_journal(path)
    assert not any(p.exists() for p in journal_files(path))


@pytest.mark.parametrize("side", [".wal.checkpoint", ".wal.recovery"])
def test_a_copy_and_a_removal_take_duckdbs_checkpoint_wals_too(path, tmp_path, side):
    # DuckDB (1.4+) writes what is committed during a checkpoint to <stem>.duckdb.wal.
    # checkpoint, and replays it at open: a copy of a journal a kernel holds, made while it
    # checkpoints, needs it; an import replacing a journal must not leave it behind.
    Journal.open(path).close()
    Path(f"{path}{side}").write_bytes(b"what DuckDB wrote")
    dest = tmp_path / "copy"
    dest.mkdir()
    copy = copy_journal(path, dest)
    assert Path(f"{copy}{side}").read_bytes() == b"what DuckDB wrote"
    remove_journal(path)
    assert not Path(f"{path}{side}").exists()


def test_a_journal_made_now_is_checked_only_where_others_could_replace_it(path, tmp_path):
    # Made now from this user's signed template, holding its nonce, in a folder only this
    # user can change: taken as one this process closed (its checks skipped). In a folder
    # another user can write, they could put a file in its place as it is linked (review4
    # R4-3): checked in full, as is a file already there that durable_nb never closed.
    from durable_nb.store import opening

    con, made_here = opening.connect(path)  # created now, under a random name, linked
    con.close()
    assert made_here
    con, made_here = opening.connect(path)  # there already, never closed by durable_nb
    con.close()
    assert not made_here
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o1777)  # sticky as /tmp: DuckDB's absent side files are anyone's
    con, made_here = opening.connect(shared / "nb.duckdb")
    con.close()
    assert not made_here


def test_a_journal_made_now_is_vouched_for_by_the_nonce_duckdb_reads(path):
    # The nonce create() names must be the one DuckDB's open file holds: a template whose
    # bytes hold another (here: the nonce named is not the file's) vouches for nothing.
    from durable_nb.store import opening

    Journal.open(path.with_name("seed.duckdb")).close()  # the template is loaded
    data, _ = opening._EMPTY
    opening._EMPTY = data, "0" * 32
    try:
        con, made_here = opening.connect(path)
        con.close()
    finally:
        opening._EMPTY = None
    assert not made_here


def test_a_file_put_in_place_of_a_journal_made_now_is_checked_in_full(path, monkeypatch):
    # Every journal made from the template holds its nonce until its first close: a file
    # holding it too, put in place once the new one is linked, is still another inode.
    from durable_nb.store import opening

    fsync = opening._fsync

    def replace_then_fsync(at: Path) -> None:
        if at == path.parent and path.exists():  # linked: the folder's fsync comes next
            other = path.with_name("other.duckdb")
            con = duckdb.connect(str(other))
            con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            con.execute("INSERT INTO meta VALUES (?, ?)", [stamp.CLOSED_KEY, opening._EMPTY[1]])
            con.execute("CREATE MACRO planted() AS 1")
            con.close()
            os.replace(other, path)
        fsync(at)

    monkeypatch.setattr(opening, "_fsync", replace_then_fsync)
    with pytest.raises(JournalCorrupt, match="views or macros"):
        Journal.open(path)


def test_a_wal_left_where_a_journal_is_made_is_checked_in_full(path, tmp_path):
    # review65 H1: a WAL unpacked into the journal's folder (a cloned repository's
    # .durable/) before the journal is made is replayed into it by DuckDB's open. Every
    # journal made from the template has its database id, so a WAL written against any
    # copy of it replays: the macro and view it makes are found, not skipped.
    from durable_nb.store import opening

    Journal.open(tmp_path / "seed.duckdb").close()  # the template exists
    crafted = tmp_path / "crafted.duckdb"
    crafted.write_bytes(opening._EMPTY[0])
    con = duckdb.connect(str(crafted))
    con.execute("PRAGMA disable_checkpoint_on_shutdown")
    con.execute("CREATE MACRO planted() AS 1")
    con.execute("CREATE VIEW v AS SELECT 1")
    con.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(f"{crafted}.wal", f"{path}.wal")
    with pytest.raises(JournalCorrupt, match="views or macros"):
        Journal.open(path)


def test_a_stamp_vouches_only_for_the_file_that_holds_its_nonce(path, tmp_path):
    # review4 R4-1: the journal replaced while a kernel held it (a sync tool, git, a
    # colleague's copy renamed into place); the kernel's close marks the file it had
    # open, and stamps the new one's identity: the new one is checked in full.
    j = Journal.open(path)
    other = tmp_path / "other.duckdb"
    Journal.open(other).close()
    con = duckdb.connect(str(other))
    con.execute("CREATE MACRO planted() AS 1")
    con.close()
    os.replace(other, path)
    j.close()
    assert not _made_here(path)
    with pytest.raises(JournalCorrupt, match="views or macros"):
        Journal.open(path)


def test_write_all_is_one_record_or_the_rows_ahead_synced_when_too_big(path, monkeypatch):
    """A cell's variables and end record: one log record; past GROUP_BYTES (a record is at
    most 64 MiB to the reader), the rows one by one and an fdatasync before the last."""
    j = Journal.open(path)
    log = j._log
    synced_at: list[int] = []
    sync = log.sync
    monkeypatch.setattr(log, "sync", lambda: (synced_at.append(log.count), sync())[1])
    rows = [variable(1, "a", value_id="a1"), variable(1, "b", value_id="b1"), cell(1)]
    j.write_all([(r, None) for r in rows], sync=False)
    assert log.count == 1 and synced_at == [] and j.unsynced
    names = {n: v.value_id for n, v in j.variables_as_of(1).items()}
    assert names == {"a": "a1", "b": "b1"}
    monkeypatch.setattr(journal_module, "GROUP_BYTES", 100)
    rows = [variable(2, "a", value_id="a" * 80), variable(2, "b", value_id="b2"), cell(2)]
    j.write_all([(r, None) for r in rows], sync=True)
    # Its start (a kill meanwhile shows the cell crashed), the two variables, synced; the end.
    assert log.count == 4 and synced_at == [3]
    assert [(k, r[CellRow._fields.index("status")] if k == "cell" else r[0])
            for k, r in log.read()] == [("cell", "running"), ("variable", "2:a"),
                                        ("variable", "2:b"), ("cell", "ok")]  # fmt: skip
    assert {n: v.value_id for n, v in j.variables_as_of(2).items()} == {"a": "a" * 80, "b": "b2"}
    j.abandon()


def test_a_stamp_that_is_no_regular_file_is_no_stamp(path):
    # review4 R4-4: a FIFO named <stem>.closed (tar recreates them) must not hang the
    # opening: it is read without blocking, and is no stamp.
    Journal.open(path).close()
    stamp.stamp_path(path).unlink()
    os.mkfifo(stamp.stamp_path(path))
    assert stamp.read(path) is None
    Journal.open(path).close()  # checked in full, then stamped anew
    assert stamp.read(path) is not None


def test_a_log_that_is_a_link_or_a_pipe_is_not_opened(path, tmp_path):
    # review4 R4-6 / R4-4: a <stem>.log shipped as a link (a repository, an archive) had
    # its target emptied by the fold; a FIFO hung the opening.
    precious = tmp_path / "precious"
    precious.write_text("the user's own\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.with_suffix(".log")
    os.symlink(precious, log)
    with pytest.raises(JournalCorrupt, match="not a regular file"):
        Journal.open(path)
    assert precious.read_text() == "the user's own\n"
    log.unlink()
    os.mkfifo(log)
    with pytest.raises(JournalCorrupt, match="not a regular file"):
        Journal.open(path)


@pytest.mark.parametrize("side", [".duckdb", ".duckdb.wal", ".duckdb.wal.checkpoint",
                                  ".duckdb.wal.recovery", ".log", ".wal", ".blobs"])  # fmt: skip
@pytest.mark.parametrize("made", ["before", "shipped"])
def test_a_journal_file_shipped_as_a_link_is_never_read_or_written_through(
    path, tmp_path, side, made
):
    """A repository or an archive can carry any of a journal's files as a link to a file of
    the user's: DuckDB opened a ``.duckdb.wal`` link and overwrote its target. No file is
    opened, copied or removed through a link: the opening refuses (one line saying what to
    do), a copy refuses, and removing the journal removes the link, not its target."""
    precious = tmp_path / "precious"
    if side == ".blobs":
        precious.mkdir()
        (precious / "note").write_text("mine")
    else:
        precious.write_bytes(b"the user's own\n" * 64)

    def state() -> object:
        return (
            sorted(p.name for p in precious.iterdir())
            if precious.is_dir()
            else precious.read_bytes()
        )

    before = state()
    if made == "before":  # a journal that existed, its file replaced by a link
        Journal.open(path).close()
    path.parent.mkdir(parents=True, exist_ok=True)
    link = path.parent / f"{path.stem}{side}"
    if link.is_dir() and not link.is_symlink():
        link.rmdir()
    link.unlink(missing_ok=True)
    os.symlink(precious, link)
    if side == ".blobs":  # a folder of blobs elsewhere may be the user's own doing: opened
        Journal.open(path).close()
    else:
        with pytest.raises(JournalCorrupt, match=f"{re.escape(str(link))} is not a regular file"):
            Journal.open(path)
        dest = tmp_path / "copy"
        dest.mkdir()
        with pytest.raises(JournalCorrupt, match="not a regular file"):
            copy_journal(path, dest)
    remove_journal(path)
    assert not link.is_symlink() and not link.exists()
    assert state() == before


@pytest.mark.parametrize("side", [".duckdb.wal", ".duckdb.wal.checkpoint", ".duckdb.wal.recovery",
                                  ".log", ".wal"])  # fmt: skip
@pytest.mark.parametrize("kind", ["hard link", "folder", "folder, no journal yet"])
def test_a_journal_file_written_in_place_that_is_a_hard_link_or_a_folder_is_refused(
    path, tmp_path, side, kind
):
    """helper-56: a hard link's other name (a file of the user's) was rewritten by DuckDB
    (its WAL) or would be emptied by the fold (the log); a folder at the log's name was
    called a full disk. Both are refused in the line saying what to do, before a journal
    is made."""
    if kind != "folder, no journal yet":
        Journal.open(path).close()
    path.parent.mkdir(parents=True, exist_ok=True)
    there = path.parent / f"{path.stem}{side}"
    there.unlink(missing_ok=True)
    precious = tmp_path / "precious"
    precious.write_bytes(b"the user's own\n" * 64)
    if kind == "hard link":
        os.link(precious, there)
    else:
        there.mkdir()
    made = path.exists()
    with pytest.raises(JournalCorrupt, match=f"{re.escape(str(there))} is not a regular file of"):
        Journal.open(path)
    assert precious.read_bytes() == b"the user's own\n" * 64 and path.exists() == made


def test_gc_deletes_only_what_is_named_as_a_blob(journal):
    """A file someone put in the blob folder (a note, a README, a ``.tmp-`` draft of
    theirs, a folder) is not durable_nb's: gc leaves it (it raised on it, or deleted a
    ``.tmp-`` file: helper-56), and removes only unreferenced blobs and its own old
    temporary files."""
    folder = journal.blobs.folder
    journal.blobs.put(b"nobody refers to this")
    theirs = [folder / "README", folder / ".tmp-draft-of-my-paper.txt"]
    for p in theirs:
        p.write_text("the user's own")
    (folder / ".tmp-abcd1234").mkdir()
    (folder / ("f" * 32)).mkdir()
    ours = folder / ".tmp-k2x_9q0z"  # as a write a crash cut short leaves
    ours.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    for p in [*theirs, ours, folder / ".tmp-abcd1234"]:
        os.utime(p, (two_hours_ago, two_hours_ago))
    assert journal.gc() == (2, len(b"nobody refers to this") + len(b"half"))
    assert all(p.read_text() == "the user's own" for p in theirs) and not ours.exists()
    assert (folder / ".tmp-abcd1234").is_dir() and (folder / ("f" * 32)).is_dir()


def test_the_stamps_temporary_file_is_never_a_planted_link(path, tmp_path):
    # review4 R4-5: the stamp was written through a guessable name (its pid) opened with
    # O_CREAT|O_TRUNC: a link planted there had the user's file it pointed to rewritten.
    target = tmp_path / "bashrc"
    target.write_text("mine\n")
    j = Journal.open(path)
    planted = stamp.stamp_path(path).with_name(f".{stamp.stamp_path(path).name}.{os.getpid()}")
    os.symlink(target, planted)
    j.close()
    assert target.read_text() == "mine\n" and stamp.read(path) is not None
