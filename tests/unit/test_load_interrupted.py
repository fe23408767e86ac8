"""A Ctrl-C at any point of ``%load_ext durable_nb`` leaves nothing installed, and the next
load and unload work (helper-104 G3: it had left every hook behind). Fault injection: the
interrupt is raised from each of the shell calls the load makes, in turn."""

from __future__ import annotations

import atexit

import pytest
from IPython.core.interactiveshell import InteractiveShell

from durable_nb import extension, runtime

#: The shell's calls a load makes, and which occurrence of each gets the interrupt.
POINTS = [("register_magics", 1), ("events.register", 1), ("events.register", 2),
          ("input_transformers_cleanup.append", 1)]  # fmt: skip


def installed(shell) -> list[str]:
    """What of durable_nb is on the shell."""
    found = [f"{e}" for e in ("pre_run_cell", "post_run_cell")
             if any(getattr(cb, "__self__", None).__class__.__name__ == "_Extension"
                    for cb in shell.events.callbacks[e])]  # fmt: skip
    found += ["magic"] * ("durable" in shell.magics_manager.magics["line"])
    found += ["settings"] * any(type(c).__name__ == "DurableNB" for c in shell.configurables)
    found += ["transformer"] * (extension.strip_fresh_line in shell.input_transformers_cleanup)
    found += ["runtime"] * (runtime.current() is not None)
    return found


@pytest.mark.parametrize(("call", "nth"), POINTS)
def test_an_interrupted_load_leaves_nothing_and_the_next_load_works(
    tmp_path, monkeypatch, call, nth
):
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path / "j"))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "nb.ipynb"))
    shell = InteractiveShell.instance()
    seen: list = []

    def interrupting(original):
        def call_(*args, **kwargs):
            seen.append(args)
            if len(seen) == nth:
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        return call_

    if call == "input_transformers_cleanup.append":  # (a list: its append, through a subclass)

        class Interrupting(list):
            append = interrupting(list.append)

        manager = shell.input_transformer_manager  # (input_transformers_cleanup reads it)
        monkeypatch.setattr(manager, "cleanup_transforms",
                            Interrupting(manager.cleanup_transforms))  # fmt: skip
    else:
        owner = shell.events if call.startswith("events.") else shell
        method = call.rpartition(".")[2]
        monkeypatch.setattr(owner, method, interrupting(getattr(owner, method)))
    closes: list = []
    monkeypatch.setattr(atexit, "register", lambda f, *a, **k: closes.append(f) or f)
    with pytest.raises(KeyboardInterrupt):
        extension.load_ipython_extension(shell)
    monkeypatch.undo()  # (the shell's own calls back; the environment kept below)
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path / "j"))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "nb.ipynb"))
    try:
        assert installed(shell) == [], installed(shell)
        assert id(shell) not in extension._loaded
        extension.load_ipython_extension(shell)
        assert set(installed(shell)) >= {"pre_run_cell", "post_run_cell", "magic", "runtime"}
    finally:
        extension.unload_ipython_extension(shell)
    assert installed(shell) == []


def _fds() -> set[str]:
    import os

    return {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")}  # fmt: skip


#: Where the journal's opening on a cell's thread is interrupted, and how: DuckDB reports a
#: Ctrl-C on the main thread as ``RuntimeError('Query interrupted')`` (helper-106 F1: seen
#: with a real SIGINT; its ``InterruptException`` only after ``con.interrupt()``), and as
#: Python's own ``KeyboardInterrupt`` between its calls. As it connects, as the schema is
#: checked, as the log is folded, and as the open journal's snapshots are read (``then``).
OPENING = [
    (where, how) for where in ("connect", "migrate", "recover") for how in ("duckdb", "python")
]
OPENING += [("connect", "duckdb-interrupt"), ("then", "python")]  # fmt: skip


@pytest.mark.parametrize(("where", "how"), OPENING)
def test_a_ctrl_c_as_the_journal_opens_is_no_damage_and_leaves_no_file_open(
    tmp_path, monkeypatch, where, how
):
    """helper-105 H1: DuckDB's "Query interrupted" was taken for a damaged journal (set
    aside, journaling off), and an interrupted opening kept its files open."""
    import duckdb

    from durable_nb.store import journal as journal_module
    from durable_nb.store import opening

    source = str(tmp_path / "nb.ipynb")
    runtime.Runtime(source).close()  # the journal exists, with one run
    before = {f for f in _fds() if str(tmp_path) in f}
    targets = {"connect": (opening, "connect"), "migrate": (journal_module, "migrate"),
               "recover": (journal_module.Journal, "_recover"), "then": (None, None)}  # fmt: skip
    owner, name = targets[where]

    def interrupted(*args, **kwargs):
        if how == "duckdb":
            raise RuntimeError("Query interrupted")
        if how == "duckdb-interrupt":
            raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")
        raise KeyboardInterrupt

    if owner is not None:
        monkeypatch.setattr(owner, name, interrupted)
    with pytest.raises(KeyboardInterrupt):
        runtime.Runtime(source, then=interrupted if owner is None else None)
    monkeypatch.undo()
    assert {f for f in _fds() if str(tmp_path) in f} == before  # nothing left open
    again = runtime.Runtime(source)
    try:
        assert again.journaling and again.readonly is None
    finally:
        again.close()
