"""Notebook classes and functions that refer to each other, or that no name holds any more,
restored as the namespace held them: one class for every variable holding it, and what
refers both ways loaded whole (no kernel; a real shell, ``Snapshots`` and journal).

Generated notebooks: classes (some subclasses) whose attributes hold other classes,
instances of themselves or of others, and functions; variables holding instances,
classes and lambdas, aliased; class cells run again (the old class then held by no name)
and names deleted. After the last cell the namespace is emptied and restored; every
value, with which objects are one (``type(a) is type(b)``), must equal the live one's.
"""

from __future__ import annotations

import math
import tempfile
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from durable_nb.cells import IPYTHON_NAMES
from durable_nb.runtime import Runtime
from durable_nb.snapshot import Snapshots

pytestmark = pytest.mark.unit

SLOW = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture(scope="module")
def shell():
    return InteractiveShell.instance()


def user_names(shell) -> list[str]:
    hidden = shell.user_ns_hidden
    return sorted(n for n in shell.user_ns if type(n) is str and n not in hidden
                  and not IPYTHON_NAMES.match(n) and not n.startswith("_"))  # fmt: skip


def emptied(shell) -> None:
    for name in user_names(shell):
        del shell.user_ns[name]


def describe(ns: dict, names: list[str]) -> list:
    """Every value, each object (class, function, instance, list) numbered as first met."""
    index: dict[int, int] = {}
    keep: list = []

    def named(o) -> bool:
        head, *rest = o.__qualname__.split(".")
        found = ns.get(head)
        for part in rest:
            found = vars(found).get(part) if isinstance(found, type) else None
            found = getattr(found, "__func__", found)  # (a static or class method's)
        return found is o

    def d(o):
        t = type(o)
        if o is None or t in (int, str, bool):
            return repr(o)
        if t is type and o.__module__ != "__main__":
            return o.__qualname__  # object, a library's
        if id(o) in index:
            return f"@{index[id(o)]}"
        # A class or function no name holds (its cell ran again, a lambda, a method replaced)
        # is copied into each payload holding it: told by what it is, not which object (a
        # limit the docs say).
        if t is type and not named(o):  # (its attributes' kinds, numbers and text)
            own = sorted((k, v) for k, v in vars(o).items() if not k.startswith("__"))
            return ("old", o.__qualname__, [(k, repr(v) if type(v) in (int, str) else
                                             type(v).__name__) for k, v in own])  # fmt: skip
        if t is types.FunctionType and not named(o):
            return ("copied", o.__qualname__, o.__code__.co_consts)
        index[id(o)] = me = len(index)
        keep.append(o)
        if t in (list, tuple):
            return (t.__name__, me, [d(x) for x in o])
        if t is dict:
            return ("dict", me, [(k, d(v)) for k, v in o.items()])
        if t is type:
            own = sorted((k, v) for k, v in vars(o).items() if not k.startswith("__"))
            return ("class", me, o.__qualname__, [d(b) for b in o.__bases__],
                    [(k, d(v)) for k, v in own])  # fmt: skip
        if t is types.FunctionType:
            code = o.__code__
            return ("function", me, o.__qualname__, d(o.__defaults__), code.co_consts)
        if t is types.MethodType:
            return ("method", me, d(o.__func__), d(o.__self__))
        return ("instance", me, d(t), [(k, d(v)) for k, v in sorted(vars(o).items())])

    return [(n, d(ns[n])) for n in names]


@st.composite
def notebooks(draw) -> list[str]:
    """Cells defining classes ``C0``.., variables ``v0``.., lambdas, and changes."""
    classes = draw(st.integers(2, 4))
    cells, defined = [], []
    made = 0  # how many times a class statement ran: each class's text tells them apart

    def statement(i: int) -> str:
        nonlocal made
        made += 1
        bases = [f"C{j}" for j in defined if j < i and draw(st.booleans())][:1]
        base = f"({bases[0]})" if bases else ""
        init = (f"    def __init__(self):\n        self.n = {made}\n"
                f"    def m(self):\n        return {made}\n")  # fmt: skip
        return f"class C{i}{base}:\n    made = {made}\n{init}"

    for i in range(classes):
        cells.append(statement(i))
        defined.append(i)
    vars_ = 0
    for _ in range(draw(st.integers(2, 7))):
        kind = draw(st.sampled_from(["attr_class", "attr_self", "attr_other", "instance",
                                     "alias", "list", "rerun", "lambda", "default", "del",
                                     "registry", "sub", "method", "patch",
                                     "named"]))  # fmt: skip
        i, j = draw(st.sampled_from(defined)), draw(st.sampled_from(defined))
        v = vars_
        if kind == "attr_class":
            cells.append(f"C{i}.other = C{j}")
        elif kind == "attr_self":
            cells.append(f"C{i}.default = C{i}()")
        elif kind == "attr_other":
            cells.append(f"C{i}.held = C{j}()")
        elif kind == "instance":
            cells.append(f"v{v} = C{i}()\nv{v + 1} = C{i}()")
            vars_ += 2
        elif kind == "alias" and vars_:
            w = draw(st.integers(0, vars_ - 1))
            cells.append(f"v{v} = [v{w}, C{i}]")
            vars_ += 1
        elif kind == "list":
            cells.append(f"v{v} = [C{i}(), C{j}]\nv{v + 1} = C{j}")
            vars_ += 2
        elif kind == "rerun":  # the old class, no name holds it: saved by value
            cells.append(statement(i))
        elif kind == "lambda":
            cells.append(f"f = lambda: {v}\nv{v} = [f]\nv{v + 1} = (f, C{i})\ndel f")
            vars_ += 2
        elif kind == "default":
            cells.append(f"def g{v}(x=C{i}):\n    return x.__name__\nC{j}.fn = g{v}")
        elif kind == "registry":
            cells.append(f"C{i}.reg = {{'k': C{j}, 'all': [C{i}, C{j}()]}}")
        elif kind == "sub":  # a subclass its base holds
            cells.append(f"class S{v}(C{i}):\n    pass\nC{i}.sub = S{v}\nv{v} = S{v}()")
            vars_ += 1
        elif kind == "method":  # a bound method, a function by its class's name
            cells.append(f"v{v} = C{i}().m\nv{v + 1} = [C{j}.m]")
            vars_ += 2
        elif kind == "named":  # another name for a class's method
            cells.append(f"v{v} = C{i}.m")
            vars_ += 1
        elif kind == "patch":  # what ``C.m`` names changes
            cells.append(f"C{i}.m = lambda self: {v}")
        elif kind == "del" and vars_:
            cells.append(f"v{vars_} = C{i}\ndel C{i}\n{statement(i)}")
            vars_ += 1
    return cells


def restored(shell, cells: list[str], sweep: bool = False) -> tuple[list, list]:
    """Run ``cells`` journaled, then restore into an emptied namespace: (live, restored)."""
    emptied(shell)
    with tempfile.TemporaryDirectory() as folder:
        source = str(Path(folder) / "nb.ipynb")
        rt = Runtime(source)
        snaps = Snapshots(shell, rt)
        snaps.sweep.bytes = snaps.sweep.names if sweep else 0  # else the rule alone
        snaps.sweep.seconds = math.inf
        for code in cells:
            rt.begin_cell(None, code)
            result = shell.run_cell(code, store_history=False, silent=True)
            assert result.success, (code, result.error_in_exec)
            snaps.after_cell(code, True)
            rt.end_cell("ok", None)
        names = user_names(shell)
        live = describe(shell.user_ns, names)
        rt.close()
        emptied(shell)
        rt = Runtime(source)
        report = Snapshots(shell, rt).restore()
        rt.close()
        assert not report.skipped, (report.skipped, cells)
        return live, describe(shell.user_ns, names)


@settings(max_examples=25, deadline=None, suppress_health_check=SLOW)  # the unit layer: < 1 min
@given(cells=notebooks(), sweep=st.booleans())
def test_classes_and_functions_restore_as_one_and_whole(shell, cells, sweep):
    live, back = restored(shell, cells, sweep)
    assert back == live, cells


C = "class {0}:\n    def __init__(self):\n        self.n = 1\n"

#: Definitions whose payloads would each name the other (neither loads first: both were
#: skipped at restore, helper-111 F2), or a class its own data reaches (dill's, which
#: named it too), or an old class held by no name (copied per variable, F1).
CASES = {
    "refer to each other": [C.format("A") + C.format("B"), "A.other = B\nB.other = A"],
    "refer in one cell": [C.format("A") + C.format("B") + "A.other = B\nB.other = A"],
    "an instance of itself": [C.format("Shape") + "Shape.default = Shape()"],
    "each other's instances": [C.format("A") + C.format("B"), "A.b = B()\nB.a = A()"],
    "a subclass its base holds": ["class Base:\n    pass\n", "class Sub(Base):\n    pass\n"
                                  "Base.child = Sub\ns = Sub()"],
    "a function taking the class": [C.format("A"), "def make(cls=A):\n    return cls.__name__\n"
                                    "A.maker = make"],
    "a function taking a subclass, the base run again": [
        C.format("C0"), "class C1(C0):\n    pass\n",
        "def g0(x=C1):\n    return x.__name__\nC0.fn = g0", C.format("C0")],
    "another name for a class, the class changed": [C.format("C") + "A = C", "C.x = 1"],
    "another name for a class given later": [C.format("C"), "A = C"],
    "another name for a function, through a list": ["def f():\n    return 1\nfs = [f]",
                                                     "g = fs[0]"],
    "another name for a function, changed through it": [
        "def f():\n    return 1\ng = f", "g.tag = 2"],
    "a circle through an old class's data": [
        C.format("C0") + C.format("C1"), "def g0(x=C0):\n    return x.__name__\nC1.fn = g0",
        "C0.other = C1", C.format("C1")],
    "a circle through annotations": [
        "class A:\n    pass\nclass B:\n    ref: A\n", "A.__annotations__['ref'] = B"],
    "an inherited class method replaced in its base": [
        "class S:\n    @classmethod\n    def cm(cls):\n        return 1\nclass T(S):\n    pass\n"
        "bm = T.cm", "S.cm = classmethod(lambda cls: 2)"],  # (helper-113 F3)
    # What a name gives changes with its holder (helper-111 F4: ``getattr(self, 'd')``).
    "a bound method, its method replaced": [
        "class S:\n    def d(self):\n        return 1\nbm = S().d\nfs = [S.d]",
        "S.d = lambda self: 2"],
    "replaced by a function": [
        "class S:\n    def d(self):\n        return 1\nbm = S().d\nfs = [S.d]\n"
        "def patch():\n    S.d = lambda self: 2", "patch()"],
    "a bound class method": [
        "class C:\n    @classmethod\n    def cm(cls):\n        return 1\n"
        "bm = C.cm\nbi = C().cm\nhandlers = {'k': C.cm}", "C.cm = classmethod(lambda cls: 2)"],
    "names for another's class and method": [
        "class C:\n    class Inner:\n        pass\n    def meth(self):\n        return 1\n"
        "H = C.Inner\nx = H()\nm = C.meth",
        "C.Inner = type('Inner', (), {})\nC.meth = lambda self: 2"],
    "a nested class replaced": [
        "class Outer:\n    class Inner:\n        pass\nx = Outer.Inner()\ny = [Outer.Inner]",
        "Outer.Inner = type('Inner', (), {})"],
}  # fmt: skip


@pytest.mark.parametrize("sweep", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_definitions_referring_to_each_other_restore(shell, case, sweep):
    live, back = restored(shell, CASES[case], sweep)
    assert back == live
    emptied(shell)


def in_two_kernels(shell, cells: list[str]) -> None:
    """The first cell journaled; then, as a new kernel does, the namespace restored and the
    second cell run; then the journal restored into an emptied namespace (the rule alone
    deciding what is saved: no sweep)."""
    emptied(shell)
    with tempfile.TemporaryDirectory() as folder:
        source = str(Path(folder) / "nb.ipynb")
        for code in cells:
            rt = Runtime(source)
            snaps = Snapshots(shell, rt)
            snaps.sweep.bytes, snaps.sweep.seconds = 0, math.inf  # the rule alone
            if code is cells[1]:  # a new kernel: the namespace restored, then the change
                emptied(shell)
                assert not snaps.restore().skipped
            rt.begin_cell(None, code)
            assert shell.run_cell(code, store_history=False, silent=True).success
            snaps.after_cell(code, True)
            rt.end_cell("ok", None)
            rt.close()
        emptied(shell)
        rt = Runtime(source)
        assert not Snapshots(shell, rt).restore().skipped
        rt.close()


def test_a_name_an_attribute_gives_is_watched_after_a_restore(shell):
    """Restored, a payload's names are all watched until its next walk: ``S.d = f`` in the
    next kernel saves ``bm`` again (else its payload named what ``S.d`` gives by then)."""
    cells = ["class S:\n    def d(self):\n        return 1\nbm = S().d", "S.d = lambda self: 2"]
    in_two_kernels(shell, cells)
    assert shell.user_ns["bm"]() == 1 and shell.user_ns["S"]().d() == 2
    emptied(shell)


def test_names_for_definitions_restore_as_those_definitions(shell):
    """``bm = C.cm`` pickled by pickle's own reduce while ``C.cm`` gives it (helper-112 F3:
    its function was copied), ``H = C.Inner`` and ``m = C.meth`` as the names they are
    (F6: copies, so ``isinstance(H(), H)`` was False)."""
    restored(shell, ["class C:\n    class Inner:\n        pass\n    def meth(self):\n"
                     "        return 1\n    @classmethod\n    def cm(cls):\n        return 2\n"
                     "bm = C.cm\nH = C.Inner\nm = C.meth\nx = H()"])  # fmt: skip
    ns = shell.user_ns
    assert ns["bm"].__func__ is vars(ns["C"])["cm"].__func__ and ns["bm"].__self__ is ns["C"]
    assert ns["H"] is ns["C"].Inner and type(ns["x"]) is ns["H"] and ns["m"] is ns["C"].meth
    emptied(shell)


def test_a_circle_made_through_a_variable_the_cell_does_not_walk(shell):
    """``A.fn = held[0]`` names neither ``f`` nor what it holds: ``f``, which names ``A``,
    is walked once the two would name each other, and saved with ``A``."""
    live, back = restored(shell, [C.format("A") + "def f(x=A):\n    return x\nheld = [f]",
                                  "A.fn = held[0]"])  # fmt: skip
    assert back == live
    ns = shell.user_ns
    assert ns["A"].fn is ns["f"] and ns["f"]() is ns["A"]
    emptied(shell)


def test_a_circle_restored_then_changed_on_one_side_is_saved_whole(shell):
    """Restored from one payload, what each names is read by a walk: a later cell changing
    ``A`` alone saves ``f`` with it again (else ``f``'s old payload held a copy of ``A``)."""
    cells = [C.format("A") + "def f(x=A):\n    return x\nA.fn = f", "A.x = 1"]
    in_two_kernels(shell, cells)
    ns = shell.user_ns
    assert ns["A"].fn is ns["f"] and ns["f"]() is ns["A"] and ns["A"].x == 1
    emptied(shell)


def test_a_circle_through_a_name_not_walked_walks_it(shell):
    """What each names is read from the last walk for a name not walked this cell: one in a
    circle with one walked is walked then, and what it names now decides."""
    emptied(shell)
    with tempfile.TemporaryDirectory() as folder:
        rt = Runtime(str(Path(folder) / "nb.ipynb"))
        snaps = Snapshots(shell, rt)
        code = C.format("A") + "def f():\n    return 1"
        rt.begin_cell(None, code)
        assert shell.run_cell(code, store_history=False, silent=True).success
        snaps.after_cell(code, True)
        rt.end_cell("ok", None)
        ns = shell.user_ns
        # What ``f``'s last walk said it names (as a payload naming ``A`` by a part no walk
        # keys would: none does, a function's parts are keyed, and a class's name walked).
        snaps.known["f"].deps = frozenset({"A"})
        ns["A"].fn = ns["f"]  # (outside a cell: only A is walked below)
        shares = snaps._sharing(ns, {"A"}, None, False)
        rt.close()
    # Walked, ``f`` says what it names now: nothing, so no circle (and nothing tied).
    assert "f" in shares and not shares["A"] & shares["f"]
    emptied(shell)


def test_a_watch_ends_once_its_value_no_longer_names_what_it_watched(shell):
    """A bound method saved by its function (its class holds another by now) watches
    nothing: helper-113 F1, every later cell touching ``S`` walked all the callbacks."""
    emptied(shell)
    with tempfile.TemporaryDirectory() as folder:
        rt = Runtime(str(Path(folder) / "nb.ipynb"))
        snaps = Snapshots(shell, rt)
        snaps.sweep.bytes, snaps.sweep.seconds = 0, math.inf  # the rule alone
        for code in ["class S:\n    def d(self):\n        return 1\n"
                     "objs = [S() for _ in range(3)]\ncb0, cb1, cb2 = (o.d for o in objs)",
                     "S.d = lambda self: 2", "S.count = 1"]:  # fmt: skip
            rt.begin_cell(None, code)
            assert shell.run_cell(code, store_history=False, silent=True).success
            snaps.after_cell(code, True)
            rt.end_cell("ok", None)
            walked = set(snaps._found.keys)
        rt.close()
    assert not walked & {"cb0", "cb1", "cb2"}, walked
    assert not any(snaps.known[n].watch for n in ("cb0", "cb1", "cb2"))
    emptied(shell)
