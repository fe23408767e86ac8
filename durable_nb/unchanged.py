"""Whether a value changed since it was pickled, without pickling it again.

:class:`Same`: a small container of immutable objects (a list of names, a dict of
settings, a tuple of dates) that still holds the very objects it held when saved has the
same payload; telling so is one pass in C over its items, where pickling it and reading
what it reaches again cost ~20 µs a variable every cell of the sweep. :func:`by_name`: a
library's module, class or function, pickled as its name. (A notebook function or class:
:mod:`durable_nb.prints`.)
"""

from __future__ import annotations

import datetime
import sys
import types
from operator import is_
from sys import getrefcount
from typing import Any

from . import codec, containers
from .graph import own_module

#: Exact types whose objects never change in place; ``datetime`` and ``time`` only without
#: a tzinfo (one may be any object), checked apart.
_IMMUTABLE = codec.ATOMS | {complex, datetime.date, datetime.timedelta}
_ZONED = frozenset({datetime.datetime, datetime.time})
_CONTAINERS = frozenset({list, dict, set, tuple, frozenset})
_LEAVES = _IMMUTABLE | _ZONED  # (a zoned one only without a tzinfo: Same.of checks)
#: Past this many items, the container is pickled again (so is a print: it is no help).
SAME_ITEMS = 4_096
#: Past this many items read in the tuples it holds (each tuple read once), no Same: a
#: list of 4,096 pairs or 5-tuples has one, a grid of distinct tuples may not.
READ_ITEMS = 16 * SAME_ITEMS


class _Read(set):
    """The tuples read (by id), and how many items they held in all."""

    items = 0


def _immutable(o: Any, depth: int = 0, read: _Read | None = None) -> bool:
    """Whether ``o`` and all it holds can never change (so its pickle cannot either).

    A tuple met again is not read again, and past :data:`READ_ITEMS` items read in all the
    answer is no: ``[((0,) * 4096,) * 4096]`` is read in 8,192 steps, not 16 million
    (review5 F2)."""
    t = type(o)
    if t in _IMMUTABLE:
        return True
    if t in _ZONED:
        return o.tzinfo is None
    if (t is tuple or t is frozenset) and depth < 4:
        read = _Read() if read is None else read
        if id(o) in read:
            return True
        read.add(id(o))
        read.items += len(o)
        if read.items > READ_ITEMS:
            return False
        return all(_immutable(x, depth + 1, read) for x in o)
    return False


def _all_immutable(items: tuple) -> bool:
    if set(map(type, items)) <= _IMMUTABLE:  # the common case, in C
        return True
    read = _Read()
    return all(_immutable(x, 0, read) for x in items)


#: ``type``'s own getters: a metaclass's ``__module__`` property is the notebook's code.
_CLASS_MODULE, _CLASS_NAME = type.__dict__["__module__"], type.__dict__["__qualname__"]


def by_name(value: Any) -> bool:
    """Whether ``value`` pickles as its name and holds nothing of the notebook's: a
    library's module, class, builtin of a module, or function with no closure, attributes
    or mutable defaults, which its module and qualified name still find. Then the same
    object has the same payload: it is neither walked nor pickled again (``display`` in
    ``display(x)``: ~40 µs a cell). Dict lookups only: no code of the value runs."""
    t = type(value)
    if t is types.ModuleType:
        name = value.__dict__.get("__name__")
        return type(name) is str and sys.modules.get(name) is value and not own_module(name)
    if t is types.FunctionType:
        # Its keyword defaults are a dict: none of the notebook's may hold it (getrefcount:
        # the function's, ``kw``'s and the call's), else a change through it is a variable's.
        kw = value.__kwdefaults__
        if (
            value.__closure__
            or value.__dict__
            or (kw is not None and getrefcount(kw) > 3)
            or not _all_immutable((*(value.__defaults__ or ()), *(kw or {}).values()))
        ):
            return False
        module, qualname = value.__module__, value.__qualname__
    elif t is types.BuiltinFunctionType:  # ``push = rows.append`` is bound to data
        if type(value.__self__) is not types.ModuleType:
            return False
        module, qualname = value.__module__, value.__qualname__
    elif issubclass(t, type):  # (its instances' classes: the walk does not enter them)
        module, qualname = _CLASS_MODULE.__get__(value), _CLASS_NAME.__get__(value)
        if any(own_module(_CLASS_MODULE.__get__(c)) for c in containers.MRO(value)):
            return False
    else:
        return False
    if type(module) is not str or type(qualname) is not str or own_module(module):
        return False
    found: Any = sys.modules.get(module)
    if t is types.FunctionType and (
        type(found) is not types.ModuleType or value.__globals__ is not found.__dict__
    ):  # the notebook's code posing as json's (``__module__`` set): review59 F2
        return False
    for part in qualname.split("."):
        if type(found) is types.ModuleType:
            found = found.__dict__.get(part)
        elif issubclass(type(found), type):
            found = containers.CLASS_DICT(found).get(part)
        else:
            return False
    return found is value


class Same:
    """A saved value (an immutable one, or a list, dict or set of immutable objects) kept
    with the items it held, by identity.

    While :meth:`holds` the value, its pickle is the one saved: the same container (kept
    alive here, so no other object takes its id) holds the same objects in the same
    order, and none of them can change. Anything else (a subclass, an item that can change,
    more than :data:`SAME_ITEMS` items) gets no ``Same`` (:meth:`of` is None).
    """

    __slots__ = ("_keys", "_snap", "_value", "_values", "flat")

    def __init__(self, value: Any, keys: tuple, values: tuple, snap: Any = None) -> None:
        self._value, self._keys, self._values, self._snap = value, keys, values, snap
        #: Whether it holds nothing but leaves (numbers, strings, dates): no object in it
        #: another variable may take out and share (sharing.Settled.proven).
        items = value if type(value) in (tuple, frozenset) else (*keys, *values)
        self.flat = set(map(type, items)) <= _LEAVES

    @classmethod
    def of(cls, value: Any) -> Same | None:
        t = type(value)
        if t not in _CONTAINERS:
            return cls(value, (), ()) if _immutable(value) else None
        if len(value) > SAME_ITEMS:
            return None
        if t is tuple or t is frozenset:
            return cls(value, (), ()) if _immutable(value) else None
        # Each read one call in C: a thread changing the value meanwhile cannot pair the
        # keys of one moment with the values of another (review6 F-A).
        snap = value.copy() if t is dict else None
        keys = tuple(value if snap is None else snap)
        values = () if snap is None else tuple(snap.values())
        if len(keys) > SAME_ITEMS or not (_all_immutable(keys) and _all_immutable(values)):
            return None
        return cls(value, keys, values, snap)

    def copy(self) -> Any:
        """A new container holding what the value held when this was taken (an immutable
        value itself): whatever happens to the value, its pickle is what this holds to."""
        t, keys = type(self._value), self._keys
        if t is dict:  # the copy read from: handed over, not kept alive here
            snap, self._snap = self._snap, None
            return dict(zip(keys, self._values, strict=True)) if snap is None else snap
        if t is list:
            return list(keys)
        return set(keys) if t is set else self._value

    def holds(self, value: Any) -> bool:
        """Whether ``value`` is the value saved, holding what it held then."""
        if value is not self._value:
            return False
        keys, t = self._keys, type(value)
        if t is not dict and t is not list and t is not set:
            return True  # immutable through and through
        # Read in one call each (iterating a dict a thread resizes would raise, review6 F-D).
        now = tuple(value)
        if len(now) != len(keys) or not all(map(is_, now, keys)):
            return False
        return t is not dict or all(map(is_, tuple(value.values()), self._values))
