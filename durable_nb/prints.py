"""Whether a notebook function or class changed since it was pickled, without pickling it
again (dill pickles a function ~1 ms, a class more).

A :class:`Print` lists everything its payload (:func:`durable_nb.codec.encode`) is made
of: code objects by identity, the values of names, defaults, closure cells, attributes and
class dicts by content, and which objects are one object (pickle's memo). Equal prints mean
equal payloads; anything it cannot read cheaply and exactly gives no print (pickled again).

A print is taken by a walk, which keeps what it read: each object's state as the objects
it held (a list's items, a dict's keys and values, a function's attributes, a class's
dict, a slot's value) and each lookup's answer (the variable a name is bound to, the
module a class is found in). :meth:`Print.holds` reads them all again: when every read
gives the very objects it gave (by identity: each is kept alive by the print, so no other
object takes its id), and each object walked has its type still, a walk now would meet the
same objects in the same order and read the same immutable values: the same print, for
about a third of its cost (a dataclass: ~35 µs against ~100).
"""

from __future__ import annotations

import gc
import struct
import sys
import types
import typing
from typing import Any

from . import codec, containers, functions
from .graph import ABSENT, ANNOTATION_PARTS, SENTINELS, own_state

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
