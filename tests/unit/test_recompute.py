"""Which cells a restore may re-run: defining a function that writes files is not writing;
a cell that restores is never re-run (it would restore again, without end)."""

from __future__ import annotations

import pytest
from IPython.core.inputtransformer2 import TransformerManager
from test_snapshot_props import Notebook, fresh_namespace, restore_anew  # (on the path)
from test_snapshot_props import shell as shell  # (the fixture)

from durable_nb.cells import restores, writes_files


@pytest.mark.parametrize(
    "source",
    [
        "open('f', 'w').write('x')",
        "with open(path, mode='a') as f:\n    f.write('x')",
        "from pathlib import Path\nPath('f').write_text('x')",
        "from pathlib import Path\nPath('ledger.txt').open('w').write('row 1')",
        "@register(open('log', 'a'))\ndef f():\n    pass",  # a decorator runs at definition
        "def f(log=open('log', 'x')):\n    pass",  # so does a default value
        "class C:\n    handle = open('f', 'w+')",  # a class body runs too
        "for i in range(3):\n    open(f'{i}', 'w')",
        "def broken(:",  # cannot tell: never re-run blindly
    ],
)
def test_cells_that_write_when_run(source: str) -> None:
    assert writes_files(source)


@pytest.mark.parametrize(
    "source",
    [
        "x = open('f').read()",
        "open('f', 'r')",
        "@dnb.step\ndef slow(i):\n    with open(F, 'a') as f:\n        f.write(str(i))",
        "async def save(p):\n    p.write_text('x')",
        "writer = lambda p: open(p, 'w')",
        "class Sink:\n    def put(self, x):\n        open('f', 'a').write(x)",
    ],
)
def test_cells_that_only_define_writers(source: str) -> None:
    assert not writes_files(source)


@pytest.mark.parametrize(
    ("source", "restoring"),
    [
        ("%durable restore\nlock = threading.Lock()", True),
        ("import threading\n%durable restore --at 3", True),
        ("%durable resume", True),
        ("%durable status\nlock = threading.Lock()", False),
        ("%%durable fresh\nlock = threading.Lock()", False),
        ("%time restore()", False),
        ("def broken(:", False),
    ],
)
def test_a_cell_that_restores_is_never_re_run_by_a_restore(source: str, restoring: bool) -> None:
    assert restores(TransformerManager().transform_cell(source)) is restoring


def test_a_restore_names_the_later_cells_that_used_a_value_it_made_again(shell, tmp_path):
    """Made again by its cell, a WeakSet comes back without what a later cell added, a
    generator at its start: said, with the cells that name them (as variables: not an
    attribute, nor a cell the restore itself re-runs)."""
    fresh_namespace(shell)
    nb = Notebook(shell, tmp_path)
    for cell in [
        "import weakref\nclass N:\n    pass\nn = N()\nws = weakref.WeakSet()",
        "ws.add(n)",
        "g = (i for i in range(10))",
        "next(g)\nnext(g)",
        "class O:\n    g = 5\ny = [n, O.g, 'ws']",
        "h = (i for i in g)",
    ]:
        nb.run(cell)  # fmt: skip
    report = restore_anew(shell, nb)
    assert sorted(report.recomputed) == ["g", "h", "ws"]
    assert report.recompute_cells == [1, 3, 6] and report.used_after == {"ws": [2], "g": [4]}
    assert "later cells name ws (cell 2) and g (cell 4): what they did to them" in str(report)
    assert len(shell.user_ns["ws"]) == 0  # (as said)


def test_a_restore_says_when_a_cell_it_re_runs_reads_what_later_cells_made(shell, tmp_path):
    """A re-run cell reads the namespace as it is now: a function defined again after it
    (Using Interact's ``w = interactive(f, ...)`` before a later ``def f``), a global a
    function it calls reads, a name it rebinds from itself give values its first run never
    made. Said, with the cell that made what it read (more than it reads); a value made
    before the cell, one the cell bound before reading it, and what the later ``f`` reads
    (``zero``: ``f`` is said) are not."""
    fresh_namespace(shell)
    nb = Notebook(shell, tmp_path)
    for cell in [
        "def f(a):\n    return a + 1\nbase = 2\ncfg = 1\n"
        "def make():\n    return (x for x in [cfg])",
        "it = (x for x in [f(1), f(base)])\nclass C:\n    one = f(0)",  # (the list: now)
        "lazy = (f(i) for i in range(2))",
        "made = make()",  # (make reads cfg as it runs)
        "%time timed = (x for x in [f(3)])",  # (a magic's code is a string to Python)
        "h = lambda: 0\nown = (x for x in [h()])",  # (bound, then read: its own)
        "w = lambda: 1",
        "w = (lambda g: g)(w)\nwrapped = (x for x in [w()])",  # (w = wrap(w): w read)
        "deep = (x for x in [" + " + ".join(["w()"] * 600) + "])",  # (too deep: its words)
        "if 'f' not in globals():\n    def f(a):\n        return 0\nmaybe = (x for x in [f(5)])",
        "class K:\n    vals = [f(i) for i in range(2)]\nkept = (x for x in K.vals)",  # (2 deep)
        "zero = 0\ndef f(a):\n    return a * 10 + zero\ncfg = 3\nh = 1\nw = lambda: 2",
    ]:
        nb.run(cell)  # fmt: skip
    report = restore_anew(shell, nb)
    assert sorted(report.recomputed) == ["deep", "it", "kept", "lazy", "made", "maybe", "own",
                                         "timed", "wrapped"]  # fmt: skip
    assert report.newer == {2: [("f", 12)], 3: [("f", 12)], 4: [("cfg", 12)], 5: [("f", 12)],
                            8: [("w", 12)], 9: [("w", 12)], 10: [("f", 12)],
                            11: [("f", 12)]}  # fmt: skip
    assert "cell 2 re-ran with f as of cell 12, made after it" in str(report)
    assert list(shell.user_ns["it"]) == [10, 20]  # (as said: not [2, 3])
