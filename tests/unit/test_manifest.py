"""Manifests (store/manifest.py): a deleted record is seen, but for the newest cut off.

Cell executions write results to one replay batch, through :class:`Written` as the journal
does; some end (their record carries a manifest), some crash (no manifest). Then any set
of results is deleted: it must be seen unless it only cuts the newest results of a cell
execution that never ended (that looks like a process that died earlier).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_nb.store import CellRow, StepRow, VariableRow
from durable_nb.store import manifest as m

pytestmark = pytest.mark.unit

EPOCH, KEY, NAME = 3, "cellkey", "f"


def _step(seq: int, i: int) -> StepRow:
    return StepRow(f"r{seq}-{i}", f"id{seq}-{i}", EPOCH, NAME, KEY, seq, "run", None, None,
                   None, "ok", "json", b"1", None, None, 1, None, 0.0, 0.0)  # fmt: skip


def _cell(seq: int, status: str) -> CellRow:
    return CellRow(f"run:{seq}", seq, "run", None, KEY, "f()", 0.0, 0.0, status, None, 0, 0)


@given(
    cells=st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=5),
    data=st.data(),
)
def test_a_deletion_is_seen_unless_it_cuts_a_crashed_cells_newest_results(cells, data):
    written = m.Written(0)
    rows, records = [], []
    for seq, (count, ended) in enumerate(cells, start=1):
        written.cell(_cell(seq, "running"), EPOCH)
        rows += [written.step(_step(seq, i)) for i in range(count)]
        records.append(written.cell(_cell(seq, "ok" if ended else "running"), EPOCH))
    which = m.entry(EPOCH, m.batch(KEY, NAME, None))
    gone = data.draw(st.sets(st.sampled_from(range(len(rows))) if rows else st.nothing()))
    kept = [r for i, r in enumerate(rows) if i not in gone]
    seen = m.results_missing(kept, m.expected(records, which))
    unseen = True
    for seq, (count, ended) in enumerate(cells, start=1):
        places = {r.n for r in kept if r.seq == seq}
        if ended:
            unseen &= len(places) == count
        else:  # what is left is 1..k: the newest cut off, as by a crash
            unseen &= places == set(range(1, len(places) + 1))
    assert seen == (not unseen)
    assert not m.results_missing(rows, m.expected(records, which))  # nothing deleted


@given(names=st.lists(st.sampled_from("abcdef"), unique=True), data=st.data())
def test_a_variable_row_deleted_or_moved_is_seen(names, data):
    written = m.Written(4)
    written.cell(_cell(5, "running"), EPOCH)
    for name in names:
        written.variable(VariableRow(f"5:{name}", 5, name, "saved", "v", None, 5, 1, None))
    cell = written.cell(_cell(5, "ok"), EPOCH)
    assert m.parse(cell.manifest)["p"] == 4
    rows = [(5, f"5:{n}") for n in names]
    assert m.variables_missing(rows, [cell]) == []
    if rows:
        drop = data.draw(st.sampled_from(rows))
        assert m.variables_missing([r for r in rows if r != drop], [cell]) == [5]
        moved = [(4, e) if (s, e) == drop else (s, e) for s, e in rows]
        assert m.variables_missing(moved, [cell]) == [5]


def test_a_cell_deleted_leaves_a_gap_but_the_newest_does_not():
    written = m.Written(0)
    cells = [written.cell(_cell(seq, "ok"), EPOCH) for seq in (1, 2, 4)]  # 3: no record
    seqs = {c.seq for c in cells}
    assert m.gaps(cells, seqs) == []  # a seq with no record (journaling off) is no gap
    assert m.gaps([cells[0], cells[2]], {1, 4}) == [2]
    assert m.gaps(cells[:2], {1, 2}) == []  # the newest gone: not seen


@pytest.fixture
def secret(tmp_path, monkeypatch):
    from durable_nb import trust

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.setattr(trust, "_secret", None)


@pytest.mark.parametrize("damage", [True, False])
def test_a_record_lost_to_log_damage_runs_again_a_deleted_one_does_not(tmp_path, secret, damage):
    """A kernel dies mid-cell; a bit flips in its log, or a record is deleted once folded."""
    from durable_nb.errors import UntrustedJournal
    from durable_nb.store import Journal, files

    path = tmp_path / "nb.duckdb"
    j = Journal.open(path)
    j.write(_cell(1, "running"))
    ends = []
    for i in range(3):
        j.write(_step(1, i)._replace(epoch=0))
        ends.append(j._log.size)
    j.abandon()  # killed: the log is not folded
    if damage:
        log = files.log_path(path)
        data = bytearray(log.read_bytes())
        data[(ends[0] + ends[1]) // 2] ^= 0x10  # inside the second result's record
        log.write_bytes(bytes(data))
    told: list[str] = []
    j = Journal.open(path, warn=lambda m, once=None: told.append(m))
    try:
        if not damage:
            j._con.execute("DELETE FROM steps WHERE identity = 'id1-1'")
        assert j.lookup("id1-0", KEY, NAME) == ("json", b"1")
        assert j.lookup("id1-2", KEY, NAME) == ("json", b"1")
        if damage:
            assert j.lookup("id1-1", KEY, NAME) is None  # it runs again, as the line says
            assert any("damaged record" in m for m in told)
        else:
            with pytest.raises(UntrustedJournal, match="deleted or withheld"):
                j.lookup("id1-1", KEY, NAME)
    finally:
        j.close()


@pytest.mark.parametrize("signed", [False, True])
def test_a_planted_damaged_log_does_not_excuse_a_deleted_result(tmp_path, secret, signed):
    """A result of an ended, folded cell execution deleted, then a damaged log planted that
    names that execution (records not signed, or signed ones of it copied from before):
    it is not marked damaged, and the deleted result is still refused, not run again."""
    from durable_nb.errors import UntrustedJournal
    from durable_nb.store import Journal, files
    from durable_nb.store.log import encode
    from durable_nb.store.seal import sign

    path = tmp_path / "nb.duckdb"
    j = Journal.open(path)
    j.write(_cell(1, "running"))
    for i in range(3):
        j.write(_step(1, i)._replace(epoch=0))
    j.write(_cell(1, "ok"))
    j.close()
    j = Journal.open(path)
    [(kept,)] = j._con.execute("SELECT sig FROM steps WHERE identity = 'id1-0'").fetchall()
    journal_id = j.id
    j._con.execute("DELETE FROM steps WHERE identity = 'id1-1'")
    j.close()
    planted = _step(1, 0)._replace(epoch=0, n=1, sig=kept if signed else None)
    if not signed:
        planted = planted._replace(record_id="forged", identity="forged")
    assert signed == bool(planted.sig)
    assert not signed or sign(planted, journal_id) == kept.split(":")[0]
    files.log_path(path).write_bytes(
        encode(("step", tuple(planted)), 0) + encode(("step", tuple(planted)), 2)
    )  # the record numbered 1 is missing: damage
    told: list[str] = []
    j = Journal.open(path, warn=lambda m, once=None: told.append(m))
    try:
        assert any("damaged record" in m for m in told)
        assert j.damaged_seqs() == set()
        assert j.lookup("id1-0", KEY, NAME) == ("json", b"1")
        with pytest.raises(UntrustedJournal, match="deleted or withheld"):
            j.lookup("id1-1", KEY, NAME)
    finally:
        j.close()


_ints = st.integers(-(2**70), 2**70)
_anything = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.text(), _ints)


def _same_as_json(p, e, s, v, j):
    try:
        expected = m._dump_json(p, e, s, v, j)
    except (TypeError, ValueError):  # what json cannot write: neither can dump
        with pytest.raises((TypeError, ValueError)):
            m.dump(p, e, s, v, j)
        return
    assert m.dump(p, e, s, v, j) == expected


@given(
    p=st.one_of(st.none(), _ints),
    e=st.one_of(st.none(), st.integers(0, 2**40)),
    s=st.one_of(st.none(), st.dictionaries(st.text(), _ints, max_size=4)),
    v=st.one_of(
        st.none(),
        st.tuples(st.integers(0, 2**40), st.integers(0, 2**128 - 1)),
        st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(0, 9)),  # (json: two read)
    ),
    j=st.one_of(st.none(), st.text()),
)
def test_a_manifest_is_the_json_it_always_was(p, e, s, v, j):
    # Written out by hand for speed: the very text json.dumps(..., sort_keys=True) gives
    # (what journals hold, and what signatures cover), escapes and all.
    _same_as_json(p, e, s, v, j)


@given(
    p=st.one_of(st.none(), _ints, _anything),
    e=st.one_of(st.integers(0, 9), _anything),
    j=st.one_of(st.none(), st.text(), _anything),
    s=st.one_of(st.none(), st.dictionaries(st.one_of(st.text(), _ints), _anything)),
    v=st.one_of(st.none(), st.tuples(_anything, _anything)),
)
def test_a_manifest_of_other_values_is_json_s(p, e, s, v, j):
    # One value of another type (a bool, a float, a key that is no string) and json writes
    # it all, as it always did.
    _same_as_json(p, e, s, v, j)
