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
import itertools
import operator
import struct
import sys
import types
import typing
from collections.abc import Callable
from operator import is_
from typing import Any

from . import codec, containers, functions, names
from .instances import ABSENT, ANNOTATION_PARTS, SENTINELS, own_state

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

    __slots__ = ("_keep", "_lookups", "_of", "_states", "_types", "parts")

    def __init__(self, value: Any, ns: dict[str, Any], members: tuple = ()) -> None:
        members = members or (value,)
        walk = _Walk(ns, members)
        try:
            walk.add(("dill", walk.lookup(_dill_settings, None)))
            walk.walk(value, 0)
        except KeyboardInterrupt:  # Ctrl-C: the work under way stops
            raise
        except BaseException:  # _Unreadable, RecursionError, a library's property raising...
            self.parts = self._keep = self._states = self._lookups = self._types = None
            self._of = None
            return
        self.parts = walk.parts
        self._keep = walk.keep  # the objects named by id stay alive: no id is reused
        self._types = tuple(map(type, walk.keep))
        self._states, self._lookups = walk.states, walk.lookups
        self._of = (value, ns, members)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Print) and self.parts is not None and self.parts == other.parts

    __hash__ = None  # type: ignore[assignment]

    def holds(self, value: Any, ns: dict[str, Any], members: tuple = ()) -> bool:
        """Whether a print of ``value`` taken now would equal this one: each object walked
        has its type still, each read of one's state gives the very objects it gave, and
        each lookup the same answer (see the module docstring). False when unsure."""
        if self._of is None:
            return False
        was, was_ns, was_members = self._of
        members = members or (value,)
        if value is not was or ns is not was_ns or len(members) != len(was_members):
            return False
        if not all(map(is_, members, was_members)):
            return False
        if not all(map(is_, map(type, self._keep), self._types)):  # (``__class__`` set)
            return False
        try:
            for how, of, got in self._states:
                now = how(of)
                if now is not got and not (
                    type(now) is tuple and len(now) == len(got) and all(map(is_, now, got))
                ):
                    return False
            for how, of, got in self._lookups:
                now = how(of)
                if now is not got and not _same(now, got):
                    return False
            return True
        except KeyboardInterrupt:
            raise
        except BaseException:  # what the walk read no longer reads: printed again
            return False


def _same(a: Any, b: Any) -> bool:
    """Whether two answers of a lookup are the same: one object, equal exact strings or
    integers (a C type's ``__qualname__`` is made anew each time), or tuples of such."""
    if a is b:
        return True
    t = type(a)
    if t is not type(b):
        return False
    if t is str or t is int:
        return a == b
    return t is tuple and len(a) == len(b) and all(map(_same, a, b))


#: What dill's pickler reads of ``dill.settings`` (their defaults until dill is imported).
_DILL_DEFAULTS = (("byref", False), ("fmode", 0), ("ignore", False), ("recurse", False))


def _dill_settings(_: Any = None) -> tuple:
    # dill may be half imported (by the journal's opening thread): its defaults, then.
    settings = getattr(sys.modules.get("dill"), "settings", None)
    if not isinstance(settings, dict):
        return _DILL_DEFAULTS
    return tuple((k, settings.get(k, v)) for k, v in _DILL_DEFAULTS)


def _items(d: dict) -> tuple:
    """A dict's keys and values, in order, in one flat tuple (one read, in C)."""
    return tuple(itertools.chain.from_iterable(d.items()))


def _cell(c: types.CellType) -> Any:
    try:
        return c.cell_contents
    except ValueError:
        return _EMPTY


_EMPTY = object()  #: an empty closure cell's contents
#: What a function's payload is made of (its ``__type_params__``, from Python 3.12, apart).
_FUNCTION = operator.attrgetter("__code__", "__globals__", "__name__", "__qualname__",
                                "__module__", "__doc__", "__defaults__", "__kwdefaults__",
                                "__annotations__", "__closure__", "__dict__")  # fmt: skip
_PROPERTY = operator.attrgetter("fget", "fset", "fdel", "__doc__")
_WRAPPED = operator.attrgetter("__func__", "__dict__")


def _function(f: types.FunctionType) -> tuple:
    return (*_FUNCTION(f), getattr(f, "__type_params__", ()))


def _plain(t: type) -> bool:
    """``codec._plain``, and its instances' reduce still object's: a class (or a base) that
    gained a ``__getstate__`` or ``__reduce__`` since pickles them otherwise (review109 C),
    and is read by name only; one that gained a ``__getattr__``, by dill (review110)."""
    return codec._plain(t) and containers.object_reduce(t) and not functions.hooks(t)


def _made(c: type) -> tuple:
    """What decides how a class is made again that its own dict does not hold (review109 D,
    F1; review110): which classes along its MRO have an ``__init_subclass__`` or
    ``__slots__`` (``classes.make_quietly``), which of its attributes a ``__set_name__`` is
    called on (looked up as ``type()`` does: no metaclass code runs)."""
    bases = [containers.CLASS_DICT(b) for b in containers.MRO(c)[1:-1]]
    return (tuple(("__init_subclass__" in d, "__slots__" in d) for d in bases),
            tuple(containers.defines(type(v), "__set_name__")
                  for v in containers.CLASS_DICT(c).values()))  # fmt: skip


def _module_of(f: types.FunctionType) -> str | None:
    return functions.module_of(f.__globals__)


def _class(c: type) -> tuple:
    """A class's name, qualified name, metaclass, bases and own dict's items."""
    return (c.__name__, c.__qualname__, type(c), c.__bases__, *_items(vars(c)))


def _class_items(c: type) -> tuple:
    return _items(vars(c))


def _names(o: Any) -> tuple:
    """A C function's or descriptor's names, and what a builtin function is bound to."""
    bound = type(o.__self__) if type(o) is types.BuiltinFunctionType else None
    return getattr(o, "__module__", None), getattr(o, "__qualname__", None), bound


def _found(o: Any) -> tuple:
    """A library's function or class found again: its module, qualified name and what they
    find (None when they find nothing)."""
    module, qualname = getattr(o, "__module__", None), getattr(o, "__qualname__", None)
    found = sys.modules.get(module) if isinstance(module, str) else None
    if found is not None and isinstance(qualname, str):
        for part in qualname.split("."):
            found = getattr(found, part, None)
    return module, qualname, found


def _in_typing(name: str) -> Any:
    return vars(typing).get(name)


def _annotation_of(o: Any) -> tuple:
    return _annotation_state(o, type(o))


def _module_name(t: type) -> Any:
    return t.__module__


def _slot_values(o: Any) -> tuple:
    """Each slot's value (:data:`_EMPTY` unset), then the ``__dict__`` if it has one."""
    t = type(o)
    values = []
    for _, slot in _slot_names(t) or ():
        try:
            values.append(slot.__get__(o, t))
        except AttributeError:  # unset
            values.append(_EMPTY)
    if t.__dictoffset__:
        values.append(object.__getattribute__(o, "__dict__"))
    return tuple(values)


class _Walk:
    def __init__(self, ns: dict[str, Any], members: tuple) -> None:
        self.by_name = codec._ByName(ns, {id(m) for m in members})
        self.parts: list[Any] = []
        self.keep: list[Any] = []
        self.seen: dict[int, int] = {}
        self.size = 0  # bytes of the strings and bytes read
        #: ``(how, of, got)``: ``how(of)`` gave ``got`` (:meth:`Print.holds` asks again):
        #: states (what is walked, by identity) and lookups (answers, :func:`_same`).
        self.states: list[tuple[Callable[[Any], Any], Any, Any]] = []
        self.lookups: list[tuple[Callable[[Any], Any], Any, Any]] = []
        self._asked: set[tuple[Callable[[Any], Any], int]] = set()

    def add(self, part: Any) -> None:
        self.parts.append(part)
        if len(self.parts) > LIMIT:
            raise _Unreadable

    def same(self, o: Any) -> None:
        """``o`` by identity: its pickle cannot change while it lives."""
        self.keep.append(o)
        self.add(("is", id(o)))

    def state(self, how: Callable[[Any], Any], o: Any) -> Any:
        """``how(o)``: what ``o`` holds, walked next."""
        got = how(o)
        self.states.append((how, o, got))
        return got

    def lookup(self, how: Callable[[Any], Any], o: Any) -> Any:
        """``how(o)``: an answer the walk goes by (once per question)."""
        got = how(o)
        if (how, id(o)) not in self._asked:
            self._asked.add((how, id(o)))
            self.keep.append(o)  # (alive: its id is its own)
            self.lookups.append((how, o, got))
        return got

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
        if t is tuple or t is frozenset:  # (exact: what they hold never changes)
            self.add((t, len(o)))
            for x in o:
                self.walk(x, depth)
        elif t is list or t is set:
            items = self.state(tuple, o)
            self.add((t, len(items)))
            for x in items:
                self.walk(x, depth)
        elif t is dict:
            items = self.state(_items, o)
            self.add((t, len(items) // 2))
            for x in items:  # (a key, then its value)
                self.walk(x, depth)
        elif t is types.CellType:
            content = self.state(_cell, o)
            if content is _EMPTY:
                self.add(("empty cell",))
            else:
                self.add(("cell",))
                self.walk(content, depth)
        elif t is types.FunctionType:
            self.function(o, depth)
        elif issubclass(t, type):
            self.cls(o, depth)
        elif issubclass(t, _FIXED):
            module, qualname, bound = self.lookup(_names, o)
            if bound is not None and not issubclass(bound, types.ModuleType):
                raise _Unreadable  # ``rows.append``: it holds data
            self.same(o)
            self.add((module, qualname))
        elif t is staticmethod or t is classmethod:  # its function, and its own attributes
            self.add((t,))  # (classes.reduce_part pickles them: review109 A)
            for part in self.state(_WRAPPED, o):
                self.walk(part, depth)
        elif t is property:
            self.add((t,))
            for part in self.state(_PROPERTY, o):
                self.walk(part, depth)
        elif self.lookup(_plain, t) and not issubclass(t, _BUILTIN_DATA):
            self.add(("instance",))  # object's reduce: its class, then its __dict__
            self.walk(t, depth)
            self.walk(self.state(vars, o), depth)
        elif i in SENTINELS:  # dill writes them by reference (a dataclass holds them)
            self.add(SENTINELS[i])
        elif t is types.MappingProxyType:  # a field's metadata: dill saves a copy
            self.proxy(o, depth)
        elif (t is types.GenericAlias or t is types.UnionType
              or self.lookup(_module_name, t) == "typing"):  # fmt: skip
            self.annotation(o, depth)  # ``list[int]``, ``Optional[str]``, ``int | None``
        elif self.lookup(_slotted, t):  # a dataclass's fields and parameters
            self.slots(o, t, depth)
        else:
            raise _Unreadable

    def function(self, f: types.FunctionType, depth: int) -> None:
        how = self.lookup(self.by_name.reduce, f)
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
        module = self.lookup(_module_of, f)
        if module is None:
            raise _Unreadable
        code, globals_, name, qualname, module_name, *parts = self.state(_function, f)
        if module != "__main__":  # a library's wrapper (a dataclass's ``__repr__``)
            self.same(globals_)
            self.add(("globals of", module))
        self.same(code)
        self.add(("function", name, qualname, module_name))
        for part in parts:  # doc, defaults, keyword defaults, annotations, closure, dict...
            self.walk(part, depth)

    def cls(self, c: type, depth: int) -> None:
        if c in _SINGLETON_TYPES:  # pickled as ``type(None)``: builtins has no name for it
            self.add(("type of", _SINGLETON_TYPES[c]))
            return
        try:  # (a C type's answer never changes: its names are its C struct's)
            heap = c.__flags__ & names.HEAP
            how = self.lookup(self.by_name.reduce, c) if heap else self.by_name.reduce(c)
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
        name, qualname, meta, bases, *items = self.state(_class, c)
        self.add(("class", name, qualname, len(items) // 2, self.lookup(_made, c)))
        self.walk(meta, depth)
        self.walk(bases, depth)
        inherited: dict[str, Any] = {}
        for base in reversed(bases):
            flat = self.state(_class_items, base)
            inherited.update(zip(flat[::2], flat[1::2], strict=True))
        for k, v in zip(items[::2], items[1::2], strict=True):
            self.add(v is inherited.get(k, self))
            self.walk(k, depth)
            self.walk(v, depth)

    def proxy(self, o: types.MappingProxyType, depth: int) -> None:
        under = gc.get_referents(o)  # the mapping it shows, read without calling it
        if len(under) != 1 or type(under[0]) is not dict:
            raise _Unreadable
        self.add(("proxy",))
        self.walk(under[0], depth)

    def annotation(self, o: Any, depth: int) -> None:
        """A type annotation: a name of ``typing`` (``Optional``), or an alias made of an
        origin and arguments (``list[int]``, ``Optional[str]``): immutable objects."""
        name, *parts = self.state(_annotation_of, o)
        if type(name) is str and self.lookup(_in_typing, name) is o:
            self.same(o)
            self.add(("typing", name))
            return
        if type(parts[ANNOTATION_PARTS.index("__args__")]) is not tuple:
            raise _Unreadable
        self.add(("alias", name if type(name) is str else None))
        self.walk(type(o), depth)
        for part in parts:  # ``*tuple[int]`` pickles apart (helper-52 F3)
            self.walk(None if part is ABSENT else part, depth)

    def slots(self, o: Any, t: type, depth: int) -> None:
        """An instance saved by object's own reduce with slots: its class, each slot
        (unset ones too), then its ``__dict__`` if it has one."""
        pairs = _slot_names(t) or ()  # (before the walk below, which may clear the cache)
        values = self.state(_slot_values, o)
        self.add(("slots",))
        self.walk(t, depth)
        for (name, _), value in zip(pairs, values, strict=False):
            if value is _EMPTY:
                self.add(("unset", name))
                continue
            self.walk(name, depth)
            self.walk(value, depth)
        if t.__dictoffset__:
            self.walk(values[-1], depth)

    def located(self, o: Any) -> None:
        """A library's function or class: pickled as module and name while found there."""
        module, qualname, found = self.lookup(_found, o)
        if found is not o or not isinstance(qualname, str):
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
