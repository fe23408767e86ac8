"""A save the person stops (Ctrl-C in the notebook's pickling code) is not tried again
while its variable holds the same object, and what a failed save forgot still knows the
cell that made each value (a restore re-runs that cell, not the one after the failure).

Against a real journal and restore (tests/unit/test_snapshot_props.py's harness); the
kernel-level test with a real SIGINT is tests/test_snapshot.py's
``test_a_save_the_person_interrupts_is_not_tried_again_while_it_is_the_same``.
"""

from __future__ import annotations

import gc
import tempfile
import weakref
from pathlib import Path

import pytest
from test_snapshot_props import Notebook, fresh_namespace, restore_anew  # (on the path)
from test_snapshot_props import shell as shell  # (the fixture)

pytestmark = pytest.mark.unit

#: Its saves numbered in ``stop_at`` are stopped as Ctrl-C would stop them; it counts them.
STOPPED = """class Stopped:
    saves, stop_at = 0, {1}
    def __reduce__(self):
        Stopped.saves += 1
        if Stopped.saves in Stopped.stop_at:
            raise KeyboardInterrupt
        return (Stopped, ())
"""


def interrupted(nb: Notebook, code: str) -> None:
    """Run ``code`` as a cell whose snapshot Ctrl-C stops."""
    nb.rt.begin_cell(None, code)
    assert nb.shell.run_cell(code, store_history=False, silent=True).success
    with pytest.raises(KeyboardInterrupt):
        nb.snaps.after_cell(code, True)
    nb.rt.end_cell("ok", None)


def made(nb: Notebook, setup: str, stopped: list[str]) -> list[int]:
    """Run :data:`STOPPED` and ``setup``, then each of ``stopped`` with its save stopped:
    the cells' numbers (what a restore re-runs to make their values)."""
    nb.run(STOPPED + setup)
    seqs = [nb.rt.cell.seq]
    for code in stopped:
        interrupted(nb, code)
        seqs.append(nb.rt.cell.seq)
    return seqs


def test_a_stopped_save_is_tried_again_once_a_cell_uses_the_value(shell):
    fresh_namespace(shell)
    ns = shell.user_ns
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        made_w, made_s = made(nb, "import ipywidgets\nw = ipywidgets.IntSlider()\nkeep = [1]",
                              ["s = Stopped()\nkeep.append(2)"])  # fmt: skip
        assert nb.snaps.refusals.stopped == ("s",) and ns["Stopped"].saves == 1
        nb.run("y = 1")  # the whole namespace again, s but its save
        nb.run("keep.append(3)")
        assert ns["Stopped"].saves == 1 and nb.snaps.known["s"].state == "recompute"
        # The cells that made them, though the failed save forgot what it knew.
        assert (nb.snaps.known["s"].cell_seq, nb.snaps.known["w"].cell_seq) == (made_s, made_w)
        report = restore_anew(shell, nb)
        assert {"s", "w"} <= set(report.recomputed) and ns["keep"] == [1, 2, 3]
        nb = Notebook(shell, Path(folder))
        nb.snaps.restore()
        saves = ns["Stopped"].saves  # (the class came back: its count is its own)
        nb.run("z = 1")  # remade by its cell: not tried until used
        assert ns["Stopped"].saves == saves and nb.snaps.known["s"].state == "recompute"
        nb.run("s.note = 'y'")  # used: tried again, and saved with its change
        assert ns["Stopped"].saves == saves + 1 and nb.snaps.known["s"].state == "saved"
        nb.close()


def test_two_stopped_saves_in_a_row_keep_what_made_each_value(shell):
    """review61 #4, #5: a stopped group's members are not tried one by one, and a second
    failure does not take the first one's record of what made each value."""
    fresh_namespace(shell)
    ns = shell.user_ns
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        setup = "Stopped.stop_at = {1, 2}\nimport ipywidgets\nw = ipywidgets.IntSlider()"
        # b = [a] uses a: it is tried again, with b, in one group
        made_w, made_a, made_b = made(nb, setup, ["a = Stopped()", "b = [a]"])
        assert set(nb.snaps.refusals.stopped) == {"a", "b"} and ns["Stopped"].saves == 2
        nb.run("y = 1")
        assert ns["Stopped"].saves == 2
        known = nb.snaps.known
        assert (known["w"].cell_seq, known["a"].cell_seq, known["b"].cell_seq) == (
            made_w, made_a, made_b)  # fmt: skip
        assert known["a"].state == known["b"].state == "recompute"
        held = weakref.ref(ns["a"])
        nb.run("globals().update({'a': 1, 'b': 2})")  # rebound, unnamed: let go (review61 #3)
        gc.collect()
        assert held() is None
        nb.close()
