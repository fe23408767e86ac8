"""A list, dict or set subclass that iterates its own way is saved with what it holds.

Pickle saves such an object (by its base's reduce) as what iterating it yields: a
filtering ``__iter__`` came back with other contents, silently, and an endless one hung
the kernel after the cell that made it (a plain kernel never iterates it).
``containers.iterates_own_way`` finds these classes; their instances are saved through their
base's own iteration, on every path (the plain pickler, ours, dill's; a step result's
pickle and dill) and through a real journal and restore.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import pickle
import signal
import tempfile
from pathlib import Path

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st
from test_snapshot_props import SLOW, Notebook, fresh_namespace, restore_anew  # (on the path)
from test_snapshot_props import shell as shell  # (the fixture)

from durable_nb import codec, containers, fingerprints

pytestmark = pytest.mark.unit

BASES = ("list", "dict", "set", "frozenset", "OrderedDict", "defaultdict", "deque")
#: What a class of each base overrides to iterate its own way, and how its base reads it.
READS = {"dict": ("items", "dict.items"), "OrderedDict": ("items", "OrderedDict.items"),
         "defaultdict": ("items", "dict.items")}  # fmt: skip

#: How a class iterates: the body of its ``__iter__`` (``items`` for a dict), or None for
#: the base's own. ``B`` is the base, ``it`` what the base's iteration yields.
ITERATIONS = {
    "own": None,
    "filtering": "return iter([x for x in it if hash(x) % 3 == 0])",
    "doubling": "return iter([x for x in it for _ in range(2)])",
    "reversed": "return iter(list(it)[::-1])",
    "long": "return itertools.islice(itertools.cycle(list(it) or [(0, 0)]), 20_000)",
    "raising": "raise RuntimeError('not iterable today')",
}


def define(main, base: str, iteration: str | None, n: int) -> type:
    """A notebook class ``C{n}`` of ``base`` with ``iteration`` (see ITERATIONS)."""
    method, read = READS.get(base, ("__iter__", f"{base}.__iter__"))
    source = ("import itertools\nfrom collections import OrderedDict, defaultdict, deque\n"
              f"class C{n}({base}):\n    pass\n")  # fmt: skip
    if iteration is not None:
        source += f"    def {method}(self):\n        it = {read}(self)\n        {iteration}\n"
    return main(source)[f"C{n}"]


def held(obj) -> tuple:
    """What ``obj`` holds, read through its base (never its own iteration), and its state."""
    if isinstance(obj, collections.OrderedDict):
        contents = list(collections.OrderedDict.items(obj))
    elif isinstance(obj, collections.defaultdict):
        contents = obj.default_factory, sorted(dict.items(obj))
    elif isinstance(obj, collections.deque):
        contents = list(collections.deque.__iter__(obj)), obj.maxlen
    elif isinstance(obj, dict):
        contents = sorted(dict.items(obj))
    elif isinstance(obj, list):
        contents = list(list.__iter__(obj))
    else:
        contents = sorted((set if isinstance(obj, set) else frozenset).__iter__(obj))
    return type(obj).__qualname__, contents, getattr(obj, "__dict__", None)


def make(cls: type, base: str, items: list[int]):
    if base in ("dict", "OrderedDict"):
        return cls({i: str(i) for i in items})
    if base == "defaultdict":
        return cls(list, {i: str(i) for i in items})
    return cls(items)


# The holders: the value alone, inside a plain list, or beside a function whose globals
# are not the notebook's (only dill saves that: dill's path).
HOLDERS = ("alone", "in a list", "beside dill's")


@pytest.mark.parametrize("holder", HOLDERS)
@pytest.mark.parametrize("iteration", sorted(ITERATIONS))
@pytest.mark.parametrize("base", BASES)
@settings(max_examples=3, deadline=None, suppress_health_check=SLOW)
@given(st.lists(st.integers(-40, 40), min_size=1, max_size=8), st.booleans())
def test_what_is_saved_is_what_it_holds(main, base, iteration, holder, items, stated):
    cls = define(main, base, ITERATIONS[iteration], 0)
    obj = make(cls, base, items)
    if stated:
        obj.note = [len(items), "x"]
    other: dict = {"__name__": "elsewhere"}
    exec("def f(x):\n    return x\n", other)
    value = {"alone": obj, "in a list": [obj], "beside dill's": [obj, other["f"]]}[holder]
    ns = main("")
    enc = codec.encode(value, ns, (value,))
    assert enc.codec == (codec.DILL if holder == "beside dill's" else codec.PICKLE)
    back = codec.decode(enc.codec, enc.stream, enc.buffers, resolve=ns.__getitem__)
    back_obj = back if holder == "alone" else back[0]
    assert type(back_obj) is cls and held(back_obj) == held(obj)
    kind, payload = codec.dumps(value)  # as a step's result
    again = codec.loads(kind, payload)
    assert kind == enc.codec and held(again if holder == "alone" else again[0]) == held(obj)
    plain = codec.encode_plain(value, ns)  # the plain pickler: lists and dicts of data
    if plain is not None:
        again = codec.decode(plain.codec, plain.stream, plain.buffers, resolve=ns.__getitem__)
        assert held(again if holder == "alone" else again[0]) == held(obj)


def test_only_classes_that_iterate_their_own_way_are_found(main):
    for base in BASES:
        # (a defaultdict's reduce leaves out its attributes: always saved as it is)
        assert containers.iterates_own_way(define(main, base, None, 1)) == (base == "defaultdict")
        assert containers.iterates_own_way(define(main, base, ITERATIONS["reversed"], 2))
    ns = main("import collections\nclass Ordered(collections.OrderedDict):\n"
              "    def __reduce__(self):\n        return (Ordered, ())\n"
              "    def items(self):\n        return iter([])\n"
              "class Reduced(list):\n    def __iter__(self):\n        return iter([])\n"
              "    def __reduce__(self):\n        return (Reduced, ())\n")  # fmt: skip
    # A class with a reduce of the notebook's keeps it.
    assert not containers.iterates_own_way(ns["Ordered"])
    assert not containers.iterates_own_way(ns["Reduced"])
    assert not any(map(containers.iterates_own_way, (list, dict, set, frozenset, tuple, object)))


# Endless in Python (generators), so that the test's alarm can stop them if saving
# iterates them: an endless C iterator (``itertools.count()``) was not even interruptible.
ENDLESS = """class Forever(list):
    def __iter__(self):
        while True:
            yield 1
class Pairs(dict):
    def items(self):
        while True:
            yield 1, 1
class Ring(set):
    def __iter__(self):
        while True:
            yield 1
f, p, r = Forever([1, 2]), Pairs(a=1), Ring({3})
f.note = 'kept'
"""


@contextlib.contextmanager
def at_most(seconds: int):
    """Stop the body (at its next Python line) after ``seconds``, and fail."""
    fired = []

    def stop(*_):
        fired.append(seconds)
        signal.alarm(1)  # again: the snapshot goes on to the next value
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert not fired, f"saving iterated an endless iteration for {seconds} s"


@settings(max_examples=1, deadline=None, suppress_health_check=SLOW)
@given(st.just(ENDLESS))
def test_an_endless_iteration_is_saved_and_restored_as_what_it_holds(shell, cell):
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        with at_most(10):
            nb.run(cell)
            nb.run("f.append(3)")  # a change, saved again
        live = {name: held(shell.user_ns[name]) for name in ("f", "p", "r")}
        restore_anew(shell, nb)
        assert {name: held(shell.user_ns[name]) for name in ("f", "p", "r")} == live
        assert live["f"] == ("Forever", [1, 2, 3], {"note": "kept"})


@pytest.mark.parametrize("iteration", sorted(ITERATIONS))
@pytest.mark.parametrize("base", BASES)
@settings(max_examples=5, deadline=None, suppress_health_check=SLOW)
@given(st.lists(st.integers(-5, 5), max_size=4), st.lists(st.integers(-5, 5), max_size=4),
       st.booleans())  # fmt: skip
def test_a_step_argument_is_told_by_what_it_holds(main, base, iteration, a, b, stated):
    """Two arguments of one class are one call exactly when they hold the same (an
    instance with attributes was told by them alone: two batches of one name were one
    call, and the second replayed the first's result)."""
    cls = define(main, base, ITERATIONS[iteration], 0)
    x, y = make(cls, base, a), make(cls, base, b)
    if stated:
        x.name = y.name = "batch"
    assert (fingerprints.fingerprint(x) == fingerprints.fingerprint(y)) == (held(x) == held(y))


def test_an_endless_step_argument_is_told_by_what_it_holds(main):
    ns = main(ENDLESS)
    with at_most(10):
        told = {name: fingerprints.fingerprint(ns[name]) for name in ("f", "p", "r")}
    assert len(set(told.values())) == 3
    ns["f"].append(3)
    assert fingerprints.fingerprint(ns["f"]) != told["f"]


#: Writers that wrap what iteration unwraps (review60 #1): read through the base, they
#: must be written through the base too, or they come back wrapped twice.
PAIRED = """import time
class CIDict(dict):
    def __setitem__(self, k, v):
        dict.__setitem__(self, k.lower(), (k, v))
    def __getitem__(self, k):
        return dict.__getitem__(self, k.lower())[1]
    def items(self):
        return [(k, v) for k, v in dict.values(self)]
class Boxed(list):
    def extend(self, xs):
        list.extend(self, [[x] for x in xs])
    def append(self, x):
        list.append(self, [x])
    def __iter__(self):
        return (b[0] for b in list.__iter__(self))
class Lower(set):
    def __init__(self, xs=()):
        set.__init__(self, ((x.lower(), x) for x in xs))
    def __iter__(self):
        return (x for _, x in set.__iter__(self))
class Expiring(dict):
    def __setitem__(self, k, v):
        dict.__setitem__(self, k, (v, time.time() + 3600))
    def items(self):
        return [(k, v) for k, (v, until) in dict.items(self) if until > time.time()]
headers, boxed, words, cache = CIDict(), Boxed(), Lower(['Foo', 'BAR']), Expiring()
headers['Content-Type'] = 'json'
boxed.extend([1, 2])
boxed.append(boxed)
cache['answer'] = 42
cache.note = 'kept'
"""


def test_writers_that_wrap_what_iteration_unwraps_restore_as_they_were(shell):
    fresh_namespace(shell)
    names = ("headers", "boxed", "words", "cache")
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run(PAIRED)
        live = {name: held(shell.user_ns[name]) for name in names if name != "boxed"}
        restore_anew(shell, nb)
        ns = shell.user_ns
        assert {name: held(ns[name]) for name in live} == live
        assert ns["headers"]["content-type"] == "json"
        assert dict.__getitem__(ns["cache"], "answer")[0] == 42
        boxed = ns["boxed"]  # it holds itself, boxed: [[1], [2], [boxed]]
        assert list.__getitem__(boxed, 2)[0] is boxed and list(boxed)[:2] == [1, 2]


def test_a_step_result_that_iterates_no_own_way_pickles_as_pickle_does(main):
    """review61 #1: the result pickler's table sent a class of a metaclass (an Enum, an
    ABC) to its unbound reduce: the Enum's result was not journaled, the ABC's replayed
    as a copy of the class."""
    ns = main("import abc, collections, datetime, enum\nclass Color(enum.Enum):\n    RED = 1\n"
              "class Proto(abc.ABC):\n    pass\nclass Plain:\n    pass\nclass Row(dict):\n"
              "    pass\nrow = Row(a=1)\nrow.tag = 'x'\n")  # fmt: skip
    for value in (ns["Color"], ns["Proto"], ns["Plain"], ns["Color"].RED, ns["row"], [ns["Plain"]],
                  collections.OrderedDict(b=1, a=2), collections.deque([1], maxlen=3),
                  datetime.date(2026, 12, 3), {1, 2}, (ns["Proto"], 1.5)):  # fmt: skip
        kind, payload = codec.dumps(value)
        assert payload == pickle.dumps(value, protocol=5), value
        back = codec.loads(kind, payload)
        assert back is value if isinstance(value, type) else back == value


SUBCLASSES = """import collections
class S(str): pass
class I(int): pass
class F(float): pass
class T(tuple): pass
class B(bytes): pass
class OD(collections.OrderedDict): pass
class DD(collections.defaultdict): pass
class Q(collections.deque): pass
class SL(list):
    __slots__ = ('tag',)
    def __iter__(self):
        return iter([])
"""


VALUES = st.lists(st.integers(0, 3), min_size=1, max_size=3)


@settings(max_examples=30, deadline=None, suppress_health_check=SLOW)
@given(st.sampled_from(["S", "I", "F", "T", "B", "OD", "DD", "Q", "SL"]), VALUES, VALUES,
       st.sampled_from(["a", "b"]), st.sampled_from(["a", "b"]))  # fmt: skip
def test_a_built_in_value_subclass_argument_is_told_by_its_value(main, kind, a, b, ta, tb):
    """review61 #7, #8: with attributes (or slots), its value had been left out."""
    ns = main(SUBCLASSES)
    make_ = {
        "S": lambda v: ns["S"]("".join(map(str, v))), "I": lambda v: ns["I"](v[0]),
        "F": lambda v: ns["F"](v[0] / 2), "T": lambda v: ns["T"](v), "B": lambda v: ns["B"](v),
        "OD": lambda v: ns["OD"]((x, 0) for x in v), "DD": lambda v: ns["DD"](
            list if v[0] % 2 else set, {x: None for x in v}),
        "Q": lambda v: ns["Q"](v), "SL": lambda v: ns["SL"](v),
    }[kind]  # fmt: skip
    x, y = make_(a), make_(b)
    x.tag, y.tag = ta, tb

    def value(o):  # what tells it: its base's value, and its tag
        if kind == "OD":
            return list(dict.items(o)), o.tag
        if kind == "DD":
            return o.default_factory, sorted(dict.items(o)), o.tag
        return (list(list.__iter__(o)) if kind == "SL" else type(o).__mro__[1](o)), o.tag

    assert (fingerprints.fingerprint(x) == fingerprints.fingerprint(y)) == (value(x) == value(y))


def test_a_class_that_gains_its_own_iteration_later_is_saved_as_it_is(shell):
    """review60 #2: its instances' first save remembered it as ordinary (its slots take
    it past the plain pickler), and the filtering __iter__ it gained later was used."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run("class Rows(list):\n    __slots__ = ('tag',)\nrows = Rows([1, 2, 3])\n")
        nb.run("def _odd(self):\n    return (x for x in list.__iter__(self) if x % 2)\n"
               "Rows.__iter__ = _odd\nrows.append(4)\n")  # fmt: skip
        restore_anew(shell, nb)
        assert list(list.__iter__(shell.user_ns["rows"])) == [1, 2, 3, 4]


#: ``fingerprint(defaultdict(list, {"a": [1]}))`` from 1a65c54 (before containers.py) until
#: 2026-12-04: plain pickle's, which followed the hash seed; hashed canonically since.
OLD_DEFAULTDICT = "34517a6c98b04bcf18dabff49195a37a"


def plain_fingerprint(value) -> str:
    """:func:`fingerprints.fingerprint` of one value told by its plain pickle."""
    h = xxhash.xxh3_128()
    t = type(value)
    h.update(b"tuple:1[obj:%s.%s;" % (t.__module__.encode(), t.__qualname__.encode()))
    h.update(pickle.dumps(value, protocol=5))
    h.update(b"]")
    return h.hexdigest()


def test_a_plain_defaultdict_ordereddict_or_deque_pickles_as_plain_pickle_does(main):
    """reread H1: a plain defaultdict was taken for a subclass whose reduce drops its
    attributes: saved through containers.fill (2× the stream, 6× the time) and its step
    arguments fingerprinted anew. Only a subclass with attributes or slots is."""
    ns = main("from collections import defaultdict\nclass Tagged(defaultdict):\n    pass\n"
              "class Slim(defaultdict):\n    __slots__ = ()\n")  # fmt: skip
    plain = (collections.defaultdict(list, {"a": [1]}), collections.OrderedDict(b=1, a=2),
             collections.deque([1, 2], maxlen=3))  # fmt: skip
    assert plain_fingerprint(plain[0]) == OLD_DEFAULTDICT != fingerprints.fingerprint(plain[0])
    for value in plain:
        assert not containers.iterates_own_way(type(value))
        if type(value) is not collections.defaultdict:  # (ordered: told by its pickle)
            assert fingerprints.fingerprint(value) == plain_fingerprint(value)
        kind, payload = codec.dumps(value)
        assert kind == codec.PICKLE and payload == pickle.dumps(value, protocol=5)
        for enc in (codec.encode([value], ns), codec.encode_plain([value], ns)):
            assert enc is None or b"durable_nb" not in enc.stream  # (None: not plain data)
    assert not containers.iterates_own_way(ns["Slim"])  # (no attributes to drop)
    assert containers.iterates_own_way(ns["Tagged"])
