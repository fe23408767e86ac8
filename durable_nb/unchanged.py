"""Whether a value changed since it was pickled, without pickling it again.

:class:`Same`: a small container of immutable objects (a list of names, a dict of
settings, a tuple of dates) that still holds the very objects it held when saved has the
same payload; telling so is one pass in C over its items, where pickling it and reading
what it reaches again cost ~20 µs a variable every cell of the sweep.

A :class:`Print` lists everything its payload (:func:`durable_nb.codec.encode`) is made
of: code objects by identity, the values of names, defaults, closure cells, attributes and
class dicts by content, and which objects are one object (pickle's memo). Equal prints mean
equal payloads; anything it cannot read cheaply and exactly gives no print (pickled again).
"""

from __future__ import annotations

import datetime
import gc
import struct
import sys
import types
import typing
from operator import is_
from sys import getrefcount
from typing import Any

from . import codec, containers, functions
from .graph import ABSENT, ANNOTATION_PARTS, SENTINELS, own_module, own_state

#: Past this many parts (a function holding a big table), pickling is as cheap: no print.
LIMIT = 4_000
#: Past this many bytes of strings and bytes, no print: a print (and the pickle kept with
#: it) keeps what it read alive, so it must stay small (review13 F4).
MAX_BYTES = 1 << 20
_DEPTH = 60

#: Immutable objects pickled as themselves (by the writer's ``repr``-free bytes below).
_NUMBERS = {int: None, bool: None, type(None): None}
#: Objects whose pickle depends on nothing that can change: kept, compared by identity.
_FIXED = (types.CodeType, types.GetSetDescriptorType, types.MemberDescriptorType,
          types.WrapperDescriptorType, types.MethodDescriptorType,
          types.ClassMethodDescriptorType, types.BuiltinFunctionType)  # fmt: skip


def small(got: Any) -> bool:
    """Whether ``got`` (what pickling gave) is small enough to keep beside its print."""
    if not isinstance(got, codec.Encoded):
        return True  # not a pickle: how it is recorded instead
    return len(got.stream) + sum(b.nbytes for b in got.buffers) <= MAX_BYTES


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
_MRO, _CLASS_DICT = type.__dict__["__mro__"], type.__dict__["__dict__"]


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
        if any(own_module(_CLASS_MODULE.__get__(c)) for c in _MRO.__get__(value)):
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
            found = _CLASS_DICT.__get__(found).get(part)
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


class _Unreadable(Exception):
    """Something the print cannot read exactly: the value is pickled again."""


class Print:
    """The parts of ``value``'s payload (``members``: values saved by value, as in
    :func:`codec.encode`); ``parts`` is None when it cannot be read cheaply."""

    __slots__ = ("_keep", "parts")

    def __init__(self, value: Any, ns: dict[str, Any], members: tuple = ()) -> None:
        walk = _Walk(ns, members or (value,))
        try:
            walk.add(("dill", _dill_settings()))
            walk.walk(value, 0)
        except KeyboardInterrupt:  # Ctrl-C: the work under way stops
            raise
        except BaseException:  # _Unreadable, RecursionError, a library's property raising...
            self.parts, self._keep = None, None
            return
        self.parts = walk.parts
        self._keep = walk.keep  # the objects named by id stay alive: no id is reused

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Print) and self.parts is not None and self.parts == other.parts

    __hash__ = None  # type: ignore[assignment]


#: What dill's pickler reads of ``dill.settings`` (their defaults until dill is imported).
_DILL_DEFAULTS = (("byref", False), ("fmode", 0), ("ignore", False), ("recurse", False))


def _dill_settings() -> tuple:
    # dill may be half imported (by the journal's opening thread): its defaults, then.
    settings = getattr(sys.modules.get("dill"), "settings", None)
    if not isinstance(settings, dict):
        return _DILL_DEFAULTS
    return tuple((k, settings.get(k, v)) for k, v in _DILL_DEFAULTS)


class _Walk:
    def __init__(self, ns: dict[str, Any], members: tuple) -> None:
        self.by_name = codec._ByName(ns, {id(m) for m in members})
        self.parts: list[Any] = []
        self.keep: list[Any] = []
        self.seen: dict[int, int] = {}
        self.size = 0  # bytes of the strings and bytes read

    def add(self, part: Any) -> None:
        self.parts.append(part)
        if len(self.parts) > LIMIT:
            raise _Unreadable

    def same(self, o: Any) -> None:
        """``o`` by identity: its pickle cannot change while it lives."""
        self.keep.append(o)
        self.add(("is", id(o)))

    def walk(self, o: Any, depth: int) -> None:
        t = type(o)
        if t in _NUMBERS:
            self.add((t, o))
            return
        if t is float:  # bytes: -0.0 == 0.0, yet they pickle apart
            self.add((t, struct.pack("<d", o)))
            return
        i = id(o)
        seen = self.seen.get(i)
        if seen is not None:  # one object met twice: a memo reference in the pickle
            self.add(("memo", seen))
            return
        self.seen[i] = len(self.seen)
        self.keep.append(o)
        if t is str or t is bytes:
            self.size += len(o)
            if self.size > MAX_BYTES:  # a big value kept alive for the print: pickle again
                raise _Unreadable
            self.add((t, o))
            return
        if depth > _DEPTH:
            raise _Unreadable
        depth += 1
        if t in (tuple, list, set, frozenset):
            self.add((t, len(o)))
            for x in o:
                self.walk(x, depth)
        elif t is dict:
            self.add((t, len(o)))
            for k, v in o.items():
                self.walk(k, depth)
                self.walk(v, depth)
        elif t is types.CellType:
            try:
                content = o.cell_contents
            except ValueError:
                self.add(("empty cell",))
            else:
                self.add(("cell",))
                self.walk(content, depth)
        elif t is types.FunctionType:
            self.function(o, depth)
        elif issubclass(t, type):
            self.cls(o, depth)
        elif issubclass(t, _FIXED):
            if t is types.BuiltinFunctionType and not issubclass(type(o.__self__),
                                                                 types.ModuleType):  # fmt: skip
                raise _Unreadable  # ``rows.append``: it holds data
            self.same(o)
            self.add((getattr(o, "__module__", None), getattr(o, "__qualname__", None)))
        elif t is staticmethod or t is classmethod:
            self.add((t,))
            self.walk(o.__func__, depth)
        elif t is property:
            self.add((t,))
            for part in (o.fget, o.fset, o.fdel, o.__doc__):
                self.walk(part, depth)
        elif codec._plain(t) and not issubclass(t, _BUILTIN_DATA):
            self.add(("instance",))  # object's reduce: its class, then its __dict__
            self.walk(t, depth)
            self.walk(vars(o), depth)
        elif i in SENTINELS:  # dill writes them by reference (a dataclass holds them)
            self.add(SENTINELS[i])
        elif t is types.MappingProxyType:  # a field's metadata: dill saves a copy
            self.proxy(o, depth)
        elif t is types.GenericAlias or t is types.UnionType or t.__module__ == "typing":
            self.annotation(o, t, depth)  # ``list[int]``, ``Optional[str]``, ``int | None``
        elif _slotted(t):  # a dataclass's fields and parameters
            self.slots(o, t, depth)
        else:
            raise _Unreadable

    def function(self, f: types.FunctionType, depth: int) -> None:
        how = self.by_name.reduce(f)
        if how is NotImplemented:  # a library's (or a helper module's): by reference
            self.located(f)
            return
        if how is not None and how[0] is not codec._global:
            raise _Unreadable  # by value, its own way (a functools wrapper: wrappers.py)
        if how is not None:  # a notebook function bound to its name: that name
            self.same(f)
            self.add(("global", how[1]))
            return
        # By value (functions.reduce): its globals by reference to their module.
        module = functions.module_of(f.__globals__)
        if module is None:
            raise _Unreadable
        if module != "__main__":  # a library's wrapper (a dataclass's ``__repr__``)
            self.same(f.__globals__)
            self.add(("globals of", module))
        self.same(f.__code__)
        self.add(("function", f.__name__, f.__qualname__, f.__module__))
        for part in (f.__doc__, f.__defaults__, f.__kwdefaults__, f.__annotations__,
                     f.__closure__, f.__dict__, getattr(f, "__type_params__", ())):  # fmt: skip
            self.walk(part, depth)

    def cls(self, c: type, depth: int) -> None:
        if c in _SINGLETON_TYPES:  # pickled as ``type(None)``: builtins has no name for it
            self.add(("type of", _SINGLETON_TYPES[c]))
            return
        try:
            how = self.by_name.reduce(c)
        except codec.Unserializable:
            raise _Unreadable from None
        if how is NotImplemented:
            self.located(c)
            return
        if how is not None:
            self.same(c)
            self.add(("global", how[1]))
            return
        # By value: dill writes the metaclass, name, bases and the class's own dict, less
        # what is the very object its bases hold (``f = Base.f``): that is read too.
        # The number of items too: a nested class's walked inline, its last items and
        # the outer class's next ones must not read the same (review13 F1).
        self.add(("class", c.__name__, c.__qualname__, len(vars(c))))
        self.walk(type(c), depth)
        self.walk(c.__bases__, depth)
        inherited: dict[str, Any] = {}
        for base in reversed(c.__bases__):
            inherited.update(vars(base))
        for k, v in vars(c).items():
            self.add(v is inherited.get(k, self))
            self.walk(k, depth)
            self.walk(v, depth)

    def proxy(self, o: types.MappingProxyType, depth: int) -> None:
        under = gc.get_referents(o)  # the mapping it shows, read without calling it
        if len(under) != 1 or type(under[0]) is not dict:
            raise _Unreadable
        self.add(("proxy",))
        self.walk(under[0], depth)

    def annotation(self, o: Any, t: type, depth: int) -> None:
        """A type annotation: a name of ``typing`` (``Optional``), or an alias made of an
        origin and arguments (``list[int]``, ``Optional[str]``): immutable objects."""
        name, *parts = _annotation_state(o, t)
        if type(name) is str and vars(typing).get(name) is o:
            self.same(o)
            self.add(("typing", name))
            return
        if type(parts[ANNOTATION_PARTS.index("__args__")]) is not tuple:
            raise _Unreadable
        self.add(("alias", name if type(name) is str else None))
        self.walk(t, depth)
        for part in parts:  # ``*tuple[int]`` pickles apart (helper-52 F3)
            self.walk(None if part is ABSENT else part, depth)

    def slots(self, o: Any, t: type, depth: int) -> None:
        """An instance saved by object's own reduce with slots: its class, each slot
        (unset ones too), then its ``__dict__`` if it has one."""
        pairs = _slot_names(t) or ()  # (before the walk below, which may clear the cache)
        self.add(("slots",))
        self.walk(t, depth)
        for name, slot in pairs:  # (its descriptor: what own_state would find first)
            try:
                value = slot.__get__(o, t)
            except AttributeError:  # unset
                self.add(("unset", name))
                continue
            self.walk(name, depth)
            self.walk(value, depth)
        if t.__dictoffset__:
            self.walk(object.__getattribute__(o, "__dict__"), depth)

    def located(self, o: Any) -> None:
        """A library's function or class: pickled as module and name while found there."""
        module, qualname = getattr(o, "__module__", None), getattr(o, "__qualname__", None)
        found = sys.modules.get(module) if isinstance(module, str) else None
        if found is None or not isinstance(qualname, str):
            raise _Unreadable
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if found is not o:
            raise _Unreadable
        self.same(o)
        self.add((module, qualname))


#: Instances of these (and their subclasses) pickle more than their ``__dict__``.
_BUILTIN_DATA = (list, dict, set, frozenset, tuple, str, bytes, bytearray, int, float,
                 complex, BaseException)  # fmt: skip


#: Types pickle writes as the type of their one instance.
_SINGLETON_TYPES = {type(None): "None", type(NotImplemented): "NotImplemented",
                    type(...): "Ellipsis"}  # fmt: skip
#: type -> its slots' names and descriptors (:func:`_slot_names`), or None.
_SLOTTED: dict[type, tuple[tuple[str, types.MemberDescriptorType], ...] | None] = {}


def _slotted(t: type) -> bool:
    return _slot_names(t) is not None


#: What an annotation's print reads of it: its name, then :data:`ANNOTATION_PARTS`.
_ANNOTATION_NAMES = ("_name", *ANNOTATION_PARTS)
#: type -> whether no class along its MRO has any of those names (typing's aliases): then
#: its own state is its ``__dict__``'s (own_state's MRO look, ~0.4 µs a name, is spared).
_IN_DICT: dict[type, bool] = {}


def _annotation_state(o: Any, t: type) -> tuple:
    """``own_state`` of ``o`` (of type ``t``) for each of :data:`_ANNOTATION_NAMES`."""
    in_dict = _IN_DICT.get(t)
    if in_dict is None:
        if len(_IN_DICT) > 10_000:
            _IN_DICT.clear()
        in_dict = _IN_DICT[t] = all(vars(c).get(n, ABSENT) is ABSENT
                                    for c in t.__mro__ for n in _ANNOTATION_NAMES)  # fmt: skip
    if not in_dict:
        return tuple(own_state(o, n) for n in _ANNOTATION_NAMES)
    try:
        own = object.__getattribute__(o, "__dict__")
    except AttributeError:
        own = None
    if type(own) is not dict:
        return (ABSENT,) * len(_ANNOTATION_NAMES)
    return tuple(own.get(n, ABSENT) for n in _ANNOTATION_NAMES)


def _slot_names(t: type) -> tuple[tuple[str, types.MemberDescriptorType], ...] | None:
    """The slots ``object.__reduce_ex__`` saves of ``t``'s instances, each with its
    descriptor (as ``copyreg._slotnames`` finds them, without caching them on the class),
    or None when its instances are not pickled that way (a reduce, ``__getstate__`` or new
    args of its own) or it has no slots; and None when pickling could read a slot otherwise
    than its descriptor does (the print's way): a notebook class, a ``__getattr__`` or
    ``__getattribute__`` (an unset slot's fallback), a property over a slot's name
    (helper-52 F2)."""
    if t in _SLOTTED:
        return _SLOTTED[t]
    names: list[str] | None = None
    first: dict[str, Any] = {}
    if (containers.object_reduce(t) and not issubclass(t, _BUILTIN_DATA)
            and any("__slots__" in vars(c) for c in t.__mro__)
            and not any(c.__module__ == "__main__" or "__getattr__" in vars(c)
                        or ("__getattribute__" in vars(c) and c is not object)
                        for c in t.__mro__)):  # fmt: skip
        names = []
        for c in t.__mro__:
            declared = vars(c).get("__slots__", ())
            for name in [declared] if isinstance(declared, str) else declared:
                if name in ("__dict__", "__weakref__"):
                    continue
                if name.startswith("__") and not name.endswith("__"):
                    name = f"_{c.__name__.lstrip('_')}{name}"
                names.append(name)
        # Each name must find its own slot first along the bases (no property over it).
        first = {n: next(vars(c)[n] for c in t.__mro__ if n in vars(c)) for n in names}
        if any(type(d) is not types.MemberDescriptorType for d in first.values()):
            names = None
    if len(_SLOTTED) > 10_000:
        _SLOTTED.clear()
    _SLOTTED[t] = None if names is None else tuple((n, first[n]) for n in names)
    return _SLOTTED[t]
