"""records.py: a list, tuple or dict of instances of plain classes is saved as their classes
and their attributes' dicts, marshaled. What comes back must be what pickle would give:
the same classes, attributes and objects one; any class pickle would treat otherwise (its
own reduce, state, ``__new__``, slots, attribute reads) is pickled as before."""

from __future__ import annotations

import abc
import copy
import copyreg
import gc
import marshal
import pickle
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_marshaled import atoms, restored_after_a_race, shape  # (on the path)
from test_snapshot_props import Notebook, describe, fresh_namespace, restore_anew

from durable_nb import codec, errors, graph, marshaled, records

pytestmark = pytest.mark.unit


class Obj:
    def __init__(self, i):
        self.i, self.tags = i, [i]


@dataclass
class Rec:
    name: str
    size: int | None = 0
    tags: list = field(default_factory=list)


@dataclass(frozen=True)
class Frozen:
    x: object = None


class Empty:
    pass


class Sub(Obj):
    def total(self):
        return self.i


def _payload_calls_rebuild(enc) -> bool:
    return b"durable_nb.records" in enc.stream and b"rebuild" in enc.stream


values = st.lists(st.one_of(atoms, st.lists(atoms, max_size=3),
                            st.dictionaries(st.text(max_size=3), atoms, max_size=3)),
                  max_size=4)  # fmt: skip


@st.composite
def tables(draw):
    """A list, tuple or dict of records of several plain classes, some attributes shared."""
    shared = draw(st.lists(st.lists(atoms, max_size=2), max_size=2))
    made = []
    for i in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from((Obj, Rec, Frozen, Empty, Sub)))
        held = draw(st.one_of(values, st.sampled_from(shared) if shared else values))
        if kind is Rec:
            made.append(Rec(f"r{i}", draw(st.integers()), held))
        elif kind is Frozen:
            made.append(Frozen(held))
        elif kind is Empty:
            made.append(Empty())
        else:
            made.append(kind(i))
            made[-1].tags = held
    top = draw(st.sampled_from(("list", "tuple", "dict")))
    return {"list": list, "tuple": tuple}[top](made) if top != "dict" else {
        f"k{i}": r for i, r in enumerate(made)}  # fmt: skip


def state(value) -> list:
    """Types and attributes of the records, with each object's identity as first met."""
    items = list(value.values()) if type(value) is dict else list(value)
    return [type(value), *[type(r) for r in items], *shape([vars(r) for r in items])]


@settings(max_examples=30, deadline=None)
@given(value=tables())
def test_records_come_back_as_pickle_makes_them(value):
    value = copy.deepcopy(value)  # (Hypothesis holds the records it drew: held elsewhere)
    gc.collect()  # (garbage holding objects of it would go between the walks)
    enc, reached = codec.encode_reach(value, {})
    again = graph.reach(value, {}).keys
    assert enc is not None and _payload_calls_rebuild(enc)
    assert reached.keys == again
    back = codec.decode(enc.codec, enc.stream, [])
    assert state(back) == state(value)
    assert state(pickle.loads(pickle.dumps(value))) == state(back)  # what pickle gives


class OwnReduce(Obj):
    def __reduce__(self):
        return (Obj, (self.i,))


class OwnState(Obj):
    def __getstate__(self):
        return {"i": self.i}


class SetsState(Obj):
    def __setstate__(self, state):
        self.__dict__.update(state, restored=True)


class NewArgs(Obj):
    def __getnewargs__(self):
        return ()


class MadeOwnWay(Obj):
    def __new__(cls, *args):
        return super().__new__(cls)


class Reads(Obj):
    def __getattr__(self, name):
        return 0


class Slotted:
    __slots__ = ("__dict__", "i")

    def __init__(self, i):
        self.i = i


class Meta(abc.ABC):  # noqa: B024  (a metaclass: ABCMeta)
    def __init__(self, i):
        self.i = i


class Listed(list):
    pass


@pytest.mark.parametrize("value", [
    [OwnReduce(1)], [OwnState(1)], [SetsState(1)], [NewArgs(1)], [MadeOwnWay(1)], [Reads(1)],
    [Slotted(1)], [Meta(1)], [Listed([1])],
    [Obj(1), 2],  # builtin data beside the records at the top
    [Obj(1), Obj(2)] * 2,  # one record twice: pickle keeps it one
    [Rec("a", 1, [Obj(2)])],  # a record in a record's attributes
    [Rec("a", 1, b"raw")], [Rec("a", 1, bytearray(b"x"))],  # what marshal writes alike
])  # fmt: skip
def test_classes_pickle_treats_otherwise_are_pickled(value):
    enc, _ = codec.encode_reach(value, {})
    assert enc is None or not _payload_calls_rebuild(enc)


def test_a_container_holding_itself_beside_records_is_pickled():
    """The container's own id is left out of what tells a record held elsewhere: a list
    or dict holding itself is still no container of records only."""
    looped = [Obj(1), Obj(2)]
    looped.append(looped)
    table = {"a": Obj(1)}
    table["self"] = table
    for value in (looped, table):
        enc, _ = codec.encode_reach(value, {})
        assert enc is not None and not _payload_calls_rebuild(enc)
        back = codec.decode(enc.codec, enc.stream, enc.buffers)
        assert (back[-1] if type(back) is list else back["self"]) is back


def test_a_class_redefined_with_its_own_state_since_is_made_as_pickle_would():
    """rebuild asks the class it is given (the restore's): one that sets its state now."""
    enc, _ = codec.encode_reach([Obj(1), Obj(2)], {})
    assert _payload_calls_rebuild(enc)
    stream = enc.stream.replace(b"\x8c\x03Obj", b"\x8c\tSetsState")
    back = codec.decode(enc.codec, stream, [])
    assert [type(o) for o in back] == [SetsState, SetsState]
    assert [vars(o) for o in back] == [{"i": 1, "tags": [1], "restored": True},
                                       {"i": 2, "tags": [2], "restored": True}]  # fmt: skip


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


def test_notebook_records_restore_as_the_notebooks_classes(shell):
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run("from dataclasses import dataclass, field\n"
               "@dataclass\nclass Rec:\n    name: str\n"
               "    tags: list = field(default_factory=list)\n"
               "recs = [Rec(f'n{i}', [i]) for i in range(200)]\n"
               "by_name = {r.name: Rec(r.name) for r in recs[:50]}")  # fmt: skip
        nb.run("recs.append(Rec('x'))\nby_name['x'] = Rec('x', ['y'])")
        journal = nb.rt.journal
        streams = [p.stream for p in journal.payloads(journal.payload_ids()).values()]
        assert sum(b"durable_nb.records" in (s or b"") for s in streams) >= 2  # (both)
        live = describe(shell.user_ns, ["by_name", "recs"])
        restore_anew(shell, nb)
        assert describe(shell.user_ns, ["by_name", "recs"]) == live
        rec = shell.user_ns["Rec"]
        assert all(
            type(r) is rec for r in [*shell.user_ns["recs"], *shell.user_ns["by_name"].values()]
        )
        assert shell.user_ns["recs"][-1] == rec("x")


def test_a_buffer_a_thread_puts_in_a_record_after_the_walk_is_refused(shell, monkeypatch):
    cells = ["class Obj:\n    def __init__(self, i):\n        self.i = i\n"
             "objs = [Obj(i) for i in range(3)]", "objs.append(Obj(3))"]  # fmt: skip

    def change(objs):
        objs[0].tags = bytearray(b"late")

    skipped = restored_after_a_race(shell, monkeypatch, cells, "objs", change)
    assert "a thread changed it" in skipped.get("objs", "")


class Later:
    def __init__(self, i):
        self.i, self.cache = i, [i]


def test_a_class_that_gains_its_own_state_later_is_pickled_by_it():
    """records.plain is asked anew: a class given a __getstate__ after a first save."""
    value = [Later(1), Later(2)]
    first, _ = codec.encode_reach(value, {})
    Later.__getstate__ = lambda self: {"i": self.i}
    try:
        again, _ = codec.encode_reach(value, {})
    finally:
        del Later.__getstate__
    assert _payload_calls_rebuild(first) and (again is None or not _payload_calls_rebuild(again))


class _Key(str):
    hashed = 0

    def __hash__(self):
        _Key.hashed += 1
        return str.__hash__(self)


def test_a_class_dict_with_a_key_no_exact_string_is_no_records_and_runs_nothing():
    keyed = type("Keyed", (), {_Key("odd"): 1})  # (setattr would copy it to a str)
    _Key.hashed = 0
    assert not records.plain(keyed) and _Key.hashed == 0


def test_a_class_a_thread_changes_while_the_dicts_are_read_is_pickled(monkeypatch):
    """helper-74 M1: a record's class read first and its dict after: a thread (or a
    finalizer) changing ``__class__`` in between would pair the old class with the new
    attributes. Its class is read again after the write."""
    value = [Obj(1), Obj(2)]
    write = marshaled.write

    def racing(payload):
        value[1].__class__ = Sub  # the thread's turn
        return write(payload)

    monkeypatch.setattr(marshaled, "write", racing)
    enc, _ = codec.encode_reach(value, {})
    assert enc is None or not _payload_calls_rebuild(enc)


def test_a_class_bound_to_an_ipython_name_is_not_named_by_it():
    """helper-74 M2: a restore never has ``_`` (or ``Out``): such a class is saved by value."""
    main = sys.modules["__main__"]
    cls = type("_", (), {"__module__": "__main__"})
    had, old = hasattr(main, "_"), getattr(main, "_", None)
    main._ = cls
    try:
        enc, _ = codec.encode_reach([cls(), cls()], {})
    finally:
        if had:
            main._ = old
        else:
            del main._
    assert enc is None


class Copyregged(Obj):
    pass


class SlotNamed(Obj):
    __slotnames__ = ("extra",)


def test_what_pickle_reads_beside_the_class_dict_is_no_records():
    """helper-74 M3, L2: a reducer in copyreg's table, names in ``__slotnames__``."""
    copyreg.pickle(Copyregged, lambda o: (Copyregged, (o.i,)))
    try:
        assert not records.plain(Copyregged)
    finally:
        del copyreg.dispatch_table[Copyregged]
    assert records.plain(Copyregged) and not records.plain(SlotNamed)


class LaterState:
    pass


def test_an_empty_record_of_a_class_given_a_setstate_since_is_made_as_pickle_makes_it():
    """helper-74 L1: pickle writes no state for an empty ``__dict__``: no ``__setstate__``."""
    enc, _ = codec.encode_reach([LaterState(), LaterState()], {})
    assert _payload_calls_rebuild(enc)
    LaterState.__setstate__ = lambda self, state: self.__dict__.update(called=True)
    try:
        back = codec.decode(enc.codec, enc.stream, [])
    finally:
        del LaterState.__setstate__
    assert [vars(o) for o in back] == [{}, {}]


@pytest.mark.parametrize("got", [
    ("set", None, None, [{}]), ("list", ["k"], None, [{}]), ("dict", ["k", "k"], None, [{}, {}]),
    ("list", None, [0, 1], [{}]), ("list", None, [-1], [{}]), ("list", None, [True], [{}]),
    ("list", None, None, [[("x", 1)]]), ["list", None, None, [{}]], ("list", None, None),
    ("dict", None, None, [{}]), ("list", None, [5], [{}]),
])  # fmt: skip
def test_a_blob_encode_never_writes_is_refused(got):
    """helper-74 L3: a damaged (or forged) payload is refused, never made into values."""
    with pytest.raises(errors.PayloadRefused):
        records.rebuild((Obj,), marshal.dumps(got, marshaled.VERSION))
