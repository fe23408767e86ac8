"""Change detection and restore, property-based, at the snapshot layer (no kernel).

A real IPython ``InteractiveShell`` runs the cells; ``Snapshots`` saves after each one
into a real journal with the safety sweep off, so what is saved is what the detection
rule found. Random object graphs (lists, dicts, tuples, sets, frozensets, arrays,
frames, instances of a notebook class) are shared across variables; random in-place
mutations go through random aliases, directly or through a notebook function, a
closure, a bound method or a helper module's global; then the namespace is emptied and
restored from the journal, and every value and every identity relation must equal the
live namespace's.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import re
import shutil
import sys
import tempfile
import time
import types
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from durable_nb import codec
from durable_nb.runtime import Runtime
from durable_nb.snapshot import SWEEP_BYTES, SWEEP_NAMES, Snapshots
from durable_nb.sweep import SWEEP_REST, SWEEP_SECONDS

pytestmark = pytest.mark.unit

SETUP = """
import numpy as np
import pandas as pd

class Node:
    def __init__(self, **attrs):
        self.__dict__.update(attrs)

    def poke(self, op, value):
        _mutate(self.target, op, value)

def _mutate(target, op, value):
    if op == "append":
        target.append(value)
    elif op == "setitem":
        target["k"] = value
    elif op == "add":
        target.add(value)
    elif op == "bump":
        target[0] = target[0] + 1
    elif op == "cell":
        target.iloc[0, 0] = target.iloc[0, 0] + 1
    elif op == "attr":
        target.attr = value

def _bind(target, op, value):
    def go():
        _mutate(target, op, value)
    return go
"""
HELPER = """
HELD = {}

def poke(key, op, value):
    from __main__ import _mutate
    _mutate(HELD[key], op, value)
"""
OPS = {list: "append", dict: "setitem", set: "add", np.ndarray: "bump", pd.DataFrame: "cell"}


@pytest.fixture(scope="module")
def shell():
    shell = InteractiveShell.instance()
    folder = Path(tempfile.mkdtemp(prefix="dnb-props-"))
    helper = f"dnb_helper_{uuid.uuid4().hex[:8]}"
    (folder / f"{helper}.py").write_text(HELPER)
    sys.path.insert(0, str(folder))
    shell.helper = helper
    yield shell
    sys.path.remove(str(folder))
    shutil.rmtree(folder, ignore_errors=True)


class Notebook:
    """A journal, a ``Snapshots`` and the shell's cells, as the extension wires them."""

    def __init__(self, shell, folder: Path, sweep: bool = False) -> None:
        self.shell, self.source = shell, str(folder / "nb.ipynb")
        self.rt = Runtime(self.source)
        self.snaps = Snapshots(shell, self.rt)
        # Without the sweep the detection rule alone decides what is saved.
        self.snaps.sweep.bytes = SWEEP_BYTES if sweep else 0
        self.snaps.sweep.seconds = math.inf  # every cell checks sweep.names (sweep.py)

    def run(self, code: str, shown: bool = False) -> None:
        """``shown``: the cell's value is displayed, and kept in IPython's output history."""
        self.rt.begin_cell(None, code)
        result = self.shell.run_cell(code, store_history=shown, silent=not shown)
        ok = result.success
        self.snaps.after_cell(code, ok)
        self.rt.end_cell("ok" if ok else "error", None)
        assert ok, f"{code}\n{result.error_in_exec or result.error_before_exec}"

    def close(self) -> None:
        self.rt.close()


def user_names(shell) -> list[str]:
    hidden = shell.user_ns_hidden
    return sorted(
        n for n in shell.user_ns if type(n) is str and n not in hidden and not n.startswith("_")
    )


def describe(ns: dict, names: list[str]) -> list:
    """Every value, with each object's identity as the order it is first met in."""
    index: dict[int, int] = {}
    keep: list = []  # what was indexed stays alive, so its id is not reused

    def d(o):
        t = type(o)
        if o is None or t in (int, float, str, bool):
            return repr(o)
        if id(o) in index:
            return f"@{index[id(o)]}"
        index[id(o)] = me = len(index)
        keep.append(o)
        if t in (list, tuple):
            return (t.__name__, me, [d(x) for x in o])
        if t is dict:
            return ("dict", me, [(k, d(v)) for k, v in o.items()])
        if t in (set, frozenset):
            return (t.__name__, me, sorted(map(canon, o)))
        if t is np.ndarray:
            return ("ndarray", me, o.dtype.str, o.shape, o.tobytes())
        if t is pd.DataFrame:
            return ("frame", me, list(o.columns), o.to_numpy().tolist())
        if t.__name__ == "Node":
            attrs = [(k, d(v)) for k, v in sorted(vars(o).items())]
            return ("Node", me, t is ns.get("Node"), attrs)
        if t.__module__ == "typing" or t is types.GenericAlias:  # what an annotation holds
            parts = [getattr(o, a, None) for a in ("__args__", "__metadata__")]
            origin = repr(getattr(o, "__origin__", o))
            return ("alias", me, origin, [[d(x) for x in p or ()] for p in parts])
        if t is dataclasses.InitVar:
            return ("InitVar", me, d(o.type))
        if callable(o):
            return ("callable", me)
        return (t.__name__, me, repr(o))

    return [(n, d(ns[n])) for n in names if not isinstance(ns[n], type(sys))]


def canon(o) -> str:
    """A set member's text, the same whatever its hash: a frozenset's repr follows the
    order of its members' hashes, and ``hash(None)`` is an address on Python 3.11."""
    if type(o) in (set, frozenset):
        return f"{type(o).__name__}({sorted(map(canon, o))})"
    if type(o) is tuple:
        return f"({', '.join(map(canon, o))},)"
    return repr(o)


# -- random graphs, expressed as the code that builds them -------------------------------

atoms = st.one_of(st.integers(-5, 5), st.sampled_from(["a", "b", "x"]), st.none())


@st.composite
def programs(draw):
    """The code of a build cell: ``o0..oN`` built from atoms and earlier objects, some
    of them bound to the variables ``v0..vK`` (any object may be held by several)."""
    lines, kinds, hashable = [], [], set()

    def pick(only_hashable=False):
        pool = [i for i in range(len(kinds)) if not only_hashable or i in hashable]
        if pool and draw(st.booleans()):
            return f"o{draw(st.sampled_from(pool))}"
        return repr(draw(atoms))

    for i in range(draw(st.integers(2, 9))):
        kind = draw(st.sampled_from(
            ["list", "dict", "tuple", "set", "frozenset", "array", "frame", "node"]))  # fmt: skip
        if kind == "list":
            expr = f"[{', '.join(pick() for _ in range(draw(st.integers(0, 3))))}]"
        elif kind == "dict":
            items = [f"'{k}': {pick()}" for k in draw(st.sets(st.sampled_from("pqrs"), max_size=3))]
            expr = "{" + ", ".join(items) + "}"
        elif kind == "tuple":
            elems = [pick() for _ in range(draw(st.integers(1, 3)))]
            expr = f"({', '.join(elems)},)"
            if all(not e.startswith("o") or int(e[1:]) in hashable for e in elems):
                hashable.add(i)
        elif kind in ("set", "frozenset"):
            elems = ", ".join(pick(only_hashable=True) for _ in range(draw(st.integers(1, 3))))
            expr = f"{kind}([{elems}])"
            if kind == "frozenset":
                hashable.add(i)
        elif kind == "array":
            expr = f"np.arange({draw(st.integers(1, 4))}, dtype=np.int64)"
        elif kind == "frame":
            expr = f"pd.DataFrame({{'c': [{draw(st.integers(0, 9))}, 1]}})"
        else:
            attrs = ", ".join(f"{a}={pick()}" for a in draw(st.sets(st.sampled_from("abt"))))
            expr = f"Node({attrs})"
        lines.append(f"o{i} = {expr}")
        kinds.append(kind)
    n = len(kinds)
    held = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=6))
    lines += [f"v{j} = o{i}" for j, i in enumerate(held)]
    lines.append("del " + ", ".join(f"o{i}" for i in range(n)))
    return "\n".join(lines), len(held)


def paths(ns: dict, names: list[str]) -> list[tuple[str, object]]:
    """Every (expression, object) reachable from the variables by index, key or attribute."""
    out, seen = [], set()
    todo = [(n, ns[n]) for n in names]
    while todo:
        expr, o = todo.pop(0)
        out.append((expr, o))
        if id(o) in seen or len(out) > 200:
            continue
        seen.add(id(o))
        if type(o) in (list, tuple):
            todo += [(f"{expr}[{i}]", x) for i, x in enumerate(o)]
        elif type(o) is dict:
            todo += [(f"{expr}[{k!r}]", x) for k, x in o.items()]
        elif type(o).__name__ == "Node":
            todo += [(f"{expr}.{k}", x) for k, x in vars(o).items()]
    return out


@st.composite
def mutation(draw, ns: dict, names: list[str], n: int, helper: str):
    """(setup cell, mutating cell): one in-place change through a random alias and channel."""
    targets = [(e, o) for e, o in paths(ns, names) if type(o) in OPS or type(o).__name__ == "Node"]
    if not targets:
        return "", "pass"
    expr, obj = draw(st.sampled_from(targets))
    op = OPS.get(type(obj), "attr")
    value = repr(draw(atoms))
    if op == "append" and draw(st.booleans()):  # a new alias: the appended object is shared
        others = [e for e, o in paths(ns, names) if not isinstance(o, int | str | type(None))]
        value = draw(st.sampled_from(others)) if others else value
    channel = draw(st.sampled_from(["direct", "function", "closure", "method", "module"]))
    if channel == "direct":
        return "", f"_mutate({expr}, {op!r}, {value})"
    if channel == "function":
        return f"def f{n}():\n    _mutate({expr}, {op!r}, {value})", f"f{n}()"
    if channel == "closure":
        return f"g{n} = _bind({expr}, {op!r}, {value})", f"g{n}()"
    if channel == "method":
        return f"h{n} = Node(target={expr}).poke", f"h{n}({op!r}, {value})"
    return (f"import {helper}\n{helper}.HELD[{n}] = {expr}",
            f"{helper}.poke({n}, {op!r}, {value})")  # fmt: skip


def fresh_namespace(shell) -> None:
    for name in user_names(shell):
        del shell.user_ns[name]
    shell.run_cell("pass", store_history=False, silent=True)


SLOW = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=8, deadline=None, suppress_health_check=SLOW)  # the unit layer: < 1 min
@given(data=st.data())
def test_restore_equals_the_live_namespace_after_mutations_through_aliases(shell, data):
    with tempfile.TemporaryDirectory() as folder:
        nb = built(shell, data, Path(folder))
        mutate(shell, nb, data, data.draw(st.integers(1, 5)))
        live, back = restored(shell, nb)
        assert back == live


@settings(max_examples=6, deadline=None, suppress_health_check=SLOW)
@given(data=st.data())
def test_mutations_through_aliases_after_a_restore_are_saved(shell, data):
    """A restore does not walk what it loaded (a payload loaded for one variable alone
    made objects nothing else holds): the cells after it still find every change."""
    with tempfile.TemporaryDirectory() as folder:
        nb = built(shell, data, Path(folder))
        names = user_names(shell)
        live = describe(shell.user_ns, names)
        nb, _ = reopened(shell, nb)  # now the restored one, by the Snapshots that runs on
        assert describe(shell.user_ns, names) == live
        mutate(shell, nb, data, data.draw(st.integers(1, 4)))
        live, back = restored(shell, nb)
        assert back == live


def built(shell, data, folder: Path) -> Notebook:
    """An empty namespace, then the setup cell and a random build cell, journaled."""
    fresh_namespace(shell)
    program, _ = data.draw(programs())
    nb = Notebook(shell, folder)
    # With the sweep on, a list, dict or set of immutable objects is pickled from the
    # copy its unchanged.Same read, alone or in a group: identity must survive that too.
    nb.snaps.sweep.bytes = data.draw(st.sampled_from([0, SWEEP_BYTES]))
    nb.run(SETUP)
    nb.run(program)
    return nb


def mutate(shell, nb: Notebook, data, cells: int) -> None:
    """Run ``cells`` random in-place changes through random aliases and channels."""
    for n in range(cells):
        names = [v for v in user_names(shell) if re.fullmatch(r"v\d+", v)]
        setup, cell = data.draw(mutation(shell.user_ns, names, n, shell.helper))
        if setup:
            nb.run(setup)
        nb.run(cell)
        if data.draw(st.booleans()):  # a cell naming no variable: none walked (but the sweep's)
            nb.run(data.draw(st.sampled_from(["pass", "print(1)", "len([])"])))
            assert nb.snaps.sweep.bytes or not nb.snaps._found.keys


def restored(shell, nb: Notebook) -> tuple[list, list]:
    """Close ``nb``, restore its journal into an empty namespace: (live, restored)."""
    names = user_names(shell)
    live = describe(shell.user_ns, names)
    restore_anew(shell, nb)
    return live, describe(shell.user_ns, names)


def restore_anew(shell, nb: Notebook):
    """Close ``nb``, restore its journal into an empty namespace, skipping nothing: the
    restore's report."""
    nb, report = reopened(shell, nb)
    nb.close()
    return report


def reopened(shell, nb: Notebook):
    """Close ``nb``, restore its journal into an empty namespace, skipping nothing: the
    notebook that restored it, still open (as a new kernel's, whose cells come next),
    and the restore's report."""
    nb.close()
    fresh_namespace(shell)
    nb = Notebook(shell, Path(nb.source).parent)
    report = nb.snaps.restore()
    if report.skipped:
        nb.close()
    assert not report.skipped, report
    return nb, report


def round_trip(shell, cells: list[str]) -> tuple[list, list]:
    """Run ``cells``, restore into an empty namespace: (live, restored) descriptions."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        for code in [SETUP, *cells]:
            nb.run(code)
        return restored(shell, nb)


def test_equal_values_saved_apart_come_back_as_distinct_objects(shell):
    live, back = round_trip(shell, ["a = []\nb = []\nx = [1]\np = [x]\ny = [1]\nq = [y]"])
    assert back == live


def test_a_closure_a_bound_method_and_a_helper_module_change_what_they_hold(shell):
    live, back = round_trip(shell, [
        f"import {shell.helper} as hm\nacc, box, held = [], {{}}, set()\n"
        "add = _bind(acc, 'append', 1)\nput = Node(target=box).poke\nhm.HELD[0] = held",
        "add()", "put('setitem', 2)", "hm.poke(0, 'add', 3)",
    ])  # fmt: skip
    assert back == live
    assert dict(live)["acc"][2] == ["1"] and dict(live)["held"][2] == ["3"]


def test_classes_made_by_a_bases_init_subclass_are_restored_as_they_were(shell):
    """A base's ``__init_subclass__`` keeping a registry of names and setting what its
    keywords said: restored, the classes are what the notebook made (keywords kept, the
    registry not grown, instances of the restored class); it was dill's, which ran it
    again on names not restored yet: the classes and their instances were skipped."""
    live, back = round_trip(shell, [
        "class Base:\n    registry = []\n    def __init_subclass__(cls, tag=None, **kw):\n"
        "        super().__init_subclass__(**kw)\n        cls.tag = tag\n"
        "        Base.registry.append(cls.__name__)\n"
        "class Leaf(Base, tag='x'):\n    def __init__(self):\n        self.parts = [self.tag]\n"
        "    def __repr__(self):\n        return f'Leaf({self.parts}, {type(self).tag})'\n"
        "leaves = [Leaf(), Leaf()]",
        "leaves.append(Leaf())",
    ])  # fmt: skip
    assert back == live
    ns = shell.user_ns
    assert ns["Base"].registry == ["Leaf"] and ns["Leaf"].tag == "x"
    assert ns["Leaf"].__bases__ == (ns["Base"],) and type(ns["leaves"][2]) is ns["Leaf"]


def test_a_registry_of_classes_kept_by_their_base_is_restored(shell):
    """A plugin registry: the base's ``__init_subclass__`` keeps each subclass (the class
    itself) in a dict of the base's. Saving the base reached its subclasses half-made:
    the base, its subclasses and their instances were skipped at restore."""
    live, back = round_trip(shell, [
        "class Plugin:\n    by_name = {}\n    def __init_subclass__(cls, name=None, **kw):\n"
        "        super().__init_subclass__(**kw)\n"
        "        Plugin.by_name[name or cls.__name__] = cls\n"
        "    def __repr__(self):\n        return f'{type(self).__name__}({self.run()})'\n"
        "class A(Plugin, name='a'):\n    def run(self):\n        return 'A'\n"
        "class B(A):\n    def run(self):\n        return 'B' + super().run()\n"
        "plugins = [A(), B()]\nPlugin.everyone = [Plugin, A, B]",
    ])  # fmt: skip
    assert back == live
    ns = shell.user_ns
    assert ns["Plugin"].by_name == {"a": ns["A"], "B": ns["B"]}
    assert ns["Plugin"].everyone == [ns["Plugin"], ns["A"], ns["B"]]
    assert [type(p) for p in ns["plugins"]] == [ns["A"], ns["B"]] and ns["B"].__mro__[2] is ns[
        "Plugin"
    ]


@pytest.mark.parametrize("shared", [False, True])
def test_a_notebook_class_property_is_read_no_more_than_pickling_needs(shell, shared):
    """helper-54 F8: a ``__class__`` property (a proxy's, a Mock's) is user code; our
    isinstance checks read it (7-11 times a save, pickle.dumps twice): type() instead."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run("class Sneaky:\n    calls = 0\n    @property\n    def __class__(self):\n"
               "        Sneaky.calls += 1\n        return Sneaky\n"
               f"s = Sneaky()\nitems = [s, 1]\n{'' if shared else 'del s'}")  # fmt: skip
        sneaky = shell.user_ns["Sneaky"]
        sneaky.calls = 0
        pickle.dumps(shell.user_ns["items"])
        once, sneaky.calls = sneaky.calls, 0
        nb.run("items.append(2)")
        saves, back = sneaky.calls, restored(shell, nb)[1]
    # Each variable's plain pickle (items, and s when it is kept), then their group's.
    assert once > 0 and saves <= (3 if shared else 1) * once
    assert "items" in dict(back)


def test_notebook_classes_instances_and_reduce_calls(shell):
    """Instances of notebook classes (a dataclass, slots, a nested class, a class rebound
    since) sharing objects through their attributes come back with the restored classes
    and every identity; a user's ``__reduce__`` runs once per save of its variable, and
    not for a cell that does not touch it."""
    hm = sys.modules.get(shell.helper) or __import__(shell.helper)
    cells = [
        f"import {shell.helper} as hm\nfrom dataclasses import dataclass, field\n"
        "@dataclass\nclass P:\n    x: int\n    tags: list = field(default_factory=list)\n"
        "class S:\n    __slots__ = ('a', 'b')\n    def __init__(self, a, b):\n"
        "        self.a, self.b = a, b\n"
        "class Outer:\n    class Inner:\n        def __init__(self, t):\n            self.t = t\n"
        "class Old:\n    def __init__(self):\n        self.v = [0]\n"
        "class Noisy:\n    def __reduce__(self):\n"
        "        hm.HELD['reduce'] = hm.HELD.get('reduce', 0) + 1\n        return (Noisy, ())\n"
        "shared = [1]\nps = [P(i, shared) for i in range(3)]\n"
        "ss = [S(shared, i) for i in range(2)]\n"
        "inner = [Outer.Inner(shared)]\nolds = [Old()]\nnoisy = [Noisy()]",
        "Old = P",  # olds[0]'s class is no longer bound to its name
        "y = 1",
        "shared.append(2)",
        "ps[0].tags.append(3)",
        "noisy.append(1)",
    ]
    hm.HELD.pop("reduce", None)
    calls = []
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        for code in [SETUP, *cells]:
            nb.run(code)
            calls.append(hm.HELD.get("reduce", 0))
        assert calls == [0, 1, 1, 1, 1, 1, 2]  # the build cell, then noisy.append only
        restore_anew(shell, nb)
    ns = shell.user_ns
    shared = ns["shared"]
    assert shared == [1, 2, 3] and [p.x for p in ns["ps"]] == [0, 1, 2]
    assert [s.b for s in ns["ss"]] == [0, 1]
    assert all(p.tags is shared for p in ns["ps"]) and all(s.a is shared for s in ns["ss"])
    assert ns["inner"][0].t is shared
    assert type(ns["inner"][0]) is ns["Outer"].Inner  # by name, in its group's payload too
    assert type(ns["ps"][0]) is ns["P"] and type(ns["ss"][0]) is ns["S"]
    assert type(ns["olds"][0]).__name__ == "Old" and ns["olds"][0].v == [0]
    assert type(ns["noisy"][0]) is ns["Noisy"]


def test_a_stream_in_blob_files_is_signed_from_memory_and_restores(shell):
    """A pickle past the blob threshold goes to chunk files and is signed from the stream
    in memory (not read back): the restore reads the files and verifies that signature."""
    cells = ["big = ['x' * 100 + str(i) for i in range(12_000)]", "big.append(1)"]  # 1.3 MB
    live, back = round_trip(shell, cells)
    assert back == live
    assert len(dict(back)["big"][2]) == 12_001


@st.composite
def one_variable_cells(draw, ns: dict, names: list[str], n: int) -> str:
    """A cell that reads one variable only (no function, no other name), or one that
    ties two: a new alias of an inner object, or an object of one put into another."""
    by_root = {v: [(e, o) for e, o in paths(ns, [v]) if type(o) in (list, dict)] for v in names}
    roots = [v for v in names if by_root[v]]
    if not roots:
        return "pass"
    v = draw(st.sampled_from(roots))
    expr, obj = draw(st.sampled_from(by_root[v]))
    inner = [e for e, _ in paths(ns, [v])]
    kind = draw(st.sampled_from(["alias inside", "change", "take", "cross", "through"]))
    if kind == "take":
        return f"x{n} = {expr}"
    if kind == "through":  # a change through an alias taken earlier
        xs = [x for x in names if x.startswith("x") and type(ns[x]) is list]
        if xs:
            return f"{draw(st.sampled_from(xs))}.append({n})"
    other = draw(st.sampled_from(names))
    if kind == "cross":
        value = draw(st.sampled_from([e for e, _ in paths(ns, [other])]))
    elif kind == "alias inside":
        value = draw(st.sampled_from(inner))
    else:
        value = repr(n)
    return f"{expr}.append({value})" if type(obj) is list else f"{expr}['p'] = {value}"


@settings(max_examples=6, deadline=None, suppress_health_check=SLOW)
@given(data=st.data())
def test_a_variable_alone_is_walked_again_once_a_cell_ties_it_to_another(shell, data):
    """Plain data walked once and found alone (no object in it held by anything else) is
    not walked again by a cell that reads it alone (codec.MEMO_OBJECTS = 0: every value
    here takes that path); aliases made inside it by such a cell, then taken out by a
    later cell or tied to another variable, still group the variables and save changes."""
    memo = codec.MEMO_OBJECTS
    codec.MEMO_OBJECTS = 0
    try:
        with tempfile.TemporaryDirectory() as folder:
            fresh_namespace(shell)
            nb = Notebook(shell, Path(folder))
            nb.run(SETUP)
            # Variables of plain data, each alone: lists and dicts of lists and atoms.
            inner = st.lists(st.integers(0, 9), max_size=2).map(repr)
            value = st.one_of(
                st.lists(inner, min_size=1, max_size=3).map(lambda xs: f"[{', '.join(xs)}]"),
                st.lists(inner, min_size=1, max_size=2).map(
                    lambda xs: "{" + ", ".join(f"'k{i}': {x}" for i, x in enumerate(xs)) + "}"
                ),
            )
            values = data.draw(st.lists(value, min_size=2, max_size=3))
            nb.run("\n".join(f"v{i} = {v}" for i, v in enumerate(values)))
            for n in range(data.draw(st.integers(2, 6))):
                names = [v for v in user_names(shell) if re.fullmatch(r"[vx]\d+", v)]
                nb.run(data.draw(one_variable_cells(shell.user_ns, names, n)))
            live, back = restored(shell, nb)
            assert back == live
    finally:
        codec.MEMO_OBJECTS = memo


def test_objects_of_a_variable_alone_taken_out_by_a_later_cell(shell):
    """Each way an object of a variable walked alone leaves it: an alias made inside it by
    a cell reading it alone, then taken by a new variable; an object put into another
    variable; shown (IPython's history keeps it); put in a module's state through a
    builtin. A later change through the new holder is saved, and identity comes back."""
    # The shown value is taken from ``Out``, not ``_``: IPython leaves ``_`` as it was
    # while builtins has one (ipykernel's displayhook sets it) or ``_``, ``__``, ``___``
    # were set otherwise, which earlier tests in the same process may do.
    memo = codec.MEMO_OBJECTS
    codec.MEMO_OBJECTS = 0  # small values take the path of big ones
    hm = shell.helper
    fresh_namespace(shell)
    try:
        with tempfile.TemporaryDirectory() as folder:
            nb = Notebook(shell, Path(folder))
            nb.run(
                "a = [[0], [1]]\nb = [[2], [3]]\nc = [[4], [5]]\nd = [[6], [7]]\ne = []\n"
                "w = []\ndef g():\n    w.append(9)\nh = [[0], g]"
            )
            nb.run("h[1]()")  # code held in data: walked, so the names it uses are checked
            for code in ["a.append(a[0])", "x = a[0]", "x.append(9)",  # alias inside, taken
                         "e.append(b[1])", "e[0].append(9)",  # put into another
                         "print(len(a), sum(len(r) for r in d))"]:  # fmt: skip
                nb.run(code)
            nb.run("c[1]", shown=True)
            nb.run("y = Out[max(Out)]\ny.append(9)")
            nb.run("f = [[i] for i in range(2)]")  # new, made from nothing another holds
            nb.run("g = f[0]\ng.append(9)")
            nb.run("q = [[1]]")
            nb.run("q", shown=True)  # the old list stays in the history...
            nb.run("q = q.copy()")  # ...so the rebound one shares its list with it
            nb.run("p = Out[max(Out)]\np[0].append(9)")
            nb.run("m = [[3]]")
            nb.snaps.ignore(["m"])
            nb.run("m[0]", shown=True)
            nb.snaps.ignore(["m"], remove=True)  # new to the snapshots, not made by the cell
            nb.run("m.append(1)")
            nb.run("o = Out[max(Out)]\no.append(9)")
            nb.run(f"__import__({hm!r}).HELD['kept'] = d[1]")
            nb.run(f"import {hm}\nz = {hm}.HELD['kept']\nz.append(9)")
            live, back = restored(shell, nb)
    finally:
        codec.MEMO_OBJECTS = memo
    assert back == live
    ns = shell.user_ns
    assert ns["a"][0] is ns["x"] is ns["a"][2] and ns["x"] == [0, 9]
    assert ns["e"][0] is ns["b"][1] == [3, 9]
    assert ns["y"] is ns["c"][1] == [5, 9] and ns["z"] is ns["d"][1] == [7, 9]
    assert ns["w"] == [9]
    assert ns["f"][0] is ns["g"] == [0, 9] and ns["q"][0] is ns["p"][0] == [1, 9]
    assert ns["m"][0] is ns["o"] == [3, 9]


def test_the_safety_net_checks_many_small_variables_in_turn(shell):
    """Below SWEEP_BYTES saved variables are re-checked after each cell, SWEEP_NAMES a
    cell in turn (all of 1,000 small ones took 21 ms a cell): a change made outside any
    cell to one no cell names is saved within a few cells."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        n = SWEEP_NAMES * 2 + 1
        nb.run("\n".join(f"s{i} = [{i}]" for i in range(n)))
        shell.user_ns[f"s{n - 1}"].append("outside")  # as a thread would
        for _ in range(3):
            nb.run("y = 1")
        live, back = restored(shell, nb)
    assert back == live and dict(back)[f"s{n - 1}"][2] == [repr(n - 1), "'outside'"]


def test_a_sweep_narrowed_by_slow_cells_still_saves_a_change_made_outside(shell):
    """Each cell's snapshot seen as slow (a clock that jumps): the sweep checks one saved
    variable a cell, in turn; a change no cell names is saved once its turn comes."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        ticks = iter(range(1 << 30))  # one second a call: every cell is slow
        nb.snaps.sweep.clock, nb.snaps.sweep.seconds = lambda: float(next(ticks)), 1e-3
        n = 6  # lists of lists: no unchanged.Same vouches for them, so each is checked
        nb.run("\n".join(f"s{i} = [[{i}]]" for i in range(n)))
        for _ in range(3):
            nb.run("y = 1")  # the window goes down to one
        shell.user_ns["s3"].append("outside")  # as a thread would
        for _ in range(n * (SWEEP_REST + 1)):  # (each check slow: cells rest after it)
            nb.run("y = 1")
        assert nb.snaps.sweep.window == 1, f"saved: {sorted(nb.snaps.known)}"
        live, back = restored(shell, nb)
    assert back == live and "'outside'" in dict(back)["s3"][2]


def test_the_sweep_checks_more_after_a_cell_that_ran_long(shell):
    """The sweep's time is a share of the wall time since its last checks (sweep.py): the
    same checks (a clock that says 0.2 ms each) narrow its window after a quick cell run
    at once, widen it after a cell of 0.2 s, or a quick one after a pause of 0.2 s."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        sweep = nb.snaps.sweep
        ticks = iter(range(1 << 30))
        sweep.clock, sweep.seconds = lambda: next(ticks) * 0.1e-3, SWEEP_SECONDS
        nb.run("\n".join(f"s{i} = [[{i}]]" for i in range(6)))  # (no Same: each is checked)
        windows = []
        for pause, cell in ((0, "y = 1"), (0, "import time\ntime.sleep(0.2)"), (0.2, "y = 1")):
            time.sleep(pause)  # (a person reading the last cell's output)
            sweep.window, sweep._rest = 4, 0
            nb.run(cell)
            windows.append(sweep.window)
    assert windows == [2, 8, 8]


ANNOTATIONS = [
    ("from typing import Annotated\nchecks = ['positive']\nPosInt = Annotated[int, checks]",
     "checks.append('even')"),
    ("from typing import Literal\nclass Node:\n    pass\ntag = Node()\ntag.n = 'a'\n"
     "L = Literal[tag]", "tag.n = 'b'"),
    ("import dataclasses\nopts = [1]\niv = dataclasses.InitVar(opts)", "opts.append(2)"),
    ("schema = {'x': list[dict]}\nrow = schema['x']", "schema['y'] = row"),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "change"), ANNOTATIONS)
def test_data_held_by_a_type_annotation_is_seen(shell, setup, change):
    """An annotation is walked, not keyed (dataclasses naming ``Optional[int]`` are not
    tied by it), yet what it holds is data: a change through another variable is saved
    in both, and identity survives (helper-52 F1)."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run(setup)
        nb.run(change)
        live, back = restored(shell, nb)
    assert back == live


def test_dataclasses_naming_the_same_annotations_are_saved_apart(shell):
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run(
            "from dataclasses import dataclass, field\nfrom typing import Optional\n"
            + "".join(f"@dataclass\nclass R{i}:\n    size: Optional[int] = 0\n"
                      "    tags: list = field(default_factory=list)\n" for i in range(3))
        )  # fmt: skip
        assert [nb.snaps.known[f"R{i}"].item for i in range(3)] == [None] * 3
        nb.run("R1.size = 5")
        live, back = restored(shell, nb)
    assert back == live


WIDGET = (
    "import ipywidgets as widgets\ndata = []\nw = widgets.IntSlider()\n"
    "w.observe(lambda change: data.append(change['new']), 'value')"
)


@pytest.mark.parametrize("sweep", ["all", "in turn"])
def test_a_widgets_callback_changes_a_variable_between_cells(shell, sweep):
    """A widget holds the kernel (its comm): recorded for recompute. While every saved
    variable is re-checked each cell, a cell naming it does not walk it again; when they
    are checked in turn, it is walked, and the callback it holds leads to ``data``."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.snaps.sweep.bytes, nb.snaps.sweep.names = SWEEP_BYTES, 0 if sweep == "in turn" else 32
        nb.run(WIDGET)
        assert nb.snaps.known["w"].state == "recompute"
        shell.user_ns["w"].value = 5  # a click: the callback runs between cells
        nb.run("w.description = 'x'")
        walked = "w" in nb.snaps._found.kernel
        shell.user_ns["w"].value = 7
        nb.run("w.description = 'y'")
        live, back = restored(shell, nb)
    assert walked == (sweep == "in turn")
    # The widget is made again by its cell (value 0); what its callback changed is saved.
    assert dict(live)["data"][2] == ["5", "7"] and dict(back)["data"] == dict(live)["data"]


def test_a_value_that_stops_holding_a_widget_is_saved_again(shell):
    """review3 R3-1: a dict recorded for recompute because it held a widget, which then
    drops it, is walked and saved again (not left to its first cell's recompute)."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run("import ipywidgets as widgets\npanel = {'slider': widgets.IntSlider(), 'rows': []}")
        assert nb.snaps.known["panel"].state == "recompute"
        nb.run("panel.pop('slider').close()\npanel['rows'].append(1)")
        nb.run("panel['rows'].append(2)")
        live, back = restored(shell, nb)
    assert dict(back)["panel"] == dict(live)["panel"] and shell.user_ns["panel"] == {"rows": [1, 2]}


@pytest.mark.parametrize("change", [
    "names.append('c')", "names[0] = 'A'", "conf['tol'] = -0.0", "conf['when'] = None",
    "conf['tol'] = conf.pop('tol')", "tags.discard('x')", "pairs[1] = (2, 'z')",
])  # fmt: skip
def test_the_sweep_tells_unchanged_lists_of_names_without_pickling_and_finds_changes(
    shell, monkeypatch, change
):
    """A saved list, dict or set of immutable objects that still holds the very objects it
    held is not pickled by the sweep (unchanged.Same); changed outside any cell (as a
    thread or a callback would), even to an equal length or an equal float, it is saved."""
    fresh_namespace(shell)
    pickled: list[object] = []
    encode_reach = codec.encode_reach
    monkeypatch.setattr(
        codec, "encode_reach", lambda v, ns: (pickled.append(v), encode_reach(v, ns))[1]
    )
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run("import datetime\nnames = ['a', 'b']\n"
               "conf = {'tol': 0.0, 'when': datetime.date(2026, 1, 2)}\n"
               "tags = {'x', 'y'}\npairs = [(1, 'x'), (2, 'y')]")  # fmt: skip
        assert all(nb.snaps.known[n].same is not None for n in ("names", "conf", "tags", "pairs"))
        pickled.clear()
        nb.run("y = 1")
        assert not any(  # (a Same pickles a copy of the value: an equal one)
            type(v) is type(shell.user_ns[n]) and v == shell.user_ns[n]
            for v in pickled
            for n in ("names", "conf", "tags", "pairs")
        )
        exec(change, shell.user_ns)  # outside any cell
        nb.run("y = 2")
        live, back = restored(shell, nb)
    assert back == live


@pytest.mark.parametrize("when", ["after", "undone"])
def test_a_thread_changing_a_value_while_the_sweep_pickles_it_is_saved(shell, monkeypatch, when):
    """review5 F1: another thread changes a saved dict while the sweep pickles it: right
    after the pickle, or changed before and undone after (the same items again). The
    journal's payload is what the sweep's ``Same`` vouches for, so a later sweep saves
    the change, and a restore equals the live namespace."""
    fresh_namespace(shell)
    encode_reach, armed = codec.encode_reach, []

    def racing(v, ns):  # the thread's turn, at a point the GIL may give it one
        live = shell.user_ns.get("status")
        if not (armed and type(v) is dict and v == live):
            return encode_reach(v, ns)
        armed.clear()
        if when == "after":
            got = encode_reach(v, ns)
            live["done"] = True
        else:
            live["done"] = True
            got = encode_reach(v, ns)
            live["done"] = False
        return got

    monkeypatch.setattr(codec, "encode_reach", racing)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run("status = {'done': False, 'n': 0}")
        nb.run("z = 1")
        shell.user_ns["status"]["n"] = 1  # outside any cell: the sweep pickles it again
        armed.append(1)
        nb.run("z = 2")
        assert not armed, "the sweep did not pickle status"
        for i in range(3, 5):
            nb.run(f"z = {i}")
        live, back = restored(shell, nb)
    assert back == live


def test_a_same_is_kept_for_small_values_only_and_none_outlives_the_cell(shell):
    """review5 F3: a ``Same`` keeps the items it read alive: a list of big strings emptied
    later would keep them. Only payloads the sweep would read get one, and only while a
    sweep runs (review6 F-C); the ones taken while pickling are dropped at the cell's end."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run(f"big = ['x' * {SWEEP_BYTES}, 'y']\nsmall = ['x', 'y']\nalias = small")
        known = nb.snaps.known
        assert known["big"].state == known["small"].state == "saved"
        assert known["big"].same is None
        assert nb.snaps._found.copies == {} and nb.snaps._found.plain == {}
        nb.run("two = ['a', 'b']")  # no sweep reads a Same beside big: none is taken
        assert known["two"].same is None
        nb.run("del big")
        nb.run("one = ['a', 'b']")
        assert known["one"].same is not None and known["one"].same.holds(shell.user_ns["one"])
        nb.close()


def test_a_failed_save_keeps_no_pickle_or_same(shell, monkeypatch):
    """review6 F-E: a save that fails (the disk full) steps the journal aside; the
    pickles and Sames taken for it go with it (a Same keeps the items it read alive)."""
    fresh_namespace(shell)

    def full(self, res, rows):
        raise OSError(28, "No space left on device")

    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        monkeypatch.setattr(Snapshots, "_store", full)
        nb.run("names = ['a', 'b']")
        assert not nb.rt.journaling
        assert nb.snaps._found.plain == {} and nb.snaps._found.copies == {}
        nb.close()


def test_a_group_is_pickled_from_what_its_sames_read_and_keeps_identity(shell):
    """Variables that share items (options made from dates) keep a Same each, their
    group's payload pickled from the copies the Sames read; a variable another one holds
    (``y = [x]``) is pickled itself, so ``y[0] is x`` after a restore, as ``a is b``."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run("import datetime\ndates = [datetime.date(2026, 1, d) for d in (1, 2)]\n"
               "options = [(str(d), d) for d in dates]\n"
               "x = ['a']\ny = [x, 1]\na = b = ['k']")  # fmt: skip
        known = nb.snaps.known
        assert known["dates"].item is not None and known["options"].item is not None
        assert known["dates"].same and known["options"].same
        assert known["x"].item is not None and known["x"].same is None
        assert known["a"].same and known["b"].same
        nb.run("z = 1")
        live, back = restored(shell, nb)
    assert back == live


def test_a_key_that_is_no_name_leaves_the_snapshots_working(shell):
    """``globals()[1] = 'one'`` made every later snapshot fail (the name pattern was
    matched against an int): the variables of the cells after it were not saved."""
    try:
        live, back = round_trip(shell, ["globals()[1] = 'one'\ny = [2]", "z = {'a': y}"])
    finally:
        shell.user_ns.pop(1, None)
    assert back == live and {"y", "z"} <= {name for name, *_ in live}


def test_naming_a_librarys_module_walks_nothing_the_notebooks_own_is_walked(shell):
    """``json.dumps(x)`` names ``json``: its record is the module's name and a library's
    module is not walked, so the cell changes nothing; a helper module of the notebook's
    is walked (what it holds may be a variable's)."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run(f"import json\nimport {shell.helper} as hm\nheld = set()\nhm.HELD[0] = held")
        nb.run("s = json.dumps([1])")
        assert "json" not in nb.snaps._found.keys and "s" in nb.snaps._found.keys
        nb.run("hm.poke(0, 'add', 3)")
        assert {"hm", "held"} <= nb.snaps._found.keys.keys()
        nb.run("json = 'rebound'")
        assert "json" in nb.snaps._found.keys
        live, back = restored(shell, nb)
    assert back == live and dict(back)["held"][2] == ["3"]


def test_a_name_the_shell_hid_is_saved_once_the_notebook_rebinds_it(shell):
    """IPython hides its ``open``: ``open = prices['Open']`` was never saved, and a
    restore silently gave IPython's ``open`` back."""
    theirs = shell.user_ns["open"]
    assert shell.user_ns_hidden["open"] is theirs
    fresh_namespace(shell)
    try:
        with tempfile.TemporaryDirectory() as folder:
            nb = Notebook(shell, Path(folder))
            nb.run("open = [1.5, 2.5]\nclose = open")
            nb.close()
            shell.user_ns["open"] = theirs  # a new kernel's
            fresh_namespace(shell)
            nb = Notebook(shell, Path(folder))
            report = nb.snaps.restore()
            nb.close()
        ns = shell.user_ns
        assert ns["open"] == [1.5, 2.5] and ns["close"] is ns["open"], report
    finally:
        shell.user_ns["open"] = theirs
