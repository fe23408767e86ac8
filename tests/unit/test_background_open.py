"""A journal opened in a thread, as a kernel opens it (issue 13): nothing changes but when.

Real DuckDB, in a plain process; the opening is held back by a gate, never by a sleep.
"""

from __future__ import annotations

import threading

import pytest

from durable_nb.runtime import Runtime
from durable_nb.store import Journal

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
