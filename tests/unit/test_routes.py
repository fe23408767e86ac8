"""Changes and sharing made through routes a cell's text does not name are saved: a method
storing into a helper module's global or a nested class's attribute, a function using
``globals()``, a change made outside any cell, an iterator over a variable. Each scenario
runs its cells, "crashes", restores in a fresh namespace and compares values and
identities with the live ones. No kernel; the sweep is off, so only the rule decides."""

from __future__ import annotations

import sys
import uuid

import pytest
from IPython.core.interactiveshell import InteractiveShell

from durable_nb.runtime import Runtime
from durable_nb.snapshot import Snapshots

pytestmark = pytest.mark.unit

HELPER = """
REGISTRY = []
class Node:
    def __init__(self, i):
        self.tags = [i]
    def register(self):
        REGISTRY.append(self.tags)
"""
NESTED = """
class Outer:
    class Node:
        registry = []
        def __init__(self, i):
            self.tags = [i]
        def register(self):
            self.registry.append(self.tags)
"""
#: name -> (cells, what to compare after the restore)
SCENARIOS = {
    "helper module global": (
        ["import {mod} as m\nobjs = [m.Node(i) for i in range(300)]\nY = m.REGISTRY",
         "objs[0].register()"],
        "Y, Y[0] is objs[0].tags, Y is m.REGISTRY"),
    "nested class attribute": (
        [NESTED + "objs = [Outer.Node(i) for i in range(300)]\nY = Outer.Node.registry",
         "objs[0].register()"],
        "Y, Y[0] is objs[0].tags, Y is Outer.Node.registry"),
    "globals() in a function": (
        ["def put(name, x):\n    globals()[name].append(x)\nv1 = [1]\nv2 = [2]",
         "put('v' + '2', 'via globals')"],
        "v2"),
    "outside any cell": (
        ["objs = [[i] for i in range(300)]\nY = []", "@outside Y.append(objs[1])",
         "print(len(objs))", "Y.append(0)", "Y[0].append('via Y')"],
        "objs[1], Y, Y[0] is objs[1]"),
    "an iterator": (
        ["rows = [[1], [2]]", "z = iter(rows)", "rows[0].append(7)"],
        "next(z), rows"),
}  # fmt: skip


@pytest.fixture
def shell(tmp_path):
    shell = InteractiveShell.instance()
    hidden = shell.user_ns_hidden
    aside = {n: v for n, v in shell.user_ns.items() if n not in hidden and n[0] != "_"}
    for name in aside:
        del shell.user_ns[name]
    sys.path.insert(0, str(tmp_path))
    yield shell
    sys.path.remove(str(tmp_path))
    for name in [n for n in shell.user_ns if n not in hidden and n[0] != "_"]:
        del shell.user_ns[name]
    shell.user_ns.update(aside)


def _clear(shell) -> None:
    for name in [n for n in shell.user_ns if n not in shell.user_ns_hidden and n[0] != "_"]:
        del shell.user_ns[name]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_what_a_cell_changed_through_an_unnamed_route_is_restored(shell, tmp_path, name):
    cells, probe = SCENARIOS[name]
    mod = f"dnb_routes_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{mod}.py").write_text(HELPER)
    source = str(tmp_path / "nb.ipynb")
    rt = Runtime(source)
    snaps = Snapshots(shell, rt)
    snaps.sweep.bytes = 0
    try:
        for code in cells:
            code = code.format(mod=mod)
            if code.startswith("@outside "):  # a thread or a widget's callback
                exec(code.removeprefix("@outside "), shell.user_ns)
                continue
            rt.begin_cell(None, code)
            assert shell.run_cell(code, store_history=False, silent=True).success, code
            snaps.after_cell(code, True)
            rt.end_cell("ok", None)
        live = repr(eval(probe, shell.user_ns))
    finally:
        rt.close()
    _clear(shell)
    rt = Runtime(source)
    try:
        Snapshots(shell, rt).restore()
        assert repr(eval(probe, shell.user_ns)) == live
    finally:
        rt.close()
