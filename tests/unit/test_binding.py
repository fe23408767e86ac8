"""Signatures name their journal (store/binding.py): a row signed in one journal of yours
never verifies in another, and journals of schema 5 are carried over (or not) as
README's Trust section says. No kernel: journals written through the store's API."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_nb import trust
from durable_nb.errors import UntrustedJournal
from durable_nb.store import CellRow, Journal, MetaRow, RunRow, StepRow, files
from durable_nb.store.log import encode
from durable_nb.store.seal import BOUND, SIGNED_ROWS, sign, verify

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def secret(tmp_path, monkeypatch):
    """A signing secret of this test's own (not the person's)."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.setattr(trust, "_secret", None)


# -- the property ---------------------------------------------------------------------------

_ID = st.text("0123456789abcdef", min_size=32, max_size=32)
_FIELD = st.one_of(st.none(), st.text(max_size=6), st.integers(-(2**63), 2**63 - 1),
                   st.binary(max_size=6))  # fmt: skip
_SIGNED = st.tuples(st.sampled_from(sorted(BOUND)), st.lists(_FIELD, max_size=4),
                    st.one_of(st.none(), _ID))  # fmt: skip


def _same(a: tuple, b: tuple) -> bool:
    """Equal as signed: the same table, journal and fields of the same types."""
    (t, f, j), (u, g, k) = a, b
    typed = [(type(v), v) for v in f] == [(type(v), v) for v in g]
    return t == u and j == k and typed


@given(signed=_SIGNED, other=_SIGNED, data=st.data())
def test_a_row_signed_for_one_journal_verifies_for_no_other_table_key_or_journal(
    signed, other, data
):
    """A signature verifies only for the table, fields and journal it was made for (None:
    as schema 5 signed, naming no journal); ``other`` is a fresh triple or ``signed``
    with one part changed."""
    table, fields, journal = signed
    which = data.draw(st.sampled_from(["other", "table", "journal", "key"]))
    if which == "table":
        other = (other[0], fields, journal)
    elif which == "journal":
        other = (table, fields, other[2])
    elif which == "key":
        other = (table, [data.draw(_FIELD), *fields[1:]], journal)
    sig = trust.sign_fields(table, fields, journal)
    assert trust.verify_fields(table, fields, sig, journal)
    assert trust.verify_fields(other[0], other[1], sig, other[2]) == _same(signed, other)


@given(x=_ID, y=_ID, key=st.text(max_size=8), value=st.text(max_size=8))
def test_a_signed_row_verifies_only_in_its_journal(x, y, key, value):
    row = MetaRow(key, value)
    row = row._replace(sig=sign(row, x))
    assert verify(row, x) and verify(row, y) == (x == y) and not verify(row, None)
    moved = row._replace(key=key + "x")
    assert not verify(moved, x)


# -- journals of one user -------------------------------------------------------------------


def _cell(seq: int) -> CellRow:
    now = time.time()
    return CellRow(f"r1:{seq}", seq, "r1", f"id{seq}", f"key{seq}", "f()", now, now, "ok",
                   None, 1, 0)  # fmt: skip


def _step(identity: str, value: object, seq: int = 1) -> StepRow:
    now = time.time()
    return StepRow(f"rec-{identity}", identity, 0, "f", f"key{seq}", seq, "r1", "(1,)", 0,
                   None, "ok", "pickle", pickle.dumps(value), None, None, 1, "[]", now,
                   now)  # fmt: skip


def _journal(path: Path, *identities: str) -> str:
    """A journal with a run, one cell and a pickled result per identity; its id."""
    j = Journal.open(path)
    try:
        j.write(RunRow("r1", 1, "host", "nb.ipynb", time.time(), None, "running"))
        for identity in identities:
            j.write(_step(identity, {identity}))
        j.write(_cell(1))
        return j.id
    finally:
        j.close()


def _sql(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(path))
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _open(path: Path) -> tuple[Journal, list[str]]:
    told: list[str] = []
    return Journal.open(path, warn=lambda m, once=None: told.append(m), notebook="nb.ipynb"), told


def _replays(path: Path, identity: str) -> bool:
    """Whether ``identity``'s pickled result replays (False: refused as not yours)."""
    j, _ = _open(path)
    try:
        return j.lookup(identity) is not None
    except UntrustedJournal:
        return False
    finally:
        j.close()


def _trust(path: Path) -> None:
    j, _ = _open(path)
    try:
        j.trust()
    finally:
        j.close()


def test_each_journal_has_its_own_signed_id_kept_across_opens(tmp_path):
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    ids = _journal(a, "x"), _journal(b, "x")
    assert ids[0] != ids[1] and all(trust.JOURNAL_ID.fullmatch(i) for i in ids)
    j, told = _open(a)
    try:
        assert j.id == ids[0] and not told and j.untrusted() == 0
        assert j.meta("schema_version") == "6" and j.lookup("x") is not None
    finally:
        j.close()


def test_step_rows_copied_from_another_journal_of_yours_are_refused(tmp_path):
    """Review F3: the signed identity had no journal, so B's result replayed in A."""
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    _journal(a, "mine")
    _journal(b, "theirs")
    _sql(a, f"ATTACH '{b}' AS b (READ_ONLY); INSERT INTO steps SELECT * FROM b.steps")
    assert _replays(a, "mine") and not _replays(a, "theirs")
    _trust(a)  # control: accepted as it is, the copied result is what replays
    assert _replays(a, "theirs") and _replays(a, "mine")


def test_an_epoch_row_copied_from_another_journal_of_yours_stops_replay(tmp_path):
    """Review F2: B's signed epoch row (B had two %durable fresh) in A made every step of
    A run again; now it is not A's: no result replays and no step runs in their place."""
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    _journal(a, "mine")
    _journal(b)
    j = Journal.open(b)
    j.new_epoch(), j.new_epoch()
    j.close()
    [row] = _sql(b, "SELECT * FROM meta WHERE key = 'epoch'")
    _sql(a, "INSERT OR REPLACE INTO meta VALUES (?, ?, ?)", list(row))
    j, told = _open(a)
    try:
        assert j.epoch == 2 and "epoch" in told[0] and "not signed by you" in told[0]
        with pytest.raises(UntrustedJournal):
            j.lookup("mine")
        with pytest.raises(UntrustedJournal):
            j.lookup("never-recorded")  # would run: refused too
    finally:
        j.close()
    _trust(a)  # control: accepted as it is, epoch 2 holds no result: the steps run again
    j, _ = _open(a)
    try:
        assert j.epoch == 2 and j.lookup("mine") is None
    finally:
        j.close()


def test_an_id_row_deleted_is_restored_and_one_swapped_replays_nothing(tmp_path):
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    id_a = _journal(a, "mine")
    id_b = _journal(b, "theirs")
    [row_b] = _sql(b, "SELECT * FROM meta WHERE key = 'journal'")
    for attack in ("DELETE FROM meta WHERE key = 'journal'",
                   "INSERT OR REPLACE INTO meta VALUES (?, ?, ?)"):  # fmt: skip
        copy = tmp_path / f"{len(attack)}.duckdb"
        copy.write_bytes(a.read_bytes())
        _sql(copy, f"ATTACH '{b}' AS b (READ_ONLY); INSERT INTO steps SELECT * FROM b.steps")
        _sql(copy, attack, list(row_b) if "?" in attack else None)
        j, told = _open(copy)
        try:
            # Review B7: A's cells, signed by you, name A's id: deleted, it is written
            # again (one line); B's in its place, nothing replays (one line).
            assert j.id == (id_b if "?" in attack else id_a)
            assert j.foreign_records()["steps"] >= 1
            [line] = told
            assert ("id row of another of your journals" if "?" in attack
                    else "had lost its id row") in line  # fmt: skip
        finally:
            j.close()
        assert _replays(copy, "mine") == ("?" not in attack)
        assert not _replays(copy, "theirs")
        _trust(copy)  # control: trusted, both replay
        assert _replays(copy, "mine") and _replays(copy, "theirs")


def test_an_id_row_or_another_journals_records_planted_in_the_log_are_not_used(tmp_path):
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    id_a, id_b = _journal(a, "mine"), _journal(b, "theirs")
    theirs = _step("theirs", {"planted"})._replace(record_id="planted")
    id_row = MetaRow("journal", id_b)
    records = [("meta", (*id_row[:-1], sign(id_row, id_b))),
               ("step", (*theirs[:-1], sign(theirs, id_b)))]  # fmt: skip
    log = files.log_path(a)
    log.write_bytes(b"".join(encode(r, i) for i, r in enumerate(records)))
    assert not _replays(a, "theirs")
    j, _ = _open(a)
    try:
        assert j.id == id_a and j.lookup("mine") is not None
    finally:
        j.close()
    log.write_bytes(encode(("step", (*theirs[:-1], sign(theirs, id_a))), 0))  # control
    assert _replays(a, "theirs")


def test_a_resume_plan_sealed_in_another_journal_is_ignored(tmp_path):
    from durable_nb.cli.run import _read_plan, _write_plan

    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    _journal(a)
    _journal(b)
    text = '{"started": 0.0, "done": [], "parameters": []}'
    j = Journal.open(b)
    try:
        _write_plan(j, text)
        assert _read_plan(j) is not None  # control: in its journal, the plan is read
    finally:
        j.close()
    [(value,)] = _sql(b, "SELECT value FROM meta WHERE key = 'headless'")
    _sql(a, "INSERT OR REPLACE INTO meta VALUES ('headless', ?, NULL)", [value])
    j = Journal.open(a)
    try:
        assert _read_plan(j) is None
    finally:
        j.close()


# -- journals of schema 5 -------------------------------------------------------------------


def _as_schema_5(path: Path, plan: str | None = None) -> None:
    """Make ``path`` what a durable_nb of schema 5 left: signatures naming no journal."""
    j = Journal.open(path)
    try:
        if plan is not None:
            j.write_meta("headless", trust.seal(trust.PLAN_DOMAIN, plan))
        with j._lock:
            j.fold()
            j._con.execute("BEGIN")
            j._resign(j.id, None)
            j._con.execute("DELETE FROM meta WHERE key = 'journal'")
            j._con.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
            j._con.execute("COMMIT")
    finally:
        j.close()


def test_a_schema_5_journal_all_yours_is_bound_on_first_open_with_one_line(tmp_path):
    a = tmp_path / "a.duckdb"
    _journal(a, "mine")
    plan = '{"started": 0.0, "done": [], "parameters": []}'
    _as_schema_5(a, plan)
    j, told = _open(a)
    try:
        [line] = told
        assert "older durable_nb" in line and "now bound to it" in line and "\n" not in line
        assert j.meta("schema_version") == "6" and trust.JOURNAL_ID.fullmatch(j.id)
        assert j.untrusted() == 0 and j.lookup("mine") is not None
        assert trust.unseal(j.meta("headless"), trust.plan_domain(j.id)) == plan
    finally:
        j.close()


def test_a_schema_5_journal_with_one_record_not_yours_needs_trust_once(tmp_path):
    """All or none: a schema-6 journal with its id row deleted, its version set back to 5
    and a result of another (older) journal of yours planted must not come out trusted."""
    a, old = tmp_path / "a.duckdb", tmp_path / "old.duckdb"
    _journal(a, "mine")
    _journal(old, "theirs")
    _as_schema_5(old)
    _sql(a, f"ATTACH '{old}' AS o (READ_ONLY); INSERT INTO steps SELECT * FROM o.steps")
    _sql(a, "DELETE FROM meta WHERE key = 'journal'")
    _sql(a, "UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    j, told = _open(a)
    try:  # A's id comes back from A's signed cells (review B7): the planted one is not A's
        [line] = told
        assert "had lost its id row" in line
        assert j.meta("schema_version") == "6"
        with pytest.raises(UntrustedJournal):
            j.lookup("theirs")
        assert j.lookup("mine") is not None
    finally:
        j.close()
    _trust(a)  # control: trusted once, both replay
    assert _replays(a, "mine") and _replays(a, "theirs")


def test_every_signed_table_is_carried_over(tmp_path):
    """Every row type ``durable-nb trust`` signs is one a schema 5 journal is bound in."""
    a = tmp_path / "a.duckdb"
    _journal(a, "mine")
    _as_schema_5(a)
    j, _ = _open(a)
    try:
        assert j.foreign_records() == dict.fromkeys(BOUND, 0)
        assert {t.__name__ for t in SIGNED_ROWS} >= {"MetaRow", "RunRow", "CellRow", "StepRow"}
    finally:
        j.close()


def test_a_schema_6_journal_whose_version_was_set_back_keeps_its_id(tmp_path):
    """``schema_version`` is not signed: set back to 5, the journal's own id row (signed)
    says it is of schema 6 already; nothing is carried over, nothing lost."""
    a = tmp_path / "a.duckdb"
    id_a = _journal(a, "mine")
    _sql(a, "UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    j, told = _open(a)
    try:
        assert not told and j.id == id_a and j.meta("schema_version") == "6"
        assert j.lookup("mine") is not None
    finally:
        j.close()


def test_a_copy_of_the_journal_file_is_the_same_journal_until_trust_gives_it_an_id(tmp_path):
    """README: records move between two copies of one journal file unnoticed; once one is
    trusted (a new id), the other's records are not its own any more."""
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    _journal(a, "mine")
    b.write_bytes(a.read_bytes())
    j = Journal.open(b)
    j.write(_step("later", {"later"}))
    j.close()
    copy = "INSERT INTO steps SELECT * FROM b.steps WHERE identity = 'later'"
    _sql(a, f"ATTACH '{b}' AS b (READ_ONLY); {copy}")
    assert _replays(a, "later")  # the same journal: accepted (documented)
    _sql(a, "DELETE FROM steps WHERE identity = 'later'")
    _trust(a)
    _sql(a, f"ATTACH '{b}' AS b (READ_ONLY); {copy}")
    assert not _replays(a, "later") and _replays(a, "mine")
