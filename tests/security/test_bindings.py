"""Issue 11, point 4: a signature binds its record (table, key, every column a load uses).

No kernel: Alice's journal is made in this process by a real IPython shell, real steps
and real snapshots (store/, snapshot.py); then one row is changed as an attacker with
write access to the file (or to an export of it) would, and a load must refuse it. A
control proves each attack is live: once Alice runs ``trust`` on the changed journal,
what was refused loads (and the side-effecting cell runs).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from durable_nb import runtime, trust
from durable_nb.errors import ForeignRun, JournalCorrupt, UntrustedJournal
from durable_nb.runtime import Runtime
from durable_nb.snapshot import Snapshots
from durable_nb.store import Journal, copy_journal
from durable_nb.store.seal import BOUND, ID_KEY, UNSIGNED_META

SETUP = """\
import durable_nb as dnb
import json as js
import numpy as np

@dnb.step
def obj(n):
    return {n, n + 1}

@dnb.step
def num(n):
    return {"n": n}

@dnb.step
def big(n):
    return [bytes(2 << 20), n]
"""
WORK = """\
a, b, c = obj(1), obj(5), num(2)
large = big(3)
arr = np.arange(300_000)
stream = [bytes(3 << 20)]
shared = [1, 2]
pair = {"s": shared}
x, y = 7, "why"
"""
SIDE_EFFECT = "import pathlib\npathlib.Path({marker!r}).touch()\nz = 3\n"

#: Columns no signature binds, and why (a new column must be put in BOUND or here).
NOT_BOUND = {
    "cells": {"started", "ended", "error", "steps_run", "steps_replayed"},  # shown only
    # shown only, or identify the call only through ``identity`` (which is bound):
    "steps": {"run_id", "args", "occurrence", "attempts", "attempt_errors", "started", "ended"},
    "variables": set(),
    "payloads": set(),
    "meta": set(),
    "runs": {"pid", "host", "ended", "status", "versions"},  # shown only
    "outputs": set(),
}


@pytest.fixture(scope="module")
def shell():
    return InteractiveShell.instance()


@pytest.fixture(scope="module")
def alice(tmp_path_factory, shell):
    """Alice's journal: steps (inline and blob pickles, JSON), saved variables (inline,
    chunked stream, numpy chunks, a shared group), modules, recompute rows, and a cell
    with a side effect; her secret stays set for the module."""
    home = tmp_path_factory.mktemp("alice")
    marker = home / "side-effect"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_DATA_DIR", str(home / "jupyter-data"))
        mp.setenv("DURABLE_NB_DIR", str(home / "journal"))
        mp.setattr(trust, "_secret", None)
        # The shell is IPython's singleton: names other test modules left in it would be
        # saved too (a leftover ``y`` gave two rows for it), so the notebook starts empty.
        ns, hidden = shell.user_ns, shell.user_ns_hidden
        for name in [n for n in ns if n not in hidden and not n.startswith("__")]:
            del ns[name]
        rt = Runtime(str(home / "nb.ipynb"))
        runtime.install(rt)
        snaps = Snapshots(shell, rt)
        rt.capturing = True  # what the kernel publishes is given to rt.capture
        try:
            rt.fresh()  # an epoch row (1) and an ignore row: meta a load uses
            snaps.ignore(["left_out"])
            for source in (SETUP, WORK, SIDE_EFFECT.format(marker=str(marker))):
                rt.begin_cell(None, source)
                rt.capture("stream", {"name": "stdout", "text": f"<b>{len(source)}</b>\n"})
                result = shell.run_cell(source, store_history=False, silent=True)
                snaps.after_cell(source, result.success)
                rt.end_cell("ok" if result.success else "error", None)
                assert result.success, result.error_in_exec or result.error_before_exec
        finally:
            runtime.install(None)
            rt.close()
        marker.unlink()
        yield home / "journal" / "nb.duckdb", marker


@pytest.fixture
def victim(alice, tmp_path, shell):
    """A copy of Alice's journal to change (blobs linked), opened by ``restore``/``journal``."""
    genuine, marker = alice
    folder = tmp_path / "copy"
    folder.mkdir()
    path = copy_journal(genuine, folder, blobs=True)
    return Victim(path, marker, shell)


class Victim:
    def __init__(self, path: Path, marker: Path, shell) -> None:
        self.path, self.marker, self.shell = path, marker, shell

    def sql(self, sql: str, params: list | None = None) -> list[tuple]:
        con = duckdb.connect(str(self.path))
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    def journal(self) -> Journal:
        return Journal.open(self.path, notebook="nb.ipynb")

    def foreign(self) -> dict[str, int]:
        j = self.journal()
        try:
            return j.foreign_records()
        finally:
            j.close()

    def restore(self, monkeypatch) -> tuple[object, dict]:
        """A kernel of Alice's restores the namespace: its report, or the error raised."""
        monkeypatch.setenv("DURABLE_NB_DIR", str(self.path.parent))
        rt = Runtime(str(self.path.parent / "nb.ipynb"))
        runtime.install(rt)
        ns = self.shell.user_ns
        # The notebook's variables go; the module's own names (__name__, __builtins__)
        # stay: the shell is IPython's singleton, which other test modules use after this.
        hidden = self.shell.user_ns_hidden
        for name in [n for n in ns if n not in hidden and not n.startswith("__")]:
            del ns[name]
        try:
            return Snapshots(self.shell, rt).restore(), ns
        except UntrustedJournal as exc:
            return exc, ns
        finally:
            runtime.install(None)
            rt.close()

    def trust(self) -> int:
        j = self.journal()
        try:
            return j.trust()
        finally:
            j.close()


def _refused(got: object, path: Path) -> None:
    """One clear refusal: it names the journal and says how to trust it."""
    assert isinstance(got, UntrustedJournal), got
    assert str(path) in str(got) and re.search(r"durable-nb trust \S*nb\.ipynb", str(got))
    assert "\n" not in str(got)


# -- every bound column is bound; every column is decided -----------------------------------


def test_every_column_is_either_bound_or_named_as_not_bound(alice):
    genuine, _ = alice
    con = duckdb.connect(str(genuine), read_only=True)
    try:
        found = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
        ).fetchall()
    finally:
        con.close()
    for table in BOUND:
        columns = {c for t, c in found if t == table} - {"sig"}
        assert columns == set(BOUND[table]) | NOT_BOUND[table], table


def test_alices_own_journal_is_all_signed_and_restores(victim, monkeypatch):
    assert victim.foreign() == dict.fromkeys(BOUND, 0)
    report, ns = victim.restore(monkeypatch)
    assert not isinstance(report, Exception), report
    assert ns["a"] == {1, 2} and ns["c"] == {"n": 2} and ns["arr"].sum() == 299_999 * 150_000
    assert ns["pair"]["s"] is ns["shared"] and ns["js"] is json and ns["z"] == 3
    assert len(ns["stream"][0]) == 3 << 20 and len(ns["large"][0]) == 2 << 20
    assert not victim.marker.exists()  # its cell's variable was saved, not recomputed


_COLUMNS = [(t, c) for t, cols in BOUND.items() for c in cols]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(column=st.sampled_from(_COLUMNS), pick=st.integers(0, 1 << 16), value=st.data())
def test_any_bound_column_changed_makes_that_record_foreign(victim, column, pick, value):
    """Which column, which row, and a value from another row (a swap) or a crafted one."""
    table, name = column
    folder = victim.path.parent / f"ex-{pick}-{table}-{name}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    shutil.copyfile(victim.path, folder / victim.path.name)
    one = Victim(folder / victim.path.name, victim.marker, victim.shell)
    # The id row is what every signature names: changing it makes every record foreign
    # (test_journal_id.py, test_binding.py), not the one changed.
    where = f"WHERE key NOT IN {(*UNSIGNED_META, ID_KEY)}" if table == "meta" else ""
    rows = one.sql(f'SELECT rowid, "{name}" FROM {table} {where} ORDER BY rowid')
    rowid, old = rows[pick % len(rows)]
    others = [v for _, v in rows if v != old]
    [(kind,)] = one.sql(
        "SELECT data_type FROM information_schema.columns WHERE table_name = ? "
        "AND column_name = ?", [table, name],
    )  # fmt: skip
    crafted = {
        "BLOB": b"\x80\x05K\x01.",
        "VARCHAR": "0" * 32,
        "TIMESTAMP WITH TIME ZONE": datetime(2020, 1, 1, tzinfo=UTC),
    }.get(kind, 2)
    new = value.draw(st.sampled_from([*others[:8], crafted, None]), label="value")
    if new == old:
        return
    try:
        one.sql(f'UPDATE {table} SET "{name}" = ? WHERE rowid = ?', [new, rowid])
    except duckdb.ConstraintException:
        return  # a key made NULL or equal to another row's: DuckDB refuses it
    try:
        assert one.foreign()[table] == 1, (table, name, old, new)
    except JournalCorrupt:  # an epoch that is not a number: the journal is refused whole
        assert (table, name) == ("meta", "value"), (table, name, old, new)


# -- the attacks of the issue, each with its control -------------------------------------------


def _step(victim: Victim, n: int, kind: str) -> tuple[str, str]:
    """(record_id, identity) of the step whose args are ``(n,)`` and whose result is ``kind``."""
    [(record, identity)] = victim.sql(
        "SELECT record_id, identity FROM steps WHERE args LIKE ? AND kind = ?", [f"({n}%", kind]
    )
    return record, identity


def test_a_signed_result_copied_onto_another_step_is_refused(victim):
    src, _ = _step(victim, 1, "pickle")
    dst, identity = _step(victim, 5, "pickle")
    victim.sql(
        "UPDATE steps SET result = s.result, blob = s.blob, kind = s.kind, sig = s.sig "
        "FROM (SELECT * FROM steps WHERE record_id = ?) s WHERE steps.record_id = ?",
        [src, dst],
    )
    j = victim.journal()
    try:
        with pytest.raises(UntrustedJournal) as refused:
            j.lookup(identity)
        _refused(refused.value, victim.path)
    finally:
        j.close()
    assert victim.trust() > 0  # control: trusted, the copied result is what replays
    j = victim.journal()
    try:
        assert j.lookup(identity)[0] == "pickle"
    finally:
        j.close()


def test_a_json_result_moved_to_another_step_replays_as_foreign_with_one_line(victim):
    _, identity = _step(victim, 2, "json")
    victim.sql("UPDATE steps SET result = ? WHERE identity = ?", [b'{"n":666}', identity])
    told: dict[str | None, str] = {}
    j = Journal.open(victim.path, warn=lambda m, once: told.update({once: m}), notebook="nb.ipynb")
    try:
        assert j.lookup(identity) == ("json", b'{"n":666}')  # JSON needs no trust (data)
        assert j.lookup(identity)
    finally:
        j.close()
    [line] = told.values()  # once per journal
    assert "not signed by you" in line and "durable-nb trust nb.ipynb" in line


def test_a_variable_re_pointed_to_another_signed_payload_is_refused(victim, monkeypatch):
    [(other,)] = victim.sql("SELECT value_id FROM variables WHERE name = 'y'")
    victim.sql("UPDATE variables SET value_id = ? WHERE name = 'x'", [other])
    got, ns = victim.restore(monkeypatch)
    _refused(got, victim.path)
    assert "x" not in ns
    victim.trust()  # control: trusted, x is given y's value
    got, ns = victim.restore(monkeypatch)
    assert ns["x"] == "why", got


def test_an_unsigned_recompute_row_never_re_runs_a_cell(victim, monkeypatch):
    [(seq,)] = victim.sql("SELECT seq FROM variables WHERE name = 'z'")
    # A name the cell names ('touch'): only such a name has a cell re-run (recompute.py).
    victim.sql(
        "INSERT INTO variables VALUES (?, ?, 'touch', 'recompute', NULL, NULL, ?, 0, 'x', NULL)",
        [f"{seq}:touch", seq, seq],
    )
    got, _ = victim.restore(monkeypatch)
    _refused(got, victim.path)
    assert not victim.marker.exists()
    victim.trust()  # control: trusted, the row re-runs the side-effecting cell
    got, _ = victim.restore(monkeypatch)
    assert victim.marker.exists(), got
    victim.marker.unlink()


def test_a_chunk_list_swapped_is_refused(victim, monkeypatch):
    [(buffers,)] = victim.sql(
        "SELECT p.buffers FROM payloads p JOIN variables v USING (value_id) WHERE v.name = 'arr'"
    )
    [[size, names]] = json.loads(buffers)
    swapped = json.dumps([[size, names[::-1]]])
    victim.sql("UPDATE payloads SET buffers = ? WHERE buffers = ?", [swapped, buffers])
    assert victim.foreign()["payloads"] == 1
    got, ns = victim.restore(monkeypatch)
    _refused(got, victim.path)
    assert "arr" not in ns


def test_a_chunked_stream_is_bound_to_its_row_and_its_content(victim, monkeypatch):
    """A payload whose pickle stream lives in blob files: the row part and the content part."""
    [(value_id, sig)] = victim.sql(
        "SELECT value_id, p.sig FROM payloads p JOIN variables v USING (value_id) "
        "WHERE v.name = 'stream' AND p.stream IS NULL"
    )
    row, _ = sig.split(":")
    victim.sql("UPDATE payloads SET sig = ? WHERE value_id = ?", [f"{row}:{'0' * 64}", value_id])
    assert victim.foreign()["payloads"] == 0  # a quick look reads no blob files
    got, ns = victim.restore(monkeypatch)
    assert not isinstance(got, Exception) and "stream" not in ns  # refused as it loaded
    assert "not signed by you" in got.skipped["stream"]


def test_an_old_journal_opens_counts_as_foreign_until_trusted(victim, monkeypatch):
    """Rows signed before signatures bound the record (content only) are not trusted as is."""
    victim.sql("UPDATE cells SET sig = ?", [trust.sign("source", "x")])
    victim.sql("UPDATE steps SET sig = NULL WHERE kind = 'json'")
    plan = json.dumps({"started": 0, "done": [], "parameters": []})
    victim.sql("INSERT OR REPLACE INTO meta VALUES ('headless', ?, NULL)", [plan])  # before seals
    foreign = victim.foreign()
    assert foreign["cells"] == 3 and foreign["steps"] == 1, foreign
    got, _ = victim.restore(monkeypatch)
    _refused(got, victim.path)
    assert victim.trust() > 0
    assert victim.foreign() == dict.fromkeys(BOUND, 0)
    j = victim.journal()
    try:
        assert trust.unseal(j.meta("headless"), trust.plan_domain(j.id)) == plan
    finally:
        j.close()
    got, ns = victim.restore(monkeypatch)
    assert ns["x"] == 7, got


def test_a_crashed_cell_alice_signed_is_re_signed_and_a_foreign_one_is_not(victim):
    j = victim.journal()
    [last, before] = j.cells()[:-3:-1]
    for cell in (last, before):  # the process dies mid-cell (times travel as seconds)
        j.write(cell._replace(status="running", started=time.time(), ended=None))
    j.close()
    victim.sql("UPDATE cells SET sig = NULL WHERE seq = ?", [before.seq])  # not Alice's
    j = victim.journal()
    try:
        cells = {c.seq: c for c in j.cells()}
        assert cells[last.seq].status == cells[before.seq].status == "crashed"
        assert j.signed(cells[last.seq]) and not j.signed(cells[before.seq])
    finally:
        j.close()


def test_show_counts_every_record_a_load_uses(alice, victim):
    """``durable-nb show``/``ls`` say foreign for a re-pointed variable (not only steps)."""
    from attack import cli

    [(other,)] = victim.sql("SELECT value_id FROM variables WHERE name = 'y'")
    victim.sql("UPDATE variables SET value_id = ? WHERE name = 'x'", [other])
    home = alice[0].parent.parent
    got = cli("show", "--json", victim.path, home=home)
    data = json.loads(got.stdout)
    assert data["trusted"] is False and data["untrusted_records"] == 1, got.stdout[:500]
    assert data["untrusted_by_table"] == {**dict.fromkeys(BOUND, 0), "variables": 1}
    assert "foreign" in cli("ls", victim.path.parent, home=home).stdout


# -- meta, runs and outputs are signed too ------------------------------------------------------


def _opened(victim: Victim) -> tuple[Journal, dict]:
    """Alice's journal opened as her kernel opens it, with what it told (one line a key)."""
    told: dict[str | None, str] = {}
    j = Journal.open(victim.path, warn=lambda m, once: told.update({once: m}), notebook="nb.ipynb")
    return j, told


def _one_line(told: dict, path: Path) -> str:
    [line] = told.values()
    assert str(path) in line and "durable-nb trust nb.ipynb" in line and "\n" not in line
    return line


def _lookup_refused(j: Journal, where: tuple[str, str, str], path: Path) -> str:
    """The lookup of step ``where`` (identity, cell_key, name) refuses clearly: why."""
    with pytest.raises(UntrustedJournal) as refused:
        j.lookup(*where)
    _refused(refused.value, path)
    return str(refused.value)


def _runs_again_once_trusted(victim: Victim, where: tuple[str, str, str]) -> None:
    """Control: accepted as it is (``durable-nb trust``), the step runs again."""
    victim.trust()
    j, _ = _opened(victim)
    try:
        assert j.lookup(*where) is None
    finally:
        j.close()


def _where(victim: Victim, n: int, kind: str) -> tuple[str, str, str]:
    """(identity, cell_key, name) of the step whose args are ``(n,)`` and result ``kind``."""
    [found] = victim.sql(
        "SELECT identity, cell_key, name FROM steps WHERE args LIKE ? AND kind = ?",
        [f"({n}%", kind],
    )
    return found


@pytest.mark.parametrize("forge", ["UPDATE meta SET value = '0' WHERE key = 'epoch'",
                                   "DELETE FROM meta WHERE key = 'epoch'"])  # fmt: skip
def test_an_epoch_forged_or_deleted_stops_replay_with_one_line(victim, forge):
    """Epoch 0 would replay results Alice made stale with %durable fresh (or, higher,
    re-run every side effect): neither is used, and no step runs in their place."""
    identity, cell_key, name = _where(victim, 2, "json")
    j, told = _opened(victim)
    try:
        assert j.lookup(identity, cell_key, name) == ("json", b'{"n":2}') and not told  # live
    finally:
        j.close()
    victim.sql(forge)
    j, told = _opened(victim)
    try:
        assert j.epoch == 0
        _lookup_refused(j, (identity, cell_key, name), victim.path)
        assert "epoch" in _one_line(told, victim.path)
    finally:
        j.close()
    victim.trust()  # control: accepted as it is, no result older than a record replays
    j, told = _opened(victim)
    try:
        assert j.epoch == 1 and j.lookup(identity, cell_key, name) == ("json", b'{"n":2}')
    finally:
        j.close()
    assert not told


def test_an_ignore_row_not_signed_is_ignored_with_one_line(victim, monkeypatch, capsys):
    victim.sql("UPDATE meta SET value = '[\"x\"]' WHERE key = 'ignore'")
    capsys.readouterr()
    got, ns = victim.restore(monkeypatch)
    assert ns["x"] == 7, got  # not left out
    [line] = [x for x in capsys.readouterr().err.splitlines() if "'ignore'" in x]
    assert line.startswith("durable_nb: ") and "durable-nb trust" in line
    victim.trust()  # control: trusted, the row is used
    got, ns = victim.restore(monkeypatch)
    assert "x" not in ns and ns["y"] == "why", got


def test_a_run_re_pointed_to_another_notebook_is_refused(victim, monkeypatch):
    """Which notebook a run was decides whose work a restore takes."""
    victim.sql("UPDATE runs SET notebook = '/elsewhere/other.ipynb'")
    got, ns = victim.restore(monkeypatch)
    _refused(got, victim.path)
    assert "x" not in ns
    victim.trust()  # control: trusted, the forged notebook steers: that work is not ours
    with pytest.raises(ForeignRun):
        victim.restore(monkeypatch)


def test_outputs_not_signed_are_not_shown_again(victim, capsys):
    from durable_nb import outputs

    [(seq,)] = victim.sql("SELECT max(seq) FROM outputs")
    forged = json.dumps([{"output_type": "display_data", "metadata": {},
                          "data": {"text/html": "<script>steal()</script>"}}])  # fmt: skip
    victim.sql("UPDATE outputs SET outputs = ? WHERE seq = ?", [forged, seq])
    j = victim.journal()
    try:
        assert j.foreign_records()["outputs"] == 1
        capsys.readouterr()
        assert outputs.show_journaled(j, seq, "nb.ipynb")
        out = capsys.readouterr()
        assert "steal" not in out.out + out.err
        assert re.fullmatch(r"durable_nb: the outputs .* not signed by you: not shown; .*"
                            r"durable-nb trust nb\.ipynb.*\n", out.out)  # fmt: skip
    finally:
        j.close()


# -- a deleted record is seen where it matters ---------------------------------------------------


@pytest.mark.parametrize("n, kind", [(2, "json"), (5, "pickle")])
def test_a_deleted_step_result_is_not_run_again(victim, n, kind):
    """The journaled call would run again (a side effect twice): refused, one line."""
    identity, cell_key, name = _where(victim, n, kind)
    other, _, _ = _where(victim, 1, "pickle")
    victim.sql("DELETE FROM steps WHERE identity = ?", [identity])
    j, _ = _opened(victim)
    try:
        # a result still there replays
        assert j.lookup(other, cell_key, "obj")[0] == "pickle"
        assert "deleted or withheld" in _lookup_refused(j, (identity, cell_key, name), victim.path)
    finally:
        j.close()
    _runs_again_once_trusted(victim, (identity, cell_key, name))


def test_a_deleted_variable_row_is_refused_at_restore(victim, monkeypatch):
    victim.sql("DELETE FROM variables WHERE name = 'x'")
    got, ns = victim.restore(monkeypatch)
    _refused(got, victim.path)
    assert "deleted or withheld" in str(got) and "x" not in ns
    victim.trust()  # control: accepted as it is, x is not restored, the rest is
    got, ns = victim.restore(monkeypatch)
    assert "x" not in ns and ns["y"] == "why", got


@pytest.mark.parametrize("table", ["cells", "runs"])
def test_a_deleted_cell_or_run_is_refused_at_restore_and_run(victim, monkeypatch, table):
    """A cell record gone changes what ``run`` resumes; a run gone, whose work a cell is."""
    if table == "cells":
        victim.sql("DELETE FROM cells WHERE seq = (SELECT min(seq) FROM cells)")
    else:
        victim.sql("DELETE FROM runs")
    got, _ = victim.restore(monkeypatch)
    _refused(got, victim.path)
    j = victim.journal()
    try:
        assert "deleted or withheld" in str(j.runs_problem())  # durable-nb run: all cells run
    finally:
        j.close()
    victim.trust()
    j = victim.journal()
    try:
        assert j.runs_problem() is None  # a run gone is one of an unknown notebook
    finally:
        j.close()


def test_a_deleted_cell_execution_with_its_steps_is_not_run_again(alice, victim):
    """The cell record and every step it recorded deleted: its own manifest is gone, but
    the next cell execution names it as the one before it. The step would run again (a
    side effect twice): refused, one line; ``show`` does not say it is yours."""
    from attack import cli

    identity, cell_key, name = _where(victim, 2, "json")
    [(seq,)] = victim.sql("SELECT seq FROM steps WHERE identity = ?", [identity])
    j, told = _opened(victim)
    try:  # control: before the deletion, the result replays
        assert j.lookup(identity, cell_key, name) == ("json", b'{"n":2}') and not told
    finally:
        j.close()
    victim.sql("UPDATE cells SET status = 'x' WHERE seq = ?", [seq])
    j, told = _opened(victim)
    try:  # a cell record of yours changed (not signed now) counts as gone (review B8)
        why = _lookup_refused(j, ("no-such-call", cell_key, name), victim.path)
        assert "deleted or withheld" in why
    finally:
        j.close()
    victim.sql("DELETE FROM steps WHERE seq = ?", [seq])
    victim.sql("DELETE FROM cells WHERE seq = ?", [seq])
    j, told = _opened(victim)
    try:
        for _ in range(2):  # checked once, refused each time
            why = _lookup_refused(j, (identity, cell_key, name), victim.path)
            assert "deleted or withheld" in why
    finally:
        j.close()
    home = alice[0].parent.parent
    data = json.loads(cli("show", "--json", victim.path, home=home).stdout)
    assert data["trusted"] is False and "deleted or withheld" in data["withheld"]
    assert "withheld" in cli("ls", victim.path.parent, home=home).stdout
    _runs_again_once_trusted(victim, (identity, cell_key, name))


def test_an_old_signed_epoch_record_in_the_log_is_a_set_back_when_read_only(victim):
    """The log a read-only open applies holds an epoch record Alice signed once (epoch 0,
    before her %durable fresh): results made stale would replay. Refused, one line."""
    from durable_nb.store import files
    from durable_nb.store.log import encode
    from durable_nb.store.schema import MetaRow
    from durable_nb.store.seal import sign

    identity, cell_key, name = _where(victim, 2, "json")
    log = files.log_path(victim.path)
    [(journal_id,)] = victim.sql("SELECT value FROM meta WHERE key = 'journal'")

    def opened(epoch: str) -> tuple[Journal, dict]:
        row = MetaRow("epoch", epoch)
        log.write_bytes(encode(("meta", (*row[:-1], sign(row, journal_id))), 0))
        told: dict = {}
        j = Journal.open(victim.path, warn=lambda m, once: told.update({once: m}),
                         notebook="nb.ipynb", read_only=True)  # fmt: skip
        return j, told

    j, told = opened("1")  # control: the epoch it has, signed
    try:
        assert j.lookup(identity, cell_key, name) == ("json", b'{"n":2}') and not told
    finally:
        j.close()
    j, told = opened("0")
    try:
        assert j.epoch == 0
        _lookup_refused(j, (identity, cell_key, name), victim.path)
        assert "set back" in _one_line(told, victim.path)
    finally:
        j.close()


def test_show_names_the_journal_to_trust_not_a_forged_notebook(alice, victim):
    """The notebook a run names is not signed: the advice names the journal itself."""
    from attack import cli

    victim.sql("UPDATE runs SET notebook = '/elsewhere/forged.ipynb'")
    out = cli("show", victim.path, home=alice[0].parent.parent).stdout
    assert f"run durable-nb trust {victim.path}" in out and "trust /elsewhere" not in out, out
