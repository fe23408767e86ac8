"""instances.walked_by_dict: the classes whose instances graph.reach reads by their
``__dict__`` (and their class once) instead of the collector's referents. Checked against
the collector itself on generated classes: a class said to qualify whose instance holds
anything more (a slot, a C base's items) would hide what the walk must find."""

from __future__ import annotations

import _queue
import gc
import weakref

from hypothesis import given, settings
from hypothesis import strategies as st

from durable_nb import graph, instances


class _Meta(type):
    pass


class _Plain:
    pass


class _Slotted:
    __slots__ = ("__dict__", "__weakref__", "a")


_BASES = {
    "object": (),
    "plain": (_Plain,),
    "slotted": (_Slotted,),
    "tuple": (tuple,),
    "int": (int,),
    "list": (list,),
    "dict": (dict,),
    "exception": (Exception,),
    "C queue": (_queue.SimpleQueue,),  # a C base that holds objects, its lookup inherited
}
_OWN = {
    "nothing": {},
    "slots": {"__slots__": ("a",)},
    "dict slot": {"__slots__": ("__dict__",)},
    "getattr": {"__getattr__": lambda self, name: 1},
    "getattribute": {"__getattribute__": lambda self, name: object.__getattribute__(self, name)},
    "dict property": {"__dict__": property(lambda self: {})},
    "method": {"m": lambda self: 1},
    "not a str key": {1: 2},
    "dict is None": {"__dict__": None},  # (review109 F1: its base's dict descriptor is not it)
    "slots, deleted": {"__slots__": ("x0", "__dict__")},  # (F2: then ``del __slots__``)
}


def _make(base: str, own: str, meta: bool) -> type:
    made = (_Meta if meta else type)("Made", _BASES[base], dict(_OWN[own]))
    if own == "slots, deleted":
        del made.__slots__  # its slot stays: a plain class's size, no weak reference
    return made


def _instance(t: type):
    if issubclass(t, tuple | int):
        return t.__new__(t, (7,) if issubclass(t, tuple) else 7)
    o = t.__new__(t)
    if issubclass(t, _queue.SimpleQueue):
        o.put([1])
    return o


_VALUES = st.lists(st.one_of(st.integers(), st.text(max_size=3), st.just([1]), st.just({})),
                   max_size=4)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(_BASES)), st.sampled_from(sorted(_OWN)), st.booleans(), _VALUES,
       st.booleans(), st.booleans())  # fmt: skip
def test_a_class_said_to_qualify_holds_nothing_but_its_dict_and_class(
    base, own, meta, values, materialize, weakly
):
    try:
        t = _make(base, own, meta)
        o = _instance(t)
    except TypeError:  # (a layout Python refuses: slots over a C base's items)
        return
    holder = object.__getattribute__(o, "__dict__") if hasattr(t, "__dictoffset__") and (
        t.__dictoffset__ and own != "dict property") else None  # fmt: skip
    for i, v in enumerate(values):
        object.__setattr__(o, f"x{i}", v) if holder is not None else None
    if materialize and holder is not None:
        holder = object.__getattribute__(o, "__dict__")
    ref = weakref.ref(o) if weakly and t.__weakrefoffset__ else None
    if not instances.walked_by_dict(t):
        return
    found = gc.get_referents(o)
    state = graph._STATE(o)  # (makes the dict now if the values were inline)
    assert found.count(t) == 1
    rest = [x for x in found if x is not t]
    assert rest == [state] or sorted(map(id, rest)) == sorted(map(id, state.values()))
    del ref


def test_plain_classes_qualify_and_the_others_do_not():
    from dataclasses import dataclass

    @dataclass
    class Rec:
        name: str

    class Sub(Rec):
        pass

    assert all(map(instances.walked_by_dict, (_Plain, Rec, Sub, _make("plain", "method", False))))
    assert not any(
        instances.walked_by_dict(_make(base, own, meta))
        for base, own, meta in [("tuple", "nothing", False), ("int", "nothing", False),
                                ("list", "nothing", False), ("slotted", "nothing", False),
                                ("object", "slots", False), ("object", "dict slot", False),
                                ("object", "getattribute", False), ("object", "getattr", False),
                                ("object", "dict property", False), ("object", "nothing", True),
                                ("exception", "nothing", False), ("object", "not a str key", False),
                                ("C queue", "nothing", False), ("plain", "dict is None", False),
                                ("object", "slots, deleted", False)]
    )  # fmt: skip


def test_records_walked_by_their_dicts_tie_what_they_share():
    """A list of records (the bulk walk reads their dicts): what one record's attribute
    shares with another variable is keyed; a record held twice, or weakly, is keyed."""

    class Rec:
        pass

    shared, recs = [1], []
    for i in range(200):
        r = Rec()
        r.i, r.tags = i, ([] if i != 150 else shared)
        recs.append(r)
    del r
    assert graph.SMALL < len(recs)
    assert id(shared) in graph.reach(recs, {}).keys
    assert graph.reach(recs, {}).keys & graph.reach([shared], {}).keys == {id(shared)}
    twice = recs[7]
    assert id(twice) in graph.reach(recs, {}).keys & graph.reach([twice], {}).keys
    del twice
    ref = weakref.ref(recs[9])
    assert id(recs[9]) in graph.reach(recs, {}).keys
    del ref
    reached = graph.reach(recs, {}, typed=True)
    assert reached.keys == {id(recs), id(shared)} and {Rec, dict, list, int} <= reached.types


def test_a_class_that_gains_an_attribute_lookup_is_read_without_it():
    """Asked anew each walk: a ``__getattribute__`` added to a class after a walk is never
    called by the next (the walk runs none of the notebook's code)."""

    class Rec:
        pass

    recs = [Rec() for _ in range(100)]
    for r in recs:
        r.x = [1]
    del r
    first = graph.reach(recs, {}).keys
    calls = []

    def lookup(self, name):
        calls.append(name)
        return object.__getattribute__(self, name)

    Rec.__getattribute__ = lookup
    assert graph.reach(recs, {}).keys == first == {id(recs)}
    assert calls == []


def test_a_lookup_in_any_base_is_never_called():
    """review110 F4: a plain subclass of a base that holds no dict (``__slots__ = ()``) and
    reads attributes its own way: refused, so its ``__getattribute__`` never runs and what
    the dicts share is keyed."""
    calls = []

    class Base:
        __slots__ = ()

        def __getattribute__(self, name):
            calls.append(name)
            return object.__getattribute__(self, name)

    class Rec(Base):
        pass

    assert not instances.walked_by_dict(Rec)
    shared, recs = [1], [Rec() for _ in range(100)]
    for r in recs:
        object.__setattr__(r, "v", None)
    object.__setattr__(recs[7], "v", shared)
    del r
    calls.clear()
    assert id(shared) in graph.reach(recs, {}).keys and calls == []
