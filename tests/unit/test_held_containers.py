"""What every pickler of the package, and a fingerprint, does with a list, dict or set
subclass: one rule (``containers.reducer``), at any depth, with no code of the notebook's
run (reread H2, M1, M2, L1, L6)."""

from __future__ import annotations

import collections
import copyreg
import io
import pickle
import threading
from typing import ClassVar

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_own_iteration import at_most
from test_snapshot_props import SLOW

from durable_nb import codec, containers, fingerprints, functions

pytestmark = pytest.mark.unit

#: Subclasses that iterate their own way (a filtering one, an endless one), and holders
#: with no ``__dict__``, whose fingerprint is their pickle.
CLASSES = """import collections, dataclasses
class Odd(list):
    def __iter__(self):
        return (x for x in list.__iter__(self) if x % 2)
class OddKeys(dict):
    def items(self):
        return [(k, v) for k, v in dict.items(self) if k % 2]
class OddSet(set):
    def __iter__(self):
        return (x for x in set.__iter__(self) if x % 2)
class Endless(list):
    def __iter__(self):
        while True:
            yield 1
class Box:
    __slots__ = ('items',)
    def __init__(self, items):
        self.items = items
@dataclasses.dataclass(slots=True)
class Row:
    items: object
Pair = collections.namedtuple('Pair', 'items')
"""

INNER = {"Odd": list, "OddKeys": lambda xs: {x: str(x) for x in xs}, "OddSet": set}


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW)
@given(st.sampled_from(sorted(INNER)), st.sampled_from(["Box", "Row", "Pair"]),
       st.lists(st.integers(0, 5), max_size=4),
       st.lists(st.integers(0, 5), max_size=4))  # fmt: skip
@example("OddKeys", "Box", [0, 1], [1, 0])  # (equal dicts of two orders: one call)
def test_a_nested_subclass_argument_is_told_by_what_it_holds(main, inner, holder, a, b):
    """reread H2: nested in an object without ``__dict__``, it was pickled by its own
    iteration: ``Box(Odd([1, 2, 3]))`` and ``Box(Odd([1, 4, 3]))`` were one call (the second
    replayed the first's result)."""
    ns = main(CLASSES)
    x, y = (ns[holder](ns[inner](INNER[inner](v))) for v in (a, b))
    # A dict's or set's subclass nested in a pickled object is told by what it holds, in
    # no order (as at the top: since 993dfad); a step's result keeps its order.
    held = [INNER[inner](v) for v in (a, b)]
    assert (fingerprints.fingerprint(x) == fingerprints.fingerprint(y)) == (held[0] == held[1])
    ordered = [list(v.items()) if type(v) is dict else list(v) for v in held]
    assert (codec.dumps(x) == codec.dumps(y)) == (ordered[0] == ordered[1])  # (a result)


@pytest.mark.parametrize("holder", ["Box", "Row", "Pair"])
def test_a_nested_endless_argument_is_fingerprinted(main, holder):
    """reread H2: ``fingerprint(Box(Endless([1])))`` never returned: the step call hung."""
    ns = main(CLASSES)
    with at_most(10):
        one, two = (fingerprints.fingerprint(ns[holder](ns["Endless"](v))) for v in ([1], [2]))
        kind, payload = codec.dumps(ns[holder](ns["Endless"]([1])))
    assert one != two
    assert list(list.__iter__(codec.loads(kind, payload).items)) == [1]


def test_each_type_is_asked_once_per_pickle(main, monkeypatch):
    """reread M1: an instance of a subclass that iterates its own way paid the whole
    override path (~6 µs) every time: now its reducer is asked once per type and pickle.
    L1: exact OrderedDicts and deques are ordinary (they never gain an ``__iter__``)."""
    ns = main(CLASSES + "class Lazy:\n    __slots__ = ('x',)\n")
    asked: list[type] = []
    real = containers.reducer

    def counted(t):
        asked.append(t)
        return real(t)

    monkeypatch.setattr(containers, "reducer", counted)
    rows = [ns["OddKeys"]({i: i}) for i in range(50)]
    rows += [collections.OrderedDict(a=1), collections.deque([1]), ns["Lazy"]()] * 20
    enc = codec.encode(rows, ns)
    back = codec.decode(enc.codec, enc.stream, enc.buffers, resolve=ns.__getitem__)
    assert asked.count(ns["OddKeys"]) == 1 and [dict.items(r) for r in back[:50]] == [
        dict.items(r) for r in rows[:50]]  # fmt: skip
    assert {collections.OrderedDict, collections.deque} <= codec._ORDINARY
    assert not any(issubclass(t, containers.BASES) and t not in containers._EXACT
                   for t in codec._ORDINARY)  # fmt: skip
    codec.encode(rows, ns)  # the next pickle asks again (its iteration may have changed)
    assert asked.count(ns["OddKeys"]) == 2


class Touchy:
    """A key whose ``__hash__`` and ``__eq__`` are counted, and raise once it is asked to."""

    calls: ClassVar[list[str]] = []
    broken = False

    def __init__(self, v: int) -> None:
        self.v = v

    def __hash__(self) -> int:
        Touchy.calls.append("hash")
        if Touchy.broken:
            raise RuntimeError("hashed again")
        return hash(self.v)

    def __eq__(self, other: object) -> bool:
        Touchy.calls.append("eq")
        return isinstance(other, Touchy) and other.v == self.v


def test_saving_or_fingerprinting_calls_no_hash_or_eq_of_the_notebooks(main):
    """reread M2: reading an own-way dict built a dict of its items, and a fingerprint a
    frozenset of a set's members: both hashed every key again (plain pickle never does),
    and a hash that raised made the value unsaveable, the step call fail."""
    ns = main(CLASSES)
    d = ns["OddKeys"]({Touchy(1): 1, Touchy(2): 2})
    s, dd = ns["OddSet"]({Touchy(3), Touchy(4)}), collections.defaultdict(list)
    s.tag = "kept"
    dd_sub = main("class DD(collections.defaultdict):\n    pass\n")["DD"](list, {Touchy(5): [5]})
    Touchy.calls.clear()
    Touchy.broken = True
    try:
        for value in (d, s, dd_sub, [d, s, dd]):
            enc = codec.encode(value, ns)
            payload = codec.dumps(value)[1]
            fingerprints.fingerprint(value)
            assert b"durable_nb.containers" in enc.stream + payload
    finally:
        Touchy.broken = False
    assert Touchy.calls == []
    assert fingerprints.fingerprint(d) != fingerprints.fingerprint(ns["OddKeys"]({Touchy(1): 1}))


def test_a_dict_saved_by_the_previous_version_loads(main):
    """reread M2: ``held`` now gives a dict's pairs; a journal holds payloads whose
    contents were a dict (a defaultdict's: its factory and a dict): ``fill`` takes both."""
    ns = main("import collections\nclass Keys(dict):\n    def items(self):\n"
              "        return iter([])\nclass Ordered(collections.OrderedDict):\n    pass\n"
              "class DD(collections.defaultdict):\n    pass\n")  # fmt: skip
    keys, dd = ns["Keys"](b=2, a=1), ns["DD"](list, {"x": [1]})
    keys.tag = dd.tag = "kept"

    def old_shape(obj):  # what stored_contents wrote before pairs
        contents = dict(dict.items(obj))
        if isinstance(obj, collections.defaultdict):
            contents = obj.default_factory, contents
        state = contents, object.__getstate__(obj)
        return containers.empty, (type(obj),), state, None, None, containers.fill

    for obj in (keys, dd):
        out = io.BytesIO()
        pickler = pickle.Pickler(out, protocol=5)
        pickler.dispatch_table = {type(obj): old_shape}
        pickler.dump(obj)
        back = pickle.loads(out.getvalue())
        assert type(back) is type(obj) and list(dict.items(back)) == list(dict.items(obj))
        assert back.tag == "kept" and getattr(back, "default_factory", None) is getattr(
            obj, "default_factory", None)  # fmt: skip


def test_class_attributes_are_read_without_running_the_notebooks_code(main):
    """reread L6: ``t.__iter__`` ran a descriptor's ``__get__``, ``hasattr(t, ...)`` a
    metaclass's ``__getattr__``, while the save decided how to read a class."""
    ns = main("calls = []\nclass Meta(type):\n    def __getattr__(cls, name):\n"
              "        calls.append(name)\n        raise AttributeError(name)\n"
              "class L(list, metaclass=Meta):\n    pass\n"
              "class D:\n    def __get__(self, obj, owner):\n"
              "        calls.append('get')\n        return lambda self: iter([])\n"
              "class M(list):\n    __iter__ = D()\n")  # fmt: skip
    for t in (ns["L"], ns["M"]):
        containers.iterates_own_way(t), containers.object_reduce(t), containers.reducer(t)
    assert ns["calls"] == []
    assert containers.reducer(ns["M"]) is containers.stored_contents  # (not list's __iter__)
    assert containers.reducer(ns["L"]) is None
    m = ns["M"]([1, 2])
    back = pickle.loads(codec.dumps(m)[1])
    assert ns["calls"] == [] and list.__iter__(back).__next__() == 1


def test_a_functions_own_way_dict_is_walked_through_its_base(main):
    """functions.simple read a dict subclass's pairs (fresh tuples: their ids recur); now
    containers.held's, its keys and values: what it holds decides, its ``items`` never
    runs."""
    ns = main(
        "class Keys(dict):\n    def items(self):\n        raise RuntimeError('ran')\n"
        "class Rows(list):\n    def __iter__(self):\n        raise RuntimeError('ran')\n"
    )
    for cls, wrap in ((ns["Keys"], lambda v: {"k": v}), (ns["Rows"], lambda v: [v])):
        lock, fine = cls(wrap(threading.Lock())), cls(wrap([1, "a"]))
        for value, simple in ((lock, False), (fine, True)):
            ns["_held"] = value
            fn = main("def f(x=_held):\n    return x\n")["f"]
            assert functions.simple(fn, ns, codec._plain) is simple


def test_a_types_rule_is_remembered_until_its_iteration_changes(main, monkeypatch):
    """reread M1: one cache per type (its iteration, its reducer), found again once the
    class is given an iteration of its own (review60 #2), or loses it."""
    ns = main("class Rows(list):\n    __slots__ = ('tag',)\n")
    derived: list[type] = []
    real = containers.iterates_own_way
    monkeypatch.setattr(containers, "iterates_own_way", lambda t: derived.append(t) or real(t))
    rows = ns["Rows"]
    assert containers.reducer(rows) is None and containers.reducer(rows) is None
    assert derived == [rows]
    rows.__iter__ = lambda self: iter([])
    assert containers.reducer(rows) is containers.stored_contents
    assert containers.reducer(rows) is containers.stored_contents and len(derived) == 2
    del rows.__iter__
    assert containers.reducer(rows) is None and len(derived) == 3


@pytest.mark.parametrize("how", ["getstate", "copyreg"])
def test_a_state_of_its_own_given_later_is_followed(main, how):
    """review64 L1: the cache was keyed on the iteration alone, so a ``__getstate__``
    (or a copyreg reducer) given to the class after a first save was not used: an
    attribute the class now hides still went into the journal."""
    ns = main("class L(list):\n    def __iter__(self):\n        return iter([])\n")
    cls = ns["L"]
    x = cls([1, 2])
    x.token = "SECRET"
    assert b"SECRET" in codec.encode(x, ns).stream
    if how == "getstate":
        cls.__getstate__ = lambda self: {k: v for k, v in vars(self).items() if k != "token"}
    else:
        copyreg.pickle(cls, lambda o: (list, (list(list.__iter__(o)),)))
    try:
        assert b"SECRET" not in codec.encode(x, ns).stream
        assert b"SECRET" not in codec.dumps(x)[1]
    finally:
        copyreg.dispatch_table.pop(cls, None)
