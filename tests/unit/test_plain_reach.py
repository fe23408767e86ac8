"""codec.encode_plain: plain data is pickled once, and what it reaches is read from the
pickler's memo. It must be what graph.reach finds (a missed shared object is a wrong
restore); and the pickle must be encode()'s, byte for byte (or payloads change)."""

from __future__ import annotations

import pytest
from hypothesis import given
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
    # The empty tuple is a singleton pickle does not memoize: it ties nothing (immutable).
    assert enc.reached.keys == walked.keys - {id(())}


def test_anything_else_is_walked():
    ns: dict = {}
    assert codec.encode_plain([Custom()], ns) is None  # its own reduce
    assert codec.encode_plain([len, 1], ns) is None  # a function
    assert codec.encode_plain({"f": lambda: 1}, ns) is None
    many = [[i] for i in range(codec.MEMO_OBJECTS + 1)]
    enc = codec.encode_plain(many, ns)
    assert enc is not None and enc.reached is None  # too many objects to read the memo
