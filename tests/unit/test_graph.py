"""graph.reach: what ties variables together, where the walk stops, which globals code uses."""

from __future__ import annotations

import logging
import sys
import threading
import types

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from durable_nb import graph, openfiles

NS: dict = {}


def keys(value, ns=NS) -> set[int]:
    return graph.reach(value, ns).keys


def test_a_shared_object_ties_two_variables_and_nothing_else_does():
    inner = [1, 2]
    a, b, c = {"x": inner}, (0, inner), [3, 4]
    assert keys(a) & keys(b) == {id(inner)}
    assert not keys(a) & keys(c)


def test_instances_of_one_class_tie_two_variables_only_through_what_they_hold():
    """Their class's methods (defaults included) are not data of every variable holding
    an instance: a defaulted ``__init__`` must not group all such variables."""
    ns: dict = {"__name__": "__main__"}
    exec("class N:\n    def __init__(self, i, tag=[]):\n        self.i = [i]", ns)
    ns.pop("__builtins__")
    a, b = [ns["N"](1) for _ in range(3)], [ns["N"](2) for _ in range(3)]
    assert not keys(a, ns) & keys(b, ns)


def test_tuples_and_frozensets_are_looked_inside():
    inner = [1]
    assert id(inner) in keys({"k": (frozenset({1}), (inner, "x"))})
    t = (inner, "x")
    assert id(inner) in keys(t) and id(t) in keys([t])  # a shared tuple keeps its identity


def test_a_big_level_of_instances_of_several_classes_names_each_class(main):
    """Each instance hands its class on: a level holds one class many times, or several."""
    ns = main("class A:\n    pass\nclass B:\n    pass\n")
    for value in ([ns["A"]() for _ in range(60)], [ns["AB"[i % 2]]() for i in range(120)]):
        names = {type(o).__name__ for o in value}
        assert graph.reach(value, ns).refs == names


def test_scalars_and_library_functions_reach_nothing():
    numbers = list(range(1000))
    assert keys(1) == set() and keys("abc") == set() and keys(numbers) == {id(numbers)}
    assert keys(len) == set() and keys(np.sum) == set()


def test_an_array_view_is_tied_to_its_base():
    base = np.zeros(100)
    view = base[10:20]
    assert id(base) in keys(view)
    assert not keys(np.zeros(3)) & keys(base)


def test_the_walk_stops_at_the_kernels_machinery():
    lock, logger = threading.Lock(), logging.getLogger("x")
    held = [1]
    logger.held = held  # inside a library's machinery: not the notebook's data
    outer = [lock, logger, sys, types]
    assert keys(outer) == {id(outer)}


def test_closures_defaults_and_bound_builtins_reach_their_data():
    ns: dict = {}  # a notebook's variables: its namespace holds them
    exec("def make(acc, opts):\n    def add(x, o=opts):\n        acc.append(x)\n"
         "    return add\nacc, opts = [], {'k': 1}\nadd = make(acc, opts)", ns)  # fmt: skip
    acc, opts, add = ns["acc"], ns["opts"], ns["add"]
    assert {id(acc), id(opts)} <= keys(add, ns)
    assert id(acc) in keys(acc.append, ns)
    # Held by the closure alone, the list is reached through its cell, which ties.
    lone = ns["make"]([], {})
    assert keys(lone, ns) & keys(types.FunctionType(lone.__code__, ns, closure=lone.__closure__))
    push = [].append  # the list is held by the bound method alone
    assert keys(push) & keys([push])


def test_functions_of_the_notebook_report_the_globals_they_use():
    ns: dict = {"__name__": "__main__"}
    code = "def f():\n    return helper(rows)\nclass C:\n    def m(self):\n        REG.append(1)\n"
    exec(code, ns)
    assert {"helper", "rows"} <= graph.reach(ns["f"], ns).names
    assert "REG" in graph.reach(ns["C"](), ns).names and "C" in graph.reach(ns["C"](), ns).names


def test_a_widget_is_walked_without_its_comm_and_said_to_hold_a_kernel_object():
    import ipywidgets

    slider = ipywidgets.IntSlider()
    reached = graph.reach([slider], NS)
    assert id(slider) in reached.keys and len(reached.keys) < 500
    assert reached.kernel or slider.comm is None
    assert graph.reach([[1], {"a": 2}], NS).kernel == ""
    # A library's machinery holding widgets (a traitlets link) is not walked for sharing,
    # yet said to hold the kernel: recorded for recompute without a pickle (nor dill) tried.
    other = ipywidgets.IntSlider()
    link = ipywidgets.link((slider, "value"), (other, "value"))
    reached = graph.reach(link, NS)
    assert reached.kernel == reached_kernel(slider) and not {id(slider), id(other)} & reached.keys
    assert graph.reach(logging.getLogger("x"), NS).kernel == ""  # machinery, no kernel
    assert graph.reach(threading.Lock(), NS).kernel == ""


def reached_kernel(widget) -> str:
    return "" if widget.comm is None else type(widget.comm).__qualname__


def test_objects_the_collector_does_not_track_still_tie(monkeypatch):
    """A level of strings, numbers and lists is walked by what the collector tracks; a dict
    or tuple of atoms is untracked (and a bytearray never is): met beside them, they are
    still keyed when shared. (The bulk passes: small levels too.)"""
    import gc

    monkeypatch.setattr(graph, "SMALL", 0)

    class Row:
        pass

    d, t, ba, row = {"x": 1}, (1, "a"), bytearray(b"x"), Row()
    gc.collect()
    assert not gc.is_tracked(d) and not gc.is_tracked(t)
    a = [d, "s", 1, [2], t, ba, row]
    b = [[d], 2.0, "u", (t,), [ba, row]]
    assert {id(d), id(t), id(ba), id(row)} <= keys(a) & keys(b)
    lone = [[1], "s", 2, Row()]
    assert keys(lone) == {id(lone)}  # lists and instances held once: walked, not keyed
    inner, shared = [3], Row()
    c = ["s", 1, None, [inner], {1}, shared]  # only what the collector tells apart
    assert {id(inner), id(shared)} <= keys(c) & keys([2.5, [inner], shared, "t"])
    assert all(graph._TRACKED.get(type(x)) for x in c)


class _Node:
    def __init__(self, items):
        self.items = items

    def use(self):
        return GLOBAL_NAME  # noqa: F821  (a global its code names)


def _node(kind: str, items: list):
    """A container, instance, closure or bound method holding ``items``."""
    if kind == "list":
        return list(items)
    if kind == "dict":
        return {f"k{i}": x for i, x in enumerate(items)}
    if kind == "tuple":
        return tuple(items)
    if kind == "instance":
        return _Node(items)
    if kind == "method":
        return _Node(items).use
    if kind == "closure":
        return lambda: items
    return {x for x in items if _hashable(x)}


def _hashable(x) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


_ATOMS = st.one_of(st.integers(), st.text(max_size=2), st.none())
_SPEC = st.lists(
    st.tuples(st.sampled_from(["list", "dict", "tuple", "instance", "method", "closure", "set"]),
              st.lists(st.one_of(_ATOMS, st.tuples(st.just("node"), st.integers(0, 60))),
                       max_size=6)),
    min_size=1, max_size=40,
)  # fmt: skip


def _built(spec: list, pool: list) -> None:
    for kind, items in spec:
        got = [x if not isinstance(x, tuple) else pool[x[1] % len(pool)]
               for x in items if not isinstance(x, tuple) or pool]  # fmt: skip
        pool.append(_node(kind, got))


def _reach_with(small: int, value) -> graph.Reach:
    was, graph.SMALL = graph.SMALL, small
    try:
        return graph.reach(value, {"_Node": _Node})
    finally:
        graph.SMALL = was


@settings(max_examples=120, deadline=None)  # the unit layer: < 1 min
@given(_SPEC, _SPEC)
def test_the_walk_one_object_at_a_time_finds_what_the_bulk_walk_finds(first, second):
    """Small levels are walked object by object (graph._small_level); a difference in what
    is keyed would be a missed sharing (a wrong restore). Built here, not by Hypothesis
    (which would hold the objects too): what holds an object decides what is keyed."""
    pool: list = []
    _built(first, pool)
    a = pool[-1]
    _built(second, pool)
    b = pool[-1]
    del pool
    for value in (a, b, [a, b]):
        bulk, one_by_one = _reach_with(0, value), _reach_with(10**9, value)
        assert one_by_one.keys == bulk.keys
        assert (one_by_one.names, one_by_one.refs) == (bulk.names, bulk.refs)
    tied = _reach_with(10**9, a).keys & _reach_with(10**9, b).keys
    assert tied == _reach_with(0, a).keys & _reach_with(0, b).keys


def test_a_widget_walked_object_by_object_is_walked_as_in_bulk():
    import ipywidgets

    shared = [1]
    box = ipywidgets.VBox([ipywidgets.Label("x"), ipywidgets.IntSlider()])
    box.held = shared  # the notebook's data on a widget
    for value in (box, [box, shared]):
        bulk, one_by_one = _reach_with(0, value), _reach_with(10**9, value)
        assert one_by_one.keys == bulk.keys and bool(one_by_one.kernel) == bool(bulk.kernel)
    assert id(shared) in _reach_with(10**9, box).keys


def test_file_type_agrees_with_io_on_every_class_of_the_loaded_modules():
    """``openfiles.file_type`` reads io's C base instead of asking io's ABC: every class of
    the standard library's and the kernel's modules loaded here gets the ABC's answer
    (_pyio's files, registered with io's ABCs, included), but io's abstract C bases
    (``_io._IOBase`` and its kin), files too here, which nothing makes instances of."""
    import importlib
    import io

    for name in (
        "_pyio",
        "bz2",
        "gzip",
        "lzma",
        "socket",
        "tempfile",
        "zipfile",
        "ipykernel.iostream",
    ):  # (_pyio's are registered with io's ABCs, not derived)
        importlib.import_module(name)
    classes = {c for m in list(sys.modules.values()) for c in getattr(m, "__dict__", {}).values()
               if isinstance(c, type)}  # fmt: skip

    def abc_file(c: type) -> bool | None:  # (None: io's ABC raises for it)
        try:
            return issubclass(c, io.IOBase)
        except TypeError:  # (a class another test registered with an ABC it walks)
            return None

    answers = {c: abc_file(c) for c in classes}
    classes = {c for c, answer in answers.items() if answer is not None}
    files = {c for c in classes if answers[c]}
    assert len(files) > 20 and len(classes) > 1000
    bases = {c for c in classes if c.__module__ == "_io" and c.__name__.startswith("_")}
    assert {c for c in classes if openfiles.file_type(c)} - bases == files
