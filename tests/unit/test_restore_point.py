"""A cell whose snapshot did not complete (interrupted, a failure inside durable_nb):
its end record says so, no restore stops there, and what it deleted stays deleted
once the next cell saves the namespace whole. No kernel: the store's real journal."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from durable_nb import payloads
from durable_nb.cells import IPYTHON_NAMES
from durable_nb.errors import NamespaceNotSaved
from durable_nb.runtime import Runtime
from durable_nb.snapshot import Snapshots
from durable_nb.store import files
from durable_nb.store import journal as journal_module
from durable_nb.store import log as logmod

pytestmark = pytest.mark.unit

STOP = '''
class Stop:
    """Pickling it is interrupted, as a person's Ctrl-C during a long snapshot is."""
    def __reduce__(self):
        raise KeyboardInterrupt
'''


def _cell(rt: Runtime, snaps: Snapshots, shell, code: str) -> bool:
    """Run ``code`` as the extension does; whether its snapshot completed."""
    rt.begin_cell(None, code)
    assert shell.run_cell(code, store_history=False, silent=True).success
    try:
        snaps.after_cell(code, True)
        saved = True
    except KeyboardInterrupt:
        saved = False
    rt.end_cell("ok", None)
    return saved


@pytest.fixture
def shell():
    """The process's shell, with the names other tests left in it put aside meanwhile."""
    shell = InteractiveShell.instance()
    hidden = shell.user_ns_hidden
    mine = {n for n in shell.user_ns if n not in hidden and not IPYTHON_NAMES.match(n)}
    aside = {n: shell.user_ns[n] for n in mine}  # (``_mutate`` of test_snapshot_props too)
    for name in aside:
        del shell.user_ns[name]
    yield shell
    for name in [n for n in shell.user_ns if n not in hidden and not IPYTHON_NAMES.match(n)]:
        del shell.user_ns[name]
    shell.user_ns.update(aside)


def test_an_interrupted_snapshot_is_no_restore_point_and_deletions_are_kept(shell, tmp_path):
    ns_before = set(shell.user_ns)
    source = str(tmp_path / "nb.ipynb")
    rt = Runtime(source)
    snaps = Snapshots(shell, rt)
    try:
        assert _cell(rt, snaps, shell, STOP + "a = 1\nb = [1]")
        first = rt.cell.seq
        assert not _cell(rt, snaps, shell, "del a\nb.append(2)\ns = Stop()")
        second = rt.cell.seq
        journal = rt.journal
        assert journal.last_ok_seq() == first  # the default restore point
        with pytest.raises(NamespaceNotSaved, match=f"cell execution {second} ran"):
            snaps.restore(at=second)
        assert _cell(rt, snaps, shell, "b = [1, 2]\ndel s\nc = 3")  # saves it whole
        third = rt.cell.seq
        assert journal.last_ok_seq() == third
        with pytest.raises(NamespaceNotSaved):  # still not whole as of the second
            snaps.restore(at=second)
    finally:
        rt.close()
        for name in set(shell.user_ns) - ns_before:
            del shell.user_ns[name]
    rt = Runtime(source)
    try:
        report = Snapshots(shell, rt).restore()
        got = {n: shell.user_ns[n] for n in report.restored if n != "Stop"}
        assert report.seq == third and got == {"b": [1, 2], "c": 3}, report
        assert "a" not in shell.user_ns  # deleted in the unsaved cell, recorded after it
    finally:
        rt.close()
        for name in set(shell.user_ns) - ns_before:
            del shell.user_ns[name]


def _kernel(shell, source: str, before: set[str]) -> tuple[Runtime, Snapshots]:
    """A new kernel of the notebook: its namespace empty, as after a restart."""
    for name in set(shell.user_ns) - before:
        del shell.user_ns[name]
    rt = Runtime(source)
    return rt, Snapshots(shell, rt)


def _crash(rt: Runtime, snaps: Snapshots, shell, code: str) -> None:
    """``code`` runs and is saved, but the kernel dies before the cell's end record."""
    rt.begin_cell(None, code)
    assert shell.run_cell(code, store_history=False, silent=True).success
    snaps.after_cell(code, True)
    rt.close()  # the cell is left "interrupted", as the next open finds a killed one


def test_what_a_restore_set_is_what_a_later_restore_gives(shell, tmp_path):
    """A restore is recorded; a new kernel's first cells leave the earlier kernels'
    names to ``%durable restore``; a killed cell's rows are no restore's."""
    source, before = str(tmp_path / "nb.ipynb"), set(shell.user_ns)
    rt, snaps = _kernel(shell, source, before)
    assert _cell(rt, snaps, shell, "x = 1\nold = [1]")
    first = rt.cell.seq
    assert _cell(rt, snaps, shell, "x = 2\nlate = 1")
    _crash(rt, snaps, shell, "x = 3")  # rows written, no end record
    killed = rt.cell.seq
    rt, snaps = _kernel(shell, source, before)
    try:
        assert _cell(rt, snaps, shell, "pass")  # a new kernel's first cell (%durable log)
        assert sorted(snaps.restore().restored) == ["late", "old", "x"]
        assert shell.user_ns["x"] == 2
        assert snaps.restore(at=killed).seq == first + 1  # as of the cell before it
        assert shell.user_ns["x"] == 2
        assert snaps.restore(at=first).seq == first and shell.user_ns["x"] == 1
        assert _cell(rt, snaps, shell, "del late\ny = 1")  # records what the restore set
    finally:
        rt.close()
    rt, snaps = _kernel(shell, source, before)
    try:
        report = snaps.restore()
        got = {n: shell.user_ns[n] for n in report.restored}
        assert got == {"x": 1, "old": [1], "y": 1}, report
    finally:
        rt.close()


def test_a_cell_a_restore_re_runs_cannot_restore_again(shell, tmp_path):
    """Recomputing a value re-runs its cell; a restore in it stops there, in one line."""
    import builtins

    source, before = str(tmp_path / "nb.ipynb"), set(shell.user_ns)
    code = ("g = (i for i in range(3))\nimport builtins\n"
            "if getattr(builtins, '_dnb_again', None): builtins._dnb_again.restore()")  # fmt: skip
    rt, snaps = _kernel(shell, source, before)
    try:
        assert _cell(rt, snaps, shell, code)
        builtins._dnb_again = snaps
        report = snaps.restore()
        assert "a restore cannot run while a restore re-runs" in report.skipped["g"], report
    finally:
        del builtins._dnb_again
        rt.close()


PROBE = '''
import gc
class Probe:
    """Unpickled as ``gc.isenabled()``: whether the collector ran while loads ran."""
    def __reduce__(self):
        return (gc.isenabled, ())
'''


@pytest.mark.parametrize("enabled", [True, False], ids=["gc-on", "gc-off"])
def test_loads_run_with_the_collector_paused_and_leave_it_as_it_was(
    shell, tmp_path, monkeypatch, enabled
):
    """A restore's unpickling makes no garbage: no collection runs meanwhile, and the
    person's collector is left as it was, after an interrupted load too."""
    import gc

    source, before = str(tmp_path / "nb.ipynb"), set(shell.user_ns)
    rt, snaps = _kernel(shell, source, before)
    assert _cell(rt, snaps, shell, PROBE + "p = Probe()")
    rt.close()
    rt, snaps = _kernel(shell, source, before)
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        snaps.restore()
        assert shell.user_ns["p"] is False and gc.isenabled() is enabled

        def interrupted(*args):
            raise KeyboardInterrupt  # Ctrl-C while a payload loads

        monkeypatch.setattr(payloads.codec, "decode", interrupted)
        with pytest.raises(KeyboardInterrupt):
            snaps.restore()
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
        rt.close()


def test_a_cells_end_record_is_never_read_without_its_variables(shell, tmp_path):
    """The variables a cell saved and its end record are one log record (no fdatasync
    between them): a torn append or a flipped byte anywhere in it costs the cell's end
    too, so a restore gives the cell before, said as such, never the cell with values
    from before it. The old layout (variables, fdatasync, end record) failed this on a
    flipped byte in the variables: a restore "as of" the cell gave ``a == [1]``."""
    source, before = str(tmp_path / "nb.ipynb"), set(shell.user_ns)
    rt, snaps = _kernel(shell, source, before)
    assert _cell(rt, snaps, shell, "a = [1]")
    first = rt.cell.seq
    folder, log = rt.journal.path.parent, files.log_path(rt.journal.path)
    start = log.stat().st_size  # cell 2's records: its start, variables and end
    assert _cell(rt, snaps, shell, "a.append(2)\nb = 'x' * 100")
    second = rt.cell.seq
    rt.journal.abandon()  # the kernel is killed: nothing more is written
    rt.journal = None
    pristine = tmp_path / "pristine"
    shutil.copytree(folder, pristine)
    data = log.read_bytes()
    rng = random.Random(13)
    cases = [("cut", start + 1), ("cut", len(data) - 1)]
    cases += [(rng.choice(["cut", "flip"]), rng.randrange(start, len(data))) for _ in range(10)]
    outcomes = set()
    for how, at in cases:
        shutil.rmtree(folder)
        shutil.copytree(pristine, folder)
        damaged = bytearray(data[:at] if how == "cut" else data)
        if how == "flip":
            damaged[at] ^= 0x5A
        log.write_bytes(bytes(damaged))
        rt, snaps = _kernel(shell, source, before)
        try:
            report = snaps.restore()
            got = (report.seq, shell.user_ns.get("a"), shell.user_ns.get("b"))
        finally:
            rt.close()
        if report.seq == second:  # the damage missed the cell's variables and end
            assert got == (second, [1, 2], "x" * 100), (how, at)
        else:
            assert got == (first, [1], None), (how, at)
        outcomes.add(report.seq)
    assert outcomes == {first, second}  # both outcomes were met


def _killed_copy(rt: Runtime) -> tuple[Path, Path, bytes]:
    """The kernel is killed (nothing more written): its journal folder, log, log bytes."""
    folder, log = rt.journal.path.parent, files.log_path(rt.journal.path)
    rt.journal.abandon()
    rt.journal = None
    return folder, log, log.read_bytes()


def test_a_cell_whose_records_were_lost_ends_the_restore_points_of_its_run(shell, tmp_path):
    """Review F2: cell 2 wrote its start record (it ran a step, or a second), then its
    variables and end were lost to a flipped byte; cell 3 ended. A restore "as of cell 3"
    would give x from cell 1 under cell 3's name: it gives cell 1, named."""
    source, before = str(tmp_path / "nb.ipynb"), set(shell.user_ns)
    rt, snaps = _kernel(shell, source, before)
    assert _cell(rt, snaps, shell, "x = 1")
    first = rt.cell.seq
    code = "x = 2"
    rt.begin_cell(None, code)
    assert shell.run_cell(code, store_history=False, silent=True).success
    rt.write_start()  # as a step or the flusher's tick writes it
    log = files.log_path(rt.journal.path)
    start = log.stat().st_size
    snaps.after_cell(code, True)
    rt.end_cell("ok", None)
    end = log.stat().st_size
    assert _cell(rt, snaps, shell, "y = 3")
    third = rt.cell.seq
    _, log, data = _killed_copy(rt)
    damaged = bytearray(data)
    damaged[(start + end) // 2] ^= 0x10  # in cell 2's variables and end record
    log.write_bytes(bytes(damaged))
    rt, snaps = _kernel(shell, source, before)
    try:
        report = snaps.restore()
        assert (report.seq, shell.user_ns.get("x"), shell.user_ns.get("y")) == (first, 1, None)
        # Asked as of a later cell (Resume, durable-nb run): refused, naming what it can give.
        with pytest.raises(NamespaceNotSaved, match=f"restore --at {first}"):
            snaps.restore(at=third)
    finally:
        rt.close()


def test_rows_a_killed_big_cell_wrote_ahead_are_no_later_cells(shell, tmp_path, monkeypatch):
    """Review F1: a cell saving more than GROUP_BYTES writes its rows ahead of its end
    record; killed between, its rows have a number no cell record has. The next kernel's
    cells are numbered after it: the rows are no one's, and restores go on."""
    monkeypatch.setattr(journal_module, "GROUP_BYTES", 100)
    source, before = str(tmp_path / "nb.ipynb"), set(shell.user_ns)
    rt, snaps = _kernel(shell, source, before)
    assert _cell(rt, snaps, shell, "a = 1")
    assert _cell(rt, snaps, shell, "b = 'x' * 300\nc = [2]")
    big = rt.cell.seq
    _, log, data = _killed_copy(rt)
    log.write_bytes(data[: data.rfind(logmod.MAGIC)])  # killed before its end record
    rt, snaps = _kernel(shell, source, before)
    try:
        report = snaps.restore()
        assert report.seq < big and shell.user_ns.get("a") == 1 and "b" not in shell.user_ns
        assert _cell(rt, snaps, shell, "d = 4")
        assert rt.cell.seq > big
    finally:
        rt.close()
    rt, snaps = _kernel(shell, source, before)
    try:
        report = snaps.restore()
        got = {n: shell.user_ns.get(n) for n in ("a", "b", "c", "d")}
        assert got == {"a": 1, "b": None, "c": None, "d": 4}, report
    finally:
        rt.close()


def test_a_cell_whose_records_fail_to_be_written_is_said_and_the_next_saves_all(
    shell, tmp_path, monkeypatch, capsys
):
    """Review F7: the rows are written as the reply goes out; a failure there (not the
    disk's: a bug, memory) was swallowed by the send wrapper and the cell vanished, its
    variables with it, and a later restore gave x from before under a later cell's name."""
    source, before = str(tmp_path / "nb.ipynb"), set(shell.user_ns)
    rt, snaps = _kernel(shell, source, before)
    assert _cell(rt, snaps, shell, "x = 1")
    sign = journal_module.Journal._sign

    def failing(self, row, content=None):
        if getattr(row, "name", None) == "x":
            raise ValueError("injected")
        return sign(self, row, content)

    monkeypatch.setattr(journal_module.Journal, "_sign", failing)
    assert _cell(rt, snaps, shell, "x = 2")
    second = rt.cell.seq
    monkeypatch.setattr(journal_module.Journal, "_sign", sign)
    assert f"could not write cell {second}'s records" in capsys.readouterr().err
    assert _cell(rt, snaps, shell, "y = 3")
    third = rt.cell.seq
    _killed_copy(rt)
    rt, snaps = _kernel(shell, source, before)
    try:
        report = snaps.restore()
        got = (report.seq, shell.user_ns.get("x"), shell.user_ns.get("y"))
        assert got == (third, 2, 3), report
        with pytest.raises(NamespaceNotSaved):
            snaps.restore(at=second)
    finally:
        rt.close()


def test_a_variable_record_lost_to_damage_steps_the_restore_back(shell, tmp_path, monkeypatch):
    """Review F9: a cell saving more than GROUP_BYTES writes a record per row; a flipped
    byte in one variable's record left that name's value from before under the cell's (and
    later cells') name. Its signed manifest counts the row: the restore steps back."""
    monkeypatch.setattr(journal_module, "GROUP_BYTES", 100)
    source, before = str(tmp_path / "nb.ipynb"), set(shell.user_ns)
    rt, snaps = _kernel(shell, source, before)
    assert _cell(rt, snaps, shell, "a = [1]")
    first = rt.cell.seq
    assert _cell(rt, snaps, shell, "a.append(2)\nb = 'x' * 300")
    second = rt.cell.seq
    assert _cell(rt, snaps, shell, "c = 3")
    _, log, data = _killed_copy(rt)
    damaged = bytearray(data)
    damaged[data.index(f"{second}:a".encode())] ^= 0x01  # in a's variable row
    log.write_bytes(bytes(damaged))
    rt, snaps = _kernel(shell, source, before)
    try:
        report = snaps.restore()
        got = {n: shell.user_ns.get(n) for n in ("a", "b", "c")}
        assert (report.seq, got) == (first, {"a": [1], "b": None, "c": None}), report
    finally:
        rt.close()


def test_after_a_damaged_cell_and_a_restore_a_later_kernels_work_is_restored(
    shell, tmp_path, monkeypatch
):
    """Review2 N1: the step back before a cell whose rows damage lost held for every later
    restore, so a later kernel's work (after it restored) was never brought back."""
    monkeypatch.setattr(journal_module, "GROUP_BYTES", 100)
    source, before = str(tmp_path / "nb.ipynb"), set(shell.user_ns)
    rt, snaps = _kernel(shell, source, before)
    assert _cell(rt, snaps, shell, "a = [1]")
    assert _cell(rt, snaps, shell, "a.append(2)\nb = 'x' * 300")
    second = rt.cell.seq
    _, log, data = _killed_copy(rt)
    damaged = bytearray(data)
    damaged[data.index(f"{second}:a".encode())] ^= 0x01
    log.write_bytes(bytes(damaged))
    rt, snaps = _kernel(shell, source, before)
    try:
        assert snaps.restore().seq < second and shell.user_ns["a"] == [1]
        assert _cell(rt, snaps, shell, "w = 5")
        later = rt.cell.seq
    finally:
        rt.close()
    rt, snaps = _kernel(shell, source, before)
    try:
        report = snaps.restore()
        got = {n: shell.user_ns.get(n) for n in ("a", "b", "w")}
        assert (report.seq, got) == (later, {"a": [1], "b": None, "w": 5}), report
    finally:
        rt.close()


def test_durable_off_in_a_recorded_cell_leaves_later_restore_points(shell, tmp_path):
    """Review2 N4: a cell whose start record was written (it ran a step, or a second)
    and that turned journaling off wrote no end record, so it read as lost to damage and
    every later restore point of the run was refused."""
    source, before = str(tmp_path / "nb.ipynb"), set(shell.user_ns)
    rt, snaps = _kernel(shell, source, before)
    assert _cell(rt, snaps, shell, "x = 1")
    rt.begin_cell(None, "%durable off")
    rt.write_start()  # as a step or the flusher's tick writes it
    rt.enabled = False  # what %durable off does
    rt.end_cell("ok", None)
    assert _cell(rt, snaps, shell, "y = 2")  # not journaled
    rt.enabled = True  # %durable on
    assert _cell(rt, snaps, shell, "z = 3")
    last = rt.cell.seq
    rt.close()
    rt, snaps = _kernel(shell, source, before)
    try:
        report = snaps.restore()
        got = {n: shell.user_ns.get(n) for n in ("x", "y", "z")}
        assert (report.seq, got) == (last, {"x": 1, "y": 2, "z": 3}), report
    finally:
        rt.close()
