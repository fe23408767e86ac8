"""A save the person stops (Ctrl-C in the notebook's pickling code) is not tried again
while its variable holds the same object, and what a failed save forgot still knows the
cell that made each value (a restore re-runs that cell, not the one after the failure).

Against a real journal and restore (tests/unit/test_snapshot_props.py's harness); the
kernel-level test with a real SIGINT is tests/test_snapshot.py's
``test_a_save_the_person_interrupts_is_not_tried_again_while_it_is_the_same``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from test_snapshot_props import Notebook, fresh_namespace  # (tests/unit: on the path)
from test_snapshot_props import shell as shell  # (the fixture)

pytestmark = pytest.mark.unit

#: Its first save is stopped as Ctrl-C would stop it; it counts its saves.
STOPPED = """class Stopped:
    saves = 0
    def __reduce__(self):
        Stopped.saves += 1
        if Stopped.saves == 1:
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


def test_a_stopped_save_is_not_tried_again_until_the_name_is_rebound(shell):
    fresh_namespace(shell)
    ns = shell.user_ns
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run(STOPPED + "import ipywidgets\nw = ipywidgets.IntSlider()\nkeep = [1]")
        made_w = nb.rt.cell.seq
        interrupted(nb, "s = Stopped()\nkeep.append(2)")
        made_s = nb.rt.cell.seq
        assert nb.snaps.stopped == ("s",) and ns["Stopped"].saves == 1
        nb.run("y = 1")  # the whole namespace again, s but its save
        nb.run("s.note = 'x'\nkeep.append(3)")
        assert ns["Stopped"].saves == 1
        assert nb.snaps.known["s"].state == "recompute"
        # The cells that made them, though the failed save forgot what it knew.
        assert (nb.snaps.known["s"].cell_seq, nb.snaps.known["w"].cell_seq) == (made_s, made_w)
        nb.close()
        fresh_namespace(shell)
        nb = Notebook(shell, Path(folder))
        report = nb.snaps.restore()
        assert not report.skipped, report
        assert {"s", "w"} <= set(report.recomputed) and ns["keep"] == [1, 2, 3]
        saves = ns["Stopped"].saves  # (the class came back: its count is its own)
        nb.run("z = 1\ns.note = 'y'")  # remade by its cell: still not tried
        assert ns["Stopped"].saves == saves and nb.snaps.known["s"].state == "recompute"
        nb.run("s = Stopped()")  # another object: tried, and saved
        assert ns["Stopped"].saves == saves + 1 and nb.snaps.known["s"].state == "saved"
        nb.close()
