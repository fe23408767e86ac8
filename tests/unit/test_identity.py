"""Identities: a ``dnb.map`` item is the same step call as ``fn(item)`` made in a loop.

A plain Runtime with its journal in ``tmp_path`` (no kernel): what a script gets.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import functools
import hashlib
import itertools
import json
import os
import pickle
import re
import sqlite3
import subprocess
import sys
import threading
import types
import unittest.mock
from collections import Counter, OrderedDict, defaultdict

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_own_iteration import plain_fingerprint  # (tests/unit is on the path)

import durable_nb as dnb
from durable_nb import fingerprints, runtime, shapes
from durable_nb.runtime import Runtime

pytestmark = pytest.mark.unit


@dataclasses.dataclass
class Point:
    x: int
    tags: set


VALUES = [0, -1, 2**5000, "node-1", "", b"raw", 1.5, None, True, (1, "a"), [1, [2, 3]],
          {"b": 1, "a": {2, 3}}, frozenset({"x"}), Point(1, {"a", "b"}), len, Point]  # fmt: skip


# ids by type and position: a set's repr changes with the hash seed, and pytest -n 2 needs
# the same test ids in every worker.
@pytest.mark.parametrize(
    "value", VALUES, ids=[f"{i}-{type(v).__name__}" for i, v in enumerate(VALUES)]
)
def test_shape_equals_fingerprint_with_the_holes_filled(value):
    args = shapes.Shape((shapes.HOLE,), {})
    assert args(value) == fingerprints.fingerprint((value,), {})
    call = shapes.Shape(3, "cell-key", "step", shapes.HOLE, shapes.HOLE)
    assert call(value, 7) == fingerprints.fingerprint(3, "cell-key", "step", value, 7)


def test_shape_checks_the_number_of_fills():
    with pytest.raises(ValueError):
        shapes.Shape(shapes.HOLE, shapes.HOLE)("only one")


@pytest.fixture
def rt(tmp_path, monkeypatch):
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path))
    rt = Runtime(str(tmp_path / "notebook.py"))
    assert rt.journaling, rt.problem
    runtime.install(rt)
    yield rt
    runtime.install(None)
    rt.close()


ITEMS = [1, 2, 2, "a", (1, 2), {"k": [1]}, 2, Point(0, set())]


def _in_cell(rt, source, fn):
    rt.begin_cell(None, source)
    try:
        return fn()
    finally:
        rt.end_cell("ok", None)


@pytest.mark.parametrize("epoch", [0, 1])
def test_identities_equal_identity_call_by_call(rt, epoch):
    if epoch:
        rt.fresh()
    many = _in_cell(rt, "cell", lambda: rt.identities("step", ITEMS))
    one = _in_cell(rt, "cell", lambda: [rt.identity("step", (i,), {}, None) for i in ITEMS])
    assert many == one
    assert [n for _, n in many] == [0, 0, 1, 0, 0, 0, 2, 0]  # repeats count up


def test_identities_with_keys_and_in_strict_replay(rt):
    keys = ["k1", None, "k1", None, None, None, None, None]
    many = _in_cell(rt, "cell", lambda: rt.identities("step", ITEMS, keys))
    one = _in_cell(rt, "cell", lambda: [rt.identity("step", (i,), {}, k)
                                        for i, k in zip(ITEMS, keys, strict=True)])  # fmt: skip
    assert many == one and many[0] == many[2]
    rt.set_strict(True)
    try:
        assert _in_cell(rt, "cell", lambda: rt.identities("step", ITEMS)) == _in_cell(
            rt, "cell", lambda: [rt.identity("step", (i,), {}, None) for i in ITEMS]
        )
    finally:
        rt.set_strict(False)


def test_a_map_replays_the_calls_a_loop_made_and_back(rt, tmp_path):
    runs = []

    @dnb.step(retries=0)
    def double(x):
        runs.append(x)
        return x * 2

    items = [1, 2, 2, 3]
    loop = _in_cell(rt, "cell A", lambda: [double(i) for i in items])
    mapped = _in_cell(rt, "cell A", lambda: dnb.map(double, items, progress=False))
    assert mapped == loop == [2, 4, 4, 6]
    assert runs == items  # the map ran nothing: every item replayed

    runs.clear()
    mapped = _in_cell(rt, "cell B", lambda: dnb.map(double, items, progress=False))
    loop = _in_cell(rt, "cell B", lambda: [double(i) for i in items])
    assert mapped == loop and runs == items  # the loop ran nothing


# -- the same call in every process: what the hash seed orders is hashed canonically ----

#: Built in a process of its own from ``set(words)``, whose order follows the hash seed:
#: each kind's fingerprint, one line each.
_BUILD = """
import collections, dataclasses, json, sys, types
from durable_nb import fingerprints
class D(dict): pass
class S(set): pass
class F(frozenset): pass
class L(list): pass
P = collections.namedtuple("P", "a b")
class K:
    __slots__ = ("k", "__dict__")
    def __init__(self, v):
        self.k, self.v = 1, v
class C(K):
    __slots__ = ()
    def __getstate__(self):  # (a copy of its __dict__, as many reduces hand out)
        return dict(self.__dict__), {"k": self.k}
@dataclasses.dataclass(frozen=True, slots=True)
class N:
    name: str
    tags: frozenset
def plan(w):  # steps each holding the two before: hashed part by part (test_shared_parts)
    steps = [{"tags": set(w)}, {"by": dict.fromkeys(w, 0)}]
    for i in range(30):
        steps.append({"i": i, "deps": [steps[-1], steps[-2]], "tags": S(w), "p": P(i, set(w))})
    return steps[-1]
cases = json.loads(sys.argv[1])
for kind, words in cases:
    w = list(set(words))
    value = {"dict": lambda: dict.fromkeys(w, 1), "set": lambda: set(w),
             "Counter": lambda: collections.Counter(w + sorted(w)[:1]),
             "defaultdict": lambda: collections.defaultdict(list, {x: [1] for x in w}),
             "D": lambda: D.fromkeys(w, 0), "S": lambda: S(w), "F": lambda: F(w),
             "nested": lambda: [D.fromkeys(w, 0), {"k": S(w)}, (F(w), 1)],
             "key": lambda: {F(w): collections.Counter(w)}}.get(kind, lambda: None)()
    value = {"namedtuple": lambda: P(len(w), set(w)), "slotted": lambda: N(min(w), frozenset(w)),
             "held": lambda: [N("x", frozenset()), P(collections.Counter(w), S(w))],
             "deep": lambda: P(1, [(min(w), {frozenset(w): set(w)})]),
             "views": lambda: P(types.MappingProxyType(dict.fromkeys(w, 1)),
                                dict.fromkeys(w, 2).items()),
             "slotdict": lambda: K(dict.fromkeys(w, 0)),
             "copied": lambda: C(dict.fromkeys(w, 0)),
             "plan": lambda: plan(w)}.get(kind, lambda: value)()
    print(fingerprints.fingerprint((value,), {}))
"""
KINDS = ["dict", "set", "Counter", "defaultdict", "D", "S", "F", "nested", "key", "namedtuple",
         "slotted", "held", "deep", "views", "slotdict", "copied", "plan"]  # fmt: skip


@settings(max_examples=4, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KINDS),
                          st.lists(st.text("abcdefghij", min_size=1, max_size=4), min_size=2,
                                   max_size=6, unique=True)),
                min_size=1, max_size=12))  # fmt: skip
@example(
    [
        ("views", ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]),
        ("slotdict", ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]),
        ("copied", ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]),
        ("plan", ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]),
    ]
)
def test_a_call_has_one_identity_whatever_the_hash_seed(cases):
    # A step called with a Counter of names (or a defaultdict, a dict's or set's subclass)
    # was told by its pickle, in hash order: each kernel had another identity for it, and
    # after a restart the step ran again instead of replaying.
    # Such calls journaled before (identified by their pickle) run once more. So did a
    # namedtuple or a slotted instance holding a set (told by its pickle, in hash order).
    got = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", _BUILD, json.dumps(cases)], env=env,
                             capture_output=True, text=True, check=True)  # fmt: skip
        got.append(out.stdout.split())
    assert got[0] == got[1]


Pair = collections.namedtuple("Pair", "a b")
Five = collections.namedtuple("Five", "a b c d e")


@dataclasses.dataclass(frozen=True, slots=True)
class Slim:
    name: object
    tags: object


#: What a value told by its pickle may hold that is no set: ints (143, 145, 38031 have a
#: set opcode's bytes in their pickle) and text of any kind.
_NO_SET = st.recursive(
    st.one_of(st.integers(), st.sampled_from([143, 145, 38031, 0x918F]), st.text(), st.none(),
              st.sampled_from(["\u514f\u5191", "\x8f\x94\x91"]), st.floats(allow_nan=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3),
                            st.builds(Pair, inner, inner), st.builds(Slim, inner, inner)),
    max_leaves=12,
)  # fmt: skip


@given(st.builds(Pair, _NO_SET, _NO_SET) | st.builds(Slim, _NO_SET, _NO_SET))
def test_a_value_told_by_its_pickle_without_a_set_keeps_its_identity(value):
    # Only what holds a set (or a Counter, a dict's subclass...) is fingerprinted anew: every
    # other namedtuple or slotted argument keeps the identity its journaled calls have, that
    # of its plain pickle (whatever bytes a set's opcode shares with its data).
    assert fingerprints.fingerprint(value) == plain_fingerprint(value)


def test_a_value_sharing_its_parts_with_a_client_inside_is_pickled_once(monkeypatch):
    # helper-80: told part by part, each shared part was walked once per reference: a
    # namedtuple DAG 30 levels deep took 2**30 walks (the step call hung).
    pickled = []
    real = fingerprints._pickled
    monkeypatch.setattr(fingerprints, "_pickled", lambda *a: pickled.append(a[2]) or real(*a))
    x = Pair(threading.Lock(), "leaf")
    for _ in range(30):
        x = Pair(x, x)
    assert fingerprints.fingerprint(x) != fingerprints.fingerprint(Pair(x, x))
    assert len(pickled) == 4  # each: its pickle failed, then one in which the lock is named


class Refusing:
    """A client refusing its pickle, told by its attributes."""

    def __init__(self, host):
        self.host = host

    def __getstate__(self):
        raise TypeError("a client is not pickled")


@dataclasses.dataclass(slots=True)
class SlimHost:
    name: str


@dataclasses.dataclass
class Placed(SlimHost):
    region: str


class Stamp(datetime.datetime):
    """A datetime with an attribute: its instant is C state, not in its ``__dict__``."""


class Lazy:
    """Attribute-style access to a dict (its ``__getattr__`` raises KeyError)."""

    __slots__ = ("_d",)

    def __init__(self, d):
        self._d = d

    def __getattr__(self, name):
        return self._d[name]


def _logged(fn):
    @functools.wraps(fn)  # (the wrapper's __dict__ holds __wrapped__: a bound method's too)
    def call(*args, **kwargs):
        return fn(*args, **kwargs)

    return call


class Pinger:
    def __init__(self, host):
        self.host = host

    @_logged
    def ping(self):
        return self.host


def test_what_an_instance_holds_beside_its_dict_tells_it_apart():
    # helper-83: an instance was told by its __dict__ alone, dropping its slots and a C
    # base's state: these pairs were one call each.
    def stamped(day, tag):
        stamp = Stamp(2026, 12, day)
        stamp.tag = tag
        return stamp

    fp = fingerprints.fingerprint
    pairs = [(Placed("a", "eu"), Placed("b", "eu")), (stamped(1, "x"), stamped(2, "x")),
             (stamped(1, "x"), stamped(1, "y")),  # (a datetime's pickle leaves it out)
             (Pinger("a").ping, Pinger("b").ping)]  # fmt: skip
    for one, other in pairs:
        assert fp(one) != fp(other) and fp(one) == fp(one)
    # Its attributes are fed as a plain instance's are, not in its pickle's memo: a string
    # a replayed result holds (another object, equal) gives the same call (helper-84).
    replayed = pickle.loads(pickle.dumps(["train"]))[0]
    assert fp(Placed("train", "train")) == fp(Placed(replayed, "train"))
    # A __getattr__ raising for __dict__ is not asked: a readable value, one identity.
    assert fp(Lazy({"host": "a"})) == fp(Lazy({"host": "a"})) != fp(Lazy({"host": "b"}))


def _row(value):
    """A ``sqlite3.Row`` (helper-82: rows were one call, told by their type)."""
    con = sqlite3.connect(":memory:")
    con.row_factory = sqlite3.Row
    return con.execute("select ? as host", (value,)).fetchone()


def test_what_pickle_refuses_in_a_value_is_told_by_what_it_holds():
    # helper-81: inside a pickled value, a module, a client refusing its pickle and a
    # read-only view were each told by their type alone (two calls were one).
    fp, proxy = fingerprints.fingerprint, types.MappingProxyType
    pairs = [(Slim(json, 1), Slim(os, 1)), (Pair(Refusing("a"), 1), Pair(Refusing("b"), 1)),
             (Pair(proxy({"lr": 0.1}), 1), Pair(proxy({"lr": 0.2}), 1)),
             (Pair({"a": 1}.keys(), 1), Pair({"b": 1}.keys(), 1)),
             (Pair(memoryview(b"ab"), 1), Pair(memoryview(b"cd"), 1)),
             (proxy({"a": 1}), proxy({"a": 2})),
             (memoryview(b"\x01\0"), memoryview(b"\x01\0").cast("h")),
             (OrderedDict(a=1).keys(), OrderedDict(b=1).keys()), (_row("a"), _row("b")),
             (re.match("a+", "aa"), re.match("a+", "aaa")),
             (hashlib.sha256(b"a"), hashlib.sha256(b"b"))]  # fmt: skip
    for one, other in pairs:
        assert fp(one) != fp(other) and fp(one) == fp(one)


def test_a_value_that_cannot_be_fingerprinted_is_never_replayed_and_says_so(capsys):
    # A value even the tolerant pickle fails on (a mock with a spec lies about its class) was
    # told by its type alone: P(mock, "x") replayed P(mock, "y")'s result. Now each call has
    # an identity of its own, said once per type.
    mock = unittest.mock.MagicMock(spec=Slim)
    fp = fingerprints.fingerprint
    assert len({fp(Pair(mock, "x")), fp(Pair(mock, "x")), fp(Pair(mock, "y"))}) == 3
    err = capsys.readouterr().err
    assert err.count("durable_nb: a step argument of type test_identity.Pair cannot be") == 1
    assert "key=" in err
    deep = []
    for _ in range(5000):  # (past the recursion limit: the step call raised RecursionError)
        deep = [deep]
    assert fp(deep) != fp(deep) and shapes.Shape(shapes.HOLE)(deep) != fp(deep)
    assert capsys.readouterr().err.count("durable_nb: a step argument cannot be") == 1

    class Leaving:  # (a reduce raising SystemExit ended the step call: helper-82)
        def __reduce_ex__(self, protocol):
            raise SystemExit(1)

    assert fp(Leaving()) != fp(Leaving()) and fp(Pair(Leaving(), 1)) != fp(Pair(Leaving(), 1))


def test_no_stack_depth_makes_two_values_one_call():
    # helper-82: near the recursion limit a RecursionError in a part's reduce was taken for
    # its refusal, and the part told by its type: Slim(0.1, "a") and Slim(0.2, "b") with a
    # lock beside them were one call at some depths.
    def at(depth, fn):
        return at(depth - 1, fn) if depth else fn()

    frame, here = sys._getframe(), 0
    while frame is not None:
        frame, here = frame.f_back, here + 1
    lock, fp = threading.Lock(), fingerprints.fingerprint
    top = sys.getrecursionlimit() - here
    for depth in range(top - 150, top):
        try:
            one, other = at(
                depth, lambda: (fp(Pair(lock, Slim(0.1, "a"))), fp(Pair(lock, Slim(0.2, "b"))))
            )
        except RecursionError:  # (the stack's last few frames: no call works there)
            continue
        assert one != other, depth


_ATOM = st.one_of(st.integers(), st.text(max_size=4), st.binary(max_size=3), st.none(),
                  st.booleans(), st.floats(allow_nan=False))  # fmt: skip


@given(st.lists(_ATOM | st.frozensets(st.text(max_size=3)) | st.sets(st.integers()),
                max_size=5))  # fmt: skip
def test_a_small_tuple_with_sets_pickled_in_one_pass_is_told_as_in_two(fields):
    # dnb.map's items (a namedtuple with a frozenset of roles) take one pickle, not three:
    # the same bytes, so the same identity, as the first pickle, the check and the second.
    fields = [*fields, frozenset({10**5000, 10**5000 + 2**61 - 1})][:5]  # (repr refuses those)
    value = Five(*fields, *[None] * (5 - len(fields)))
    assert fingerprints._small_with_sets(value) == any(type(f) in (set, frozenset) for f in fields)
    one = fingerprints.fingerprint(value)
    real = fingerprints._small_with_sets
    try:
        fingerprints._small_with_sets = lambda obj: False
        assert fingerprints.fingerprint(value) == one
    finally:
        fingerprints._small_with_sets = real


def test_sets_of_each_kind_in_a_pickled_value_are_told_apart():
    # A set of str, int or bytes in a pickle is its sorted values, its kind named: {1} and
    # {"1"} (ints are written in hex, as repr refuses big ones) are two calls.
    fp = fingerprints.fingerprint
    sets = [frozenset({1}), frozenset({"1"}), frozenset({b"1"}), {1}, frozenset({True}),
            frozenset({"1", 1}), frozenset(), set(), frozenset({10**5000})]  # fmt: skip
    assert len({fp(Pair(s, 0)) for s in sets}) == len(sets)


_HOSTS = st.lists(st.integers() | st.text(), max_size=3)


@settings(max_examples=40)
@given(_HOSTS, _HOSTS, st.booleans())
def test_a_value_that_cannot_be_pickled_whole_is_told_by_its_parts(x, y, equal):
    # A namedtuple or slotted value holding a lock (a client, a socket) was told by its type
    # alone: one call for every host, an earlier call's result replayed for another.
    y = list(x) if equal else y
    held, other = threading.Lock(), threading.Lock()
    for kind in (Pair, Slim):
        same = fingerprints.fingerprint(kind(x, held)) == fingerprints.fingerprint(kind(y, other))
        assert same == (x == y)


def test_after_a_restart_each_host_replays_its_own_result(rt, tmp_path):
    # The same calls in another order (a listing came back otherwise): each replays its
    # own result. Told by its type alone, the second host got the first one's.
    client = threading.Lock()  # (cannot be pickled: a client, a session)

    @dnb.step(retries=0)
    def provision(target):
        return f"provisioned {target.a}"

    hosts = [Pair("db-1", client), Pair("db-2", client)]
    first = _in_cell(rt, "provision", lambda: [provision(t) for t in hosts])
    rt.close()
    again = Runtime(str(tmp_path / "notebook.py"))  # the kernel restarted
    runtime.install(again)
    try:
        ran = again.totals["ran"]
        later = _in_cell(again, "provision", lambda: [provision(t) for t in hosts[::-1]])
        assert (again.totals["ran"], again.totals["replayed"]) == (ran, 2)
    finally:
        runtime.install(rt)
        again.close()
    assert later == first[::-1] == ["provisioned db-2", "provisioned db-1"]


class Node:
    def __init__(self, name):
        self.name = name


class Tree:
    def __init__(self, name, parent=None):
        self.name, self.parent, self.children = name, parent, []
        if parent is not None:
            parent.children.append(self)


def _tree(back_to_root):
    root = Tree("root")
    b = Tree("b", Tree("a", root))
    if back_to_root:
        b.parent = root
    return root


#: ``fingerprint(_tree(False))``, ``fingerprint(_tree(True))`` as 0017007 (before sets in a
#: pickle were fed apart) gave them: an instance met again on a cycle is pickled, its pickle
#: telling which one it is (helper-79: a bare cycle mark made the two trees one call).
TREES = ("c565a30b7a21cab007b31abdf8674417", "59c6392d8a613eb417ea59bdf7c45d52")


def test_a_cycle_back_to_an_instance_says_which_one_as_before():
    assert (fingerprints.fingerprint(_tree(False)), fingerprints.fingerprint(_tree(True))) == TREES


class Vertex:
    __slots__ = ("edges", "name")

    def __init__(self, name):
        self.name, self.edges = name, set()


def test_a_cycle_through_sets_in_pickles_says_which_value_it_leads_back_to():
    # a <-> b against a -> b -> b: one set each, so no order to lose; both ends a cycle.
    def graph(loop):
        a, b = Vertex("a"), Vertex("b")
        a.edges, b.edges = {b}, ({b} if loop else {a})
        return a

    assert fingerprints.fingerprint(graph(False)) != fingerprints.fingerprint(graph(True))


def test_a_cycle_of_containers_says_how_far_up_it_leads():
    # helper-80 #4: X = [[X]] and W = [W] inside a list were one call (a bare cycle mark).
    x = []
    x.append([x])
    w = []
    w.append(w)
    assert fingerprints.fingerprint(x) != fingerprints.fingerprint([w])
    assert fingerprints.fingerprint(x) == fingerprints.fingerprint(x)


def test_a_set_too_deep_to_walk_in_a_pickle_is_told_by_the_pickle():
    # Its fingerprint's walk runs out of stack where the C pickler does not: the first
    # pickle then (in hash order: a step run again after a restart, not another's result).
    def deep(leaf):
        x = frozenset([leaf])
        for _ in range(300):
            x = frozenset([(x,)])
        return x

    left, right = Pair(0, deep("left")), Pair(0, deep("right"))
    assert fingerprints.fingerprint(left) != fingerprints.fingerprint(right)
    assert fingerprints.fingerprint(left) != fingerprints.fingerprint(Pair(1, "unpicklable"))


def test_a_set_in_a_pickled_value_leading_back_to_it_is_a_cycle(monkeypatch):
    # The set is fed as sets are, from the pickle of the value holding it: its members
    # lead back to that value, which is not pickled again (a recursion to the limit).
    pickled = []
    real = fingerprints._pickled
    monkeypatch.setattr(fingerprints, "_pickled", lambda *a: pickled.append(1) or real(*a))

    def ring(*names):
        nodes = [Node(n) for n in names]
        held = Slim("ring", frozenset(nodes))
        for node in nodes:
            node.owner = held  # the set's member holds the slotted value holding the set
        return held

    assert fingerprints.fingerprint(ring("a", "b")) == fingerprints.fingerprint(ring("b", "a"))
    assert fingerprints.fingerprint(ring("a", "b")) != fingerprints.fingerprint(ring("a", "c"))
    assert len(pickled) == 4 * 2  # each: pickled, then again with its set fed as sets are


def test_an_argument_whose_keys_lead_back_to_it_is_identified():
    # helper-78 #3: a graph of nodes that hold the graph, keyed by node: a key's own
    # fingerprint walked back into the container without end (RecursionError).
    class Node:
        def __init__(self, name, graph):
            self.name, self.graph = name, graph

    def graph(*names):
        g = defaultdict(set)
        nodes = [Node(n, g) for n in names]
        for a, b in itertools.pairwise(nodes):
            g[a].add(b.name)
        return g

    plain = {}
    plain[Node("a", plain)] = 1
    for value in (graph("a", "b", "c"), plain, Counter({frozenset({1}): 2})):
        assert fingerprints.fingerprint(value) == fingerprints.fingerprint(value)
    assert fingerprints.fingerprint(graph("a", "b")) != fingerprints.fingerprint(graph("a", "c"))
    # Acyclic keys hash as before: a key's fingerprint is fingerprint(key), walk or not.
    assert fingerprints.fingerprint({(1, "a"): 2}) == fingerprints.fingerprint({(1, "a"): 2})
