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

from durable_nb.refusals import STOPPED as WHY
from durable_nb.refusals import Refusals, stopped_names, was_stopped

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


def interrupted(nb: Notebook, code: str) -> tuple[str, ...]:
    """Run ``code`` as a cell whose snapshot Ctrl-C stops: the names the stop names."""
    nb.rt.begin_cell(None, code)
    assert nb.shell.run_cell(code, store_history=False, silent=True).success
    with pytest.raises(KeyboardInterrupt) as stop:
        nb.snaps.after_cell(code, True)
    nb.rt.end_cell("ok", None)
    return stopped_names(stop.value)


def made(nb: Notebook, setup: str, stopped: list[str]) -> tuple[list[int], tuple[str, ...]]:
    """Run :data:`STOPPED` and ``setup``, then each of ``stopped`` with its save stopped:
    the cells' numbers (what a restore re-runs to make their values), and the names the
    last stop named."""
    nb.run(STOPPED + setup)
    seqs, names = [nb.rt.cell.seq], ()
    for code in stopped:
        names = interrupted(nb, code)
        seqs.append(nb.rt.cell.seq)
    return seqs, names


def test_a_stopped_save_is_tried_again_once_a_cell_uses_the_value(shell):
    fresh_namespace(shell)
    ns = shell.user_ns
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        (made_w, made_s), names = made(
            nb, "import ipywidgets\nw = ipywidgets.IntSlider()\nkeep = [1]",
            ["s = Stopped()\nkeep.append(2)"])  # fmt: skip
        assert names == ("s",) and ns["Stopped"].saves == 1
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
        (made_w, made_a, made_b), names = made(nb, setup, ["a = Stopped()", "b = [a]"])
        assert set(names) == {"a", "b"} and ns["Stopped"].saves == 2
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


def test_a_stopped_group_is_not_tried_again_after_a_restore(shell):
    """review62 M3: a cell that may change any variable (``globals()``) tries a stopped
    group again neither live nor after a restore (which knows its members alone)."""
    fresh_namespace(shell)
    ns = shell.user_ns
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        setup = "Stopped.stop_at = {1, 2}\nimport ipywidgets\nw = ipywidgets.IntSlider()"
        made(nb, setup, ["a = Stopped()", "b = [a]"])
        nb.run("y = 1")
        live = ns["Stopped"].saves
        nb.run("n = len(globals())")
        assert ns["Stopped"].saves == live
        restore_anew(shell, nb)
        nb = Notebook(shell, Path(folder))
        nb.snaps.restore()
        saves = ns["Stopped"].saves
        nb.run("z = 1")
        nb.run("m = len(globals())")
        assert ns["Stopped"].saves == saves
        assert nb.snaps.known["a"].state == nb.snaps.known["b"].state == "recompute"
        nb.close()


def test_a_stopped_save_is_tried_again_once_a_function_the_cell_calls_uses_it(shell):
    """review62 M4: used is what the snapshot walks, the names the notebook's functions
    the cell calls use too: ``f()`` changing ``s`` saves that change."""
    fresh_namespace(shell)
    ns = shell.user_ns
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        made(nb, "def f():\n    s.note = 'changed'\n", ["s = Stopped()"])
        nb.run("y = 1")
        before = ns["Stopped"].saves
        assert nb.snaps.known["s"].state == "recompute"
        nb.run("f()")
        assert ns["Stopped"].saves == before + 1 and nb.snaps.known["s"].state == "saved"
        nb.close()


def test_the_stopped_mark_survives_a_reworded_reason():
    """Journals keep the reason's text: a restore knows a stopped value by its beginning."""
    assert was_stopped(WHY) and was_stopped(WHY.split(":")[0] + ": another wording")
    assert not was_stopped("holds the kernel's Comm") and not was_stopped(None)
    refusals, value = Refusals(), object()
    refusals.stop(("a", "b"), (value, 2), "outcome", exc := KeyboardInterrupt())
    assert stopped_names(exc) == ("a", "b") and refusals.stopped_alone("a", value)
    assert (
        refusals.get(("a",), (value,)) == "outcome" and refusals.get(("a", "b"), (value, 2)) is None
    )
    refusals.used({"a"})
    assert not refusals.stopped_alone("a", value) and refusals.stopped_alone("b", 2)


THROUGH = {
    "decorated": "import functools\ndef deco(fn):\n    @functools.wraps(fn)\n    def w(*a):\n"
    "        return fn(*a)\n    return w\n@deco\ndef f():\n    s.note = 'changed'\n",
    "partial": "import functools\ndef g(x):\n    s.note = x\nf = functools.partial(g, 'changed')\n",
    "table": "def g():\n    s.note = 'changed'\nf = {'go': g}['go']\nops = {'go': g}\n",
    "method": "class C:\n    def go(self):\n        s.note = 'changed'\nf = C().go\n",
}


@pytest.mark.parametrize("how", sorted(THROUGH))
def test_a_stopped_save_is_tried_again_through_whatever_code_the_cell_reaches(shell, how):
    """review64 M1: used is what the snapshot's walk reaches, not only a plain function's
    names: a decorated function, a partial, a bound method, a function in a dict."""
    fresh_namespace(shell)
    ns = shell.user_ns
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        made(nb, THROUGH[how], ["s = Stopped()"])
        nb.run("y = 1")
        before = ns["Stopped"].saves
        nb.run("ops['go']()" if how == "table" else "f()")
        assert ns["Stopped"].saves == before + 1 and nb.snaps.known["s"].state == "saved"
        nb.close()


def test_a_held_back_member_is_saved_with_a_member_that_reaches_it(shell):
    """review64 M2: pickling ``items`` runs its stopped member's code anyway; saved apart,
    ``items[0] is a`` was lost at a restore. Tried again together, identity survives."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        made(nb, "", ["items = [Stopped()]\na = items[0]"])
        nb.run("items.append(1)")
        assert nb.snaps.known["a"].state == nb.snaps.known["items"].state == "saved"
        restore_anew(shell, nb)
        assert shell.user_ns["items"][0] is shell.user_ns["a"]
        nb.close()
