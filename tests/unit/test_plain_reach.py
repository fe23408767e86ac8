"""codec.encode_plain: plain data is pickled once, and what it reaches is read from the
pickler's memo. It must be what graph.reach finds (a missed shared object is a wrong
restore); and the pickle must be encode()'s, byte for byte (or payloads change)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from durable_nb import codec, graph

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
    assert codec.encode_plain([len, 1], ns) is None  # a function
    assert codec.encode_plain({"f": lambda: 1}, ns) is None
    many = [[i] for i in range(codec.MEMO_OBJECTS + 1)]
    enc = codec.encode_plain(many, ns)
    assert enc is not None and enc.reached is None  # too many objects to read the memo
