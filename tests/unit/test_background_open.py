"""A journal opened in a thread, as a kernel opens it (issue 13): nothing changes but when.

Real DuckDB, in a plain process; the opening is held back by a gate, never by a sleep.
"""

from __future__ import annotations

import threading

import pytest

from durable_nb import trust
from durable_nb.runtime import Runtime
from durable_nb.store import Journal, stamp

pytestmark = pytest.mark.unit


def opening_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "durable_nb-open" and t.is_alive()]


def test_reading_the_journal_waits_until_the_opening_is_done(tmp_path, monkeypatch):
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path / "j"))
    gate, seen = threading.Event(), []

    def then(rt: Runtime) -> None:  # runs in the opening thread, once the journal is open
        seen.append(rt.journal is not None)  # the thread reads it as it is: no deadlock
        assert gate.wait(60)

    rt = Runtime(str(tmp_path / "nb.ipynb"), then=then, background=True)
    try:
        assert opening_threads()  # the constructor returned before the opening ended
        threading.Timer(0.05, gate.set).start()
        journal = rt.journal  # waits for the opening, ``then`` included
        assert gate.is_set() and seen == [True]
        assert isinstance(journal, Journal) and rt.journaling and rt.problem is None
        assert not opening_threads()
    finally:
        gate.set()
        rt.close()


def test_what_the_opening_met_is_shown_once_by_the_first_cell(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path / "j"))
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "nb.duckdb").write_bytes(b"not a database" * 1000)
    rt = Runtime(str(tmp_path / "nb.ipynb"), background=True)
    rt.wait_open()
    assert capsys.readouterr().err == ""  # nothing before a cell can show it
    assert rt.journal is None and rt.problem is not None
    rt.begin_cell(None, "x = 1")
    rt.end_cell("ok", None)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("durable_nb:")]
    assert len(lines) == 1 and "nb.duckdb" in lines[0], lines
    rt.step_aside(rt.problem)  # the same trouble again: already said
    rt.begin_cell(None, "x = 2")
    rt.end_cell("ok", None)
    assert "durable_nb:" not in capsys.readouterr().err
    rt.close()


def test_closing_before_any_cell_waits_for_the_opening_and_releases_the_journal(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path / "j"))
    rt = Runtime(str(tmp_path / "nb.ipynb"), background=True)
    rt.close("unloaded")
    assert not opening_threads() and rt.journal is None
    again = Journal.open(tmp_path / "j" / "nb.duckdb")  # not held by anyone any more
    try:
        assert [r.status for r in again.runs()] == ["unloaded"]
    finally:
        again.close()


def test_a_cell_that_begins_while_the_journal_opens_is_numbered_when_it_is_done(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path / "j"))
    gate = threading.Event()
    rt = Runtime(str(tmp_path / "nb.ipynb"), then=lambda rt: gate.wait(60), background=True)
    try:
        rt.begin_cell("first", "x = 1")  # returns while the opening is held back
        assert rt.opening and rt.cell.seq == 0
        gate.set()
        rt.end_cell("ok", None)  # waits for the opening: numbered, start record written
        rt.begin_cell("second", "y = 2")  # the journal is open: numbered at once
        assert rt.cell.seq == 2
        rt.end_cell("ok", None)
        cells = rt.journal.cells()
        assert [(c.seq, c.cell_id, c.status) for c in cells] == [(1, "first", "ok"),
                                                                 (2, "second", "ok")]  # fmt: skip
        assert len({c.exec_id for c in cells}) == 2
    finally:
        gate.set()
        rt.close()


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    names = set(shell.user_ns)
    yield shell
    for name in set(shell.user_ns) - names:
        shell.user_ns.pop(name, None)
        shell.user_ns_hidden.pop(name, None)


def held_extension(shell, gate: threading.Event):
    """The extension loaded as a kernel loads it, its journal's opening held by ``gate``."""
    from durable_nb.extension import _Extension

    ext = _Extension(shell)
    read = ext._read_journal

    def held(max_bytes: int, rt: Runtime) -> None:
        assert gate.wait(60)
        read(max_bytes, rt)

    ext._read_journal = held
    ext.install(background=True)
    shell.user_ns["_gate"] = shell.user_ns_hidden["_gate"] = gate  # the cell lets it go on
    shell.user_ns["_rt"] = shell.user_ns_hidden["_rt"] = ext.rt
    return ext


def test_the_first_cell_runs_while_the_journal_opens_and_its_snapshot_is_kept(
    tmp_path, monkeypatch, shell, capsys
):
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path / "j"))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "nb.ipynb"))
    ext = held_extension(shell, threading.Event())
    try:
        first = "x = [1, 2]\nopening = _rt.opening\n_gate.set()"
        assert shell.run_cell(first, cell_id="first").success
        assert shell.user_ns["opening"] is True  # the cell ran before the journal was open
        assert shell.run_cell("y = x + [3]", cell_id="second").success
        journal = ext.rt.journal
        cells = journal.cells()
        assert [(c.seq, c.cell_id, c.status) for c in cells] == [(1, "first", "ok"),
                                                                 (2, "second", "ok")]  # fmt: skip
        saved = journal.variables_as_of(1)
        assert {"x", "opening"} <= saved.keys() and saved["x"].state == "saved"
        assert "y" in journal.variables_as_of(2)
        assert "durable_nb:" not in capsys.readouterr().err
    finally:
        ext.uninstall()


def test_a_damaged_journal_is_told_by_a_first_cell_that_ran_while_it_opened(
    tmp_path, monkeypatch, shell, capsys
):
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path / "j"))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "nb.ipynb"))
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "nb.duckdb").write_bytes(b"not a database" * 1000)
    ext = held_extension(shell, threading.Event())
    try:
        assert shell.run_cell("print('ran'); opening = _rt.opening; _gate.set()").success
        out = capsys.readouterr()
        assert shell.user_ns["opening"] is True and "ran" in out.out
        lines = [x for x in out.err.splitlines() if x.startswith("durable_nb:")]
        assert len(lines) == 1 and "nb.duckdb" in lines[0], lines  # in the first cell, once
        assert shell.run_cell("z = 1").success
        assert "durable_nb:" not in capsys.readouterr().err
        assert ext.rt.journal is None and ext.rt.problem is not None
    finally:
        ext.uninstall()


def test_the_magics_parser_is_built_on_first_use_and_durable_help_shows_it(
    shell, tmp_path, monkeypatch
):
    from durable_nb.magics import DurableMagics

    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path / "j"))
    rt = Runtime(str(tmp_path / "nb.ipynb"))
    try:
        magics = DurableMagics(shell, rt, lambda: None)
        assert magics._parser is None  # not built while the kernel starts
        shell.register_magics(magics)
        usage = shell.object_inspect("%durable")["docstring"]
        assert "COMMAND" in usage and "status" in usage and "replay" in usage, usage
        assert magics.parser.parse_args(["log", "-n", "3"]).limit == 3
    finally:
        for kind in ("line", "cell"):
            shell.magics_manager.magics[kind].pop("durable", None)
        rt.close()


@pytest.mark.parametrize("again", [True, False], ids=["the-died-cell", "another-cell"])
def test_the_died_cell_run_again_first_to_its_end_is_not_offered_again(
    tmp_path, monkeypatch, shell, capsys, again
):
    """The offer comes at the end of a first cell that ran while the journal opened: if
    that cell was the one the last run died in, and it ran to its end, resuming it would
    run it once more (review13 F5). Another first cell still gets the offer."""
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path / "j"))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "nb.ipynb"))
    source = "x = 1\n_gate.set()"
    dead = Runtime(str(tmp_path / "nb.ipynb"))
    dead.begin_cell("c1", source)
    dead.tick()  # the flusher's tick writes its start record; the kernel dies in it
    dead.journal.abandon()
    ext = held_extension(shell, threading.Event())
    try:
        assert ext.pending_resume is None  # not known yet: the opening is held
        code = source if again else "y = 2\n_gate.set()"
        assert shell.run_cell(code, cell_id="c1" if again else "c2").success
        offered = [x for x in capsys.readouterr().err.splitlines() if "last run died" in x]
        assert len(offered) == (0 if again else 1), offered
    finally:
        ext.uninstall()


def test_the_flusher_tick_vouches_for_the_journal_as_it_stands(tmp_path, monkeypatch):
    # Runtime.tick stamps the journal (Journal.stamp): a kernel killed later leaves a file
    # the next kernel need not check in full. A read-only journal is never stamped.
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path / "j"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.setattr(trust, "_secret", None)
    rt = Runtime(str(tmp_path / "nb.ipynb"))
    try:
        assert stamp.read(rt.path) is None  # the open wrote to DuckDB: not vouched for yet
        rt.tick()
        rt.tick()  # idle for a tick: stamped
        made = stamp.read(rt.path)
        assert made is not None and made[0] == stamp.identity(rt.path)
    finally:
        rt.close()
