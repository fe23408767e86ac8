"""codec.encode_plain: plain data is pickled once, and what it reaches is read from the
pickler's memo. It must be what graph.reach finds (a missed shared object is a wrong
restore); and the pickle must be encode()'s, byte for byte (or payloads change)."""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from durable_nb import codec, fingerprints, graph

pytestmark = pytest.mark.unit


class Plain:
    """A plain class: object's reduce, a __dict__, methods naming globals."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)

    def touch(self):
        return HELD  # noqa: F821  (a global its code names)


class Custom(Plain):
    def __reduce__(self):
        return (Plain, ())


atoms = st.one_of(st.integers(), st.text(max_size=3), st.booleans(), st.none(), st.floats())
MAKERS = ("list", "dict", "tuple", "set", "frozenset", "instance", "bytearray")


@st.composite
def graphs(draw):
    """A value built from a pool, each node holding earlier nodes: objects are shared."""
    pool: list = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(MAKERS))
        items = draw(st.lists(st.one_of(atoms, st.sampled_from(pool) if pool else atoms),
                              max_size=4))  # fmt: skip
        pool.append(_make(kind, items))
    return pool[-1]


def _make(kind: str, items: list):
    hashable = [x for x in items if _hashable(x)]
    if kind == "list":
        return list(items)
    if kind == "dict":
        return {f"k{i}": x for i, x in enumerate(items)}
    if kind == "tuple":
        return tuple(items)
    if kind == "set":
        return set(hashable)
    if kind == "frozenset":
        return frozenset(hashable)
    if kind == "instance":
        return Plain(**{f"a{i}": x for i, x in enumerate(items)})
    return bytearray(b"xy")


def _hashable(x) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


@given(graphs())
def test_the_memo_reaches_what_the_walk_reaches(value):
    ns = {"Plain": Plain}
    enc = codec.encode_plain(value, ns)
    assert enc is not None
    assert enc.stream == codec.encode(value, ns, (value,)).stream
    walked = graph.reach(value, ns)
    assert enc.reached is not None
    assert enc.reached.names == walked.names
    # The walk keys only objects held more than once (one held once is reached only through
    # its holder); the memo keys all. The empty tuple is a singleton pickle does not
    # memoize: it ties nothing (immutable).
    assert walked.keys - {id(())} <= enc.reached.keys


#: A node: its kind and its items, each an atom or ("node", j) for an earlier node j.
nodes = st.lists(
    st.tuples(st.sampled_from(MAKERS),
              st.lists(st.one_of(atoms, st.tuples(st.just("node"), st.integers(0, 30))),
                       max_size=4)),
    min_size=1, max_size=10,
)  # fmt: skip


def _build(spec: list, pool: list) -> None:
    for kind, items in spec:
        got = []
        for x in items:
            if not isinstance(x, tuple):  # an atom
                got.append(x)
            elif pool:  # ("node", j)
                got.append(pool[x[1] % len(pool)])
        pool.append(_make(kind, got))


def _data(value, found: dict) -> None:
    """Every data object ``value`` holds (containers, instances and their __dict__)."""
    if graph.kind(type(value)) != graph.WALK or id(value) in found:
        return
    found[id(value)] = value
    inner = value.__dict__.values() if isinstance(value, Plain) else (
        [*value.keys(), *value.values()] if isinstance(value, dict) else
        value if not isinstance(value, bytearray) else ())  # fmt: skip
    if isinstance(value, Plain):
        found[id(value.__dict__)] = value.__dict__
    for x in inner:
        _data(x, found)


@given(nodes, nodes)
@example([("tuple", [])], [("tuple", [])])  # both the empty tuple: one object, ties nothing
def test_two_values_are_tied_exactly_when_they_share_an_object(first, second):
    """Built here, not by Hypothesis (which would hold the objects too): what holds an
    object decides what is keyed."""
    pool: list = []
    _build(first, pool)
    a = pool[-1]
    _build(second, pool)
    b = pool[-1]
    del pool  # a and b hold what they hold, and nothing else does
    da, db = {}, {}
    _data(a, da)
    _data(b, db)
    shared = (da.keys() & db.keys()) - {id(())}
    del da, db
    tied = graph.reach(a, {}).keys & graph.reach(b, {}).keys
    assert bool(tied) == bool(shared)
    assert tied <= shared


def test_anything_else_is_walked():
    ns: dict = {}
    assert codec.encode_plain([Custom()], ns) is None  # its own reduce
    assert codec.encode_plain([len, 1], ns) is None  # a builtin function
    assert codec.encode_plain({"f": lambda: 1}, ns) is None  # not bound to its name
    assert codec.encode_plain(Plain, ns) is None  # a variable's own class: by value
    enc = codec.encode_plain([_make, 1], ns)  # pickled by name, but the walk says what
    assert enc is not None and enc.reached is None  # a function reaches
    many = [[i] for i in range(codec.MEMO_OBJECTS + 1)]
    enc = codec.encode_plain(many, ns)
    assert enc is not None and enc.reached is None  # too many objects to read the memo


class Mine(Plain):
    """A notebook class (``__main__``'s), bound to its name there while a test runs."""


Mine.__module__ = "__main__"


class Slotted:
    __slots__ = ("a",)

    def __init__(self, a):
        self.a = a


class Once(Plain):
    calls = 0

    def __reduce__(self):
        Once.calls += 1
        return (Once, ())


@pytest.fixture
def main_ns(monkeypatch):
    """The notebook's globals: ``__main__``'s (as in a kernel), holding ``Mine``."""
    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "Mine", Mine, raising=False)
    return vars(main)


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=graphs(), many=st.booleans())
def test_notebook_instances_are_pickled_by_reference_to_their_class(main_ns, value, many):
    """No Python call per instance: the class goes by name (``__main__.Mine``), which a
    restore resolves to the restored class; it is the payload's ref either way (memo or
    walk), and the memo reaches what the walk does."""
    value = [Mine(v=value, w=[value]) for _ in range(codec.MEMO_OBJECTS if many else 2)]
    enc, reached = codec.encode_reach(value, main_ns)
    assert enc is not None and "Mine" in enc.refs
    walked = graph.reach(value, main_ns)
    assert walked.keys - {id(())} <= reached.keys and reached.names == walked.names
    asked = []

    def resolve(name):
        asked.append(name)
        return Mine

    back = codec.decode(enc.codec, enc.stream, enc.buffers, resolve)
    assert asked == ["Mine"] and type(back[0]) is Mine
    assert fingerprints.fingerprint(back) == fingerprints.fingerprint(value)
    assert back[0].w[0] is back[0].v and back[0].v is back[1].v  # identity inside survives


def test_what_pickle_by_reference_cannot_save_goes_to_encode(main_ns, monkeypatch):
    """A class rebound (its instances' class is no longer the notebook's), slots, a user's
    reduce: encode()'s (the first's class by value, with it), and the user's reduce runs
    once a save."""
    old = Mine
    monkeypatch.setattr(sys.modules["__main__"], "Mine", type("Mine", (), {}))
    assert codec.encode_plain([old()], main_ns) is None
    enc = codec.encode([old()], main_ns)
    back = codec.decode(enc.codec, enc.stream, enc.buffers)
    assert type(back[0]).__qualname__ == "Mine" and type(back[0]) not in (old, main_ns["Mine"])
    assert isinstance(back[0], Plain) and enc.refs == frozenset()
    assert codec.encode_plain([Slotted([1])], main_ns) is None
    Once.calls = 0
    value = [Once()]
    assert codec.encode_reach(value, main_ns)[0] is None
    assert Once.calls == 0  # stopped before its reduce ran
    codec.encode(value, main_ns)
    assert Once.calls == 1


def test_shared_objects_reached_through_instances_tie_variables(main_ns):
    shared = [1]
    a = [Mine(t=shared) for _ in range(codec.MEMO_OBJECTS)]  # walked
    b = {"x": Mine(t=shared)}  # read from the memo
    for value in (a, b):
        assert id(shared) in codec.encode_reach(value, main_ns)[1].keys
    c = [Mine(t=[1]) for _ in range(3)]
    assert not codec.encode_reach(c, main_ns)[1].keys & codec.encode_reach(b, main_ns)[1].keys


def test_a_big_value_s_stream_is_its_pickle_whole():
    """The memo's size is read from pickles written after the value's and cut off: the
    stream is the value's pickle, byte for byte, whatever the memo's size."""
    cases = [([[i] for i in range(codec.MEMO_OBJECTS + 10)], True),  # memo: the lists
             (list(range(100_000)), False),  # numbers are not memoized
             ({f"k{i}": [i] for i in range(3)}, False)]  # fmt: skip
    for value, walked in cases:
        enc = codec.encode_plain(value, {})
        assert enc is not None
        assert enc.stream == codec.encode(value, {}, (value,)).stream
        assert (enc.reached is None) == walked


def test_a_library_module_reaches_what_its_walk_reaches(tmp_path, monkeypatch):
    """encode_reach answers for a library's module without a walk: what the walk finds
    (nothing); a module of the notebook's own is walked (its data ties variables)."""
    import json
    import uuid

    ns: dict = {}
    for module in (json, sys, graph):
        enc, reached = codec.encode_reach(module, ns)
        assert enc is None and reached == graph.reach(module, ns) == graph.Reach()
    name = f"dnb_own_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("DATA = [1]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    own = __import__(name)
    enc, reached = codec.encode_reach(own, ns)
    assert id(own.DATA) in reached.keys and reached.keys == graph.reach(own, ns).keys
