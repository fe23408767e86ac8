"""Notebook classes saved by value with the C pickler.

dill saved a notebook class in ~1 ms of pure Python, and the first class of a kernel paid
dill's import too (~11 ms once IPython is loaded): ipywidgets' Widget Events, whose one
class is a ``Timer``, ran that much slower in the cell defining it. Here a class is a
reduce the C pickler follows: its metaclass called with its name, bases and namespace, as
the ``class`` statement did, so ``__set_name__`` sees the namespace whole (a
``cached_property`` is named). A class whose bases' ``__init_subclass__`` ran when the
notebook made it is made without running it again (:func:`make_quietly`): what it did is
saved (in the namespace, or in what it changed). A closure cell holding the class
(``super()``'s ``__class__``) is made empty and filled once the class exists, and so is
its data (dicts, lists, sets: a registry of its subclasses) set on it
(:class:`Building`), a group's classes saved bases first (:func:`bases_first`); any
other way the namespace reaches the class goes to dill.

Only classes of ``type`` or ``abc.ABCMeta`` (with no registered virtual subclass) go this
way, and only when what they hold is what :func:`functions.simple` accepts: an Enum's
namespace is not what made it, a library's metaclass may keep state elsewhere. The parts
of a class the C pickler cannot save alone get a reduce here (:func:`reduce_part`):
``property``, ``classmethod``, ``staticmethod``, ``cached_property``, a dataclass's
fields and its sentinels (by reference: ``dataclasses.fields()`` compares them by
identity); type annotations pickle as they are (``typing``'s own reduce), their parts
walked by :func:`functions.simple`, but for type variables (by name: dill's).

A journal names the helpers below (``durable_nb.classes.make``, ...): never rename them.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from typing import Any

from . import containers, names
from .instances import ABSENT, ANNOTATION_PARTS, SENTINEL_TYPES, SENTINELS, own_state

#: The metaclasses whose classes are saved here; any other's are dill's.
METACLASSES = (type, abc.ABCMeta)
#: What an ABC's namespace holds that ``abc.ABCMeta`` makes again (so is left out).
_MADE = ("__abstractmethods__", "_abc_impl")
#: What type() wraps when given a plain function (__new__ a staticmethod, the others
#: classmethods): one set on the class afterwards is a plain function there.
_WRAPPED = ("__new__", "__init_subclass__", "__class_getitem__")
#: Descriptors saved as a call of their type on what they wrap (their ``__dict__``, which
#: only copies the function's names in, as state).
_WRAPPERS = (classmethod, staticmethod)


def namespace(cls: type) -> dict[str, Any]:
    """What ``cls``'s ``class`` statement gave its metaclass: its ``__dict__`` without what
    the metaclass made (slots' and ``__dict__``'s descriptors, an ABC's state), with its
    qualname."""
    ns = {}
    for name, value in vars(cls).items():
        made = type(value) in (types.MemberDescriptorType, types.GetSetDescriptorType)
        if not (made and value.__objclass__ is cls and value.__name__ == name) and (
            name not in _MADE
        ):
            ns[name] = value
    ns["__qualname__"] = cls.__qualname__
    return ns


def parts(o: Any) -> tuple | None:
    """What a class's part of :func:`reduce_part` holds, for :func:`functions.simple` to
    walk; None when it is none of them."""
    t = type(o)
    if t is property:
        return (o.fget, o.fset, o.fdel, o.__doc__)
    if t in _WRAPPERS:
        return (o.__func__, vars(o))
    if t is functools.cached_property:
        return (o.func, o.attrname, o.__doc__)
    if t is dataclasses.Field:  # (its metadata a dict: a mappingproxy cannot pickle)
        return tuple(_field_slot(o, name) for name in _FIELD)
    if t is types.GenericAlias:
        return (o.__origin__, o.__args__)
    if t is dataclasses.InitVar:
        return (o.type,)
    if t is _PARAMS:  # a dataclass's options (bools): pickled by its slots
        return tuple(getattr(o, name) for name in t.__slots__)
    if t is types.BuiltinFunctionType:  # by reference; a bound one with what it is bound to
        return () if issubclass(type(o.__self__), types.ModuleType) else (o.__self__,)
    if t in SENTINEL_TYPES and id(o) in SENTINELS:
        return ()  # by reference
    if t.__module__ == "typing" and not issubclass(t, _BY_NAME):  # an annotation
        found = (own_state(o, part) for part in ANNOTATION_PARTS)
        return tuple(part for part in found if part is not ABSENT)
    return None


def reduce(cls: type, check: Callable[[type], bool]) -> tuple | None:
    """``cls``'s reduce (without state: :class:`Building` adds it), or None when dill must
    save it (``check(cls)``: whether what it holds pickles in C with no notebook code run)."""
    meta = type(cls)
    if meta not in METACLASSES or not check(cls):
        return None
    if meta is abc.ABCMeta and _registered(cls):
        return None  # dill registers them again after; a namespace cannot say them
    ns = namespace(cls)
    if _slots_later(cls, ns):  # set after its statement: an attribute, making no slots
        del ns["__slots__"]  # (set once made: Building)
    if _made_otherwise(cls, ns):
        return None
    if any("__init_subclass__" in vars(c) for c in cls.__mro__[1:-1]):
        # A base's __init_subclass__ ran once, on the class statement: what it did is in the
        # namespace (``cls.tag = tag``) or in what it changed, saved apart (a registry).
        # Run again, it would do it twice; and it ran on keywords no namespace keeps.
        return (make_quietly, (cls.__name__, cls.__bases__, ns)) if _quiet(cls, ns) else None
    return make, (meta, cls.__name__, cls.__bases__, ns)


def _quiet(cls: type, ns: dict[str, Any]) -> bool:
    """Whether :func:`make_quietly` can make ``cls``: a class of ``type`` whose bases are
    notebook-like classes with no slots (their layout is :class:`_Stand`'s), and whose
    ``__init_subclass__`` are all the notebook's. A library's keeps what it did in the
    library (a registry of locales, of plugins), empty in a new kernel: run again (dill's)."""
    bases = cls.__mro__[1:-1]
    return type(cls) is type and "__slots__" not in ns and all(
        c.__flags__ & _HEAP_TYPE and "__slots__" not in vars(c) and type(c) in METACLASSES
        and ("__init_subclass__" not in vars(c) or vars(c).get("__module__") == "__main__")
        for c in bases
    )  # fmt: skip


def _made_otherwise(cls: type, ns: dict[str, Any]) -> bool:
    """Whether calling the metaclass on ``ns`` could make another class than ``cls``: the
    namespace is what the class statement made, not what it was given (helper-54)."""
    # A descriptor's __set_name__ would run again on what it did once (a registry).
    for name, value in ns.items():
        t = type(value)  # (a property's only records its name for error messages)
        if containers.defines(t, "__set_name__") and not (  # (no metaclass code: review110)
            t is property or (t is functools.cached_property and value.attrname == name)
        ):
            return True
    # Set on the class after its statement: type() reads them otherwise (an __eq__ given
    # no __hash__ unhashes it; __slots__ makes slots; an abstract method makes it abstract).
    if "__eq__" in ns and "__hash__" not in ns:
        return True
    if any(type(ns.get(name)) is types.FunctionType for name in _WRAPPED):
        return True  # (type() would wrap it: a class statement's is wrapped already)
    if "__abstractmethods__" in vars(cls) and type(cls) is not abc.ABCMeta:
        return True
    slots = ns.get("__slots__", ())
    for slot in (slots,) if isinstance(slots, str) else slots:
        if slot not in ("__dict__", "__weakref__"):
            private, stripped = (
                slot.startswith("__") and not slot.endswith("__"),
                cls.__name__.lstrip("_"),
            )
            mangled = f"_{stripped}{slot}" if private and stripped else slot
            if type(vars(cls).get(mangled)) is not types.MemberDescriptorType:
                return True
    return type(cls) is abc.ABCMeta and _abstracts(cls, ns) != cls.__abstractmethods__


def _slots_later(cls: type, ns: dict[str, Any]) -> bool:
    """Whether ``__slots__`` was set on ``cls`` after its statement: it has a ``__dict__``
    that neither its slots nor a base gave it (in type()'s namespace, its instances would
    take no attribute)."""
    slots = ns.get("__slots__")
    if slots is None:
        return False
    named = (slots,) if isinstance(slots, str) else slots
    return (
        "__dict__" not in named
        and bool(_DICTOFFSET(cls))
        and not any(_DICTOFFSET(base) for base in cls.__bases__)
    )


_DICTOFFSET = type.__dict__["__dictoffset__"].__get__


def _abstracts(cls: type, ns: dict[str, Any]) -> frozenset[str]:
    """The abstract methods ``abc.ABCMeta`` finds making ``cls`` of ``ns``."""
    found = {name for name, value in ns.items() if getattr(value, "__isabstractmethod__", False)}
    for base in cls.__bases__:
        for name in getattr(base, "__abstractmethods__", ()):
            if getattr(getattr(cls, name, None), "__isabstractmethod__", False):
                found.add(name)
    return frozenset(found)


def _registered(cls: type) -> bool:
    get_dump = getattr(abc, "_get_dump", None)  # the C implementation's (CPython's)
    return get_dump is None or bool(get_dump(cls)[0])


def reduce_part(o: Any) -> Any:
    """A reduce for a part of a class the C pickler cannot save alone, or NotImplemented."""
    t = type(o)
    if t is property:
        return property, (o.fget, o.fset, o.fdel, o.__doc__)
    if t in _WRAPPERS:
        return t, (o.__func__,), dict(vars(o)) or None
    if t is functools.cached_property:  # its lock cannot pickle; its name comes from the class
        return functools.cached_property, (o.func,), {"attrname": o.attrname}
    if t is dataclasses.Field:
        return field, (_FIELD, parts(o))
    if t is _Cells:
        return o.reduce()
    found = SENTINELS.get(id(o)) if t in SENTINEL_TYPES else None
    if found is not None:
        return found[1]  # a global of its module, as ``dataclasses.MISSING``
    return NotImplemented


_PARAMS = getattr(dataclasses, "_DataclassParams", None)
#: Annotations pickled by reference to a global of their module (``__main__.T``, which a
#: restore need not have loaded first): dill's.
_BY_NAME = tuple(getattr(typing, n) for n in ("TypeVar", "ParamSpec", "TypeVarTuple", "NewType")
                 if isinstance(getattr(typing, n, None), type))  # fmt: skip
_FIELD: tuple[str, ...] = tuple(dataclasses.Field.__slots__)


def _field_slot(f: dataclasses.Field, name: str) -> Any:
    value = getattr(f, name)
    return dict(value) if type(value) is types.MappingProxyType else value


class Building:
    """The classes one pickle is saving by value, each with the closure cells met while its
    namespace was saved that hold it: they are made empty and filled once it exists, with
    its data (:data:`_LATER`)."""

    def __init__(self, check: Callable[[type], bool]) -> None:
        self.check = check
        self.cells: dict[int, list[types.CellType]] = {}  # the classes being made, outer first
        #: A class's id -> the classes made while it was, whose data its state sets.
        self.moved: dict[int, list[tuple[type, tuple, dict[str, Any]]]] = {}

    def reduce(self, cls: type) -> tuple | None:
        """``cls``'s reduce with its cells as state; None when dill must save it (also when
        its namespace reaches it otherwise than by a closure cell)."""
        if id(cls) in self.cells:
            return None
        out = reduce(cls, self.check)
        if out is None:
            return None
        cells = self.cells[id(cls)] = []
        func, args = out
        # Its data (a registry of its subclasses, a dispatch table) is set once it exists:
        # what reaches the class again meets it made (pickle's memo), not half-built.
        ns, later = dict(args[-1]), {}
        abstract, own = _abstract_names(cls), f"{cls.__qualname__}."
        if "__slots__" in vars(cls) and "__slots__" not in ns:  # (set later: reduce)
            later["__slots__"] = vars(cls)["__slots__"]
        for name, value in args[-1].items():
            dunder = name.startswith("__") and name.endswith("__")
            if not dunder and name not in abstract and _later(value, own):
                later[name] = ns.pop(name)
        if type(ns.get("__annotations__")) is dict:  # (what they name may name the class)
            later["__annotations__"] = ns.pop("__annotations__")
        return func, (*args[:-1], ns), _Cells(self, cls, cells, later), None, None, fill_later

    def defer(self, c: types.CellType, contents: Any) -> bool:
        """Whether cell ``c`` holds a class being made: filled by the class's state."""
        cells = self.cells.get(id(contents))
        if cells is None:
            return False
        cells.append(c)
        return True


#: Class attributes set on the class once made (:meth:`Building.reduce`): plain data only,
#: which nothing making a class reads (type(), ``__set_name__``, abstract methods).
_LATER = (dict, list, set)


#: The dunders a class's state may set (:meth:`Building.reduce`), and their types.
_LATER_DUNDERS = {("__slots__", tuple), ("__slots__", list), ("__slots__", str),
                  ("__annotations__", dict)}  # fmt: skip


def _later(value: Any, own: str = "") -> bool:
    """Whether a class attribute is set once the class is made: its data (a registry, a
    default instance of itself: ``Shape.unit = Shape(1)``, another class: ``A.other = B``,
    ``Base.child = Sub``) or a function not its own (``C.fn = f``, ``f`` taking ``C`` as a
    default), which may reach the class again; never its own method (``own``: its qualified
    name's prefix) nor a part that making the class reads (a descriptor, an annotation:
    :func:`parts`). What it reaches meets the class made (pickle's memo), not half-built."""
    t = type(value)
    if t in _LATER:
        return True
    if t is types.FunctionType:
        return own != "" and not (names.of(value)[1] or own).startswith(own)
    if parts(value) is not None:
        return False
    return issubclass(t, type) or bool(t.__flags__ & _HEAP_TYPE)


def _abstract_names(cls: type) -> frozenset[str]:
    """The names an ABC's making reads as abstract, its bases' too: one set later would be
    left abstract (``abc.ABCMeta`` computes them once)."""
    if type(cls) is not abc.ABCMeta:
        return frozenset()
    found = (containers.CLASS_DICT(c).get("__abstractmethods__") for c in cls.__mro__)
    return frozenset(n for held in found if type(held) is frozenset for n in held)


class _Cells:
    """A class's state while it is saved (its closure cells, its data ``later``): once
    pickled, its namespace is done."""

    def __init__(self, building: Building, cls: type, cells: list[types.CellType],
                 later: dict[str, Any]) -> None:  # fmt: skip
        self.building, self.cls, self.cells, self.later = building, cls, cells, later

    def reduce(self) -> tuple:
        building = self.building
        del building.cells[id(self.cls)]  # the class is memoized: met again, a reference
        mine = (self.cls, tuple(self.cells), self.later)
        moved = building.moved.pop(id(self.cls), [])
        if building.cells:
            # Made while another class is (its base, a class its namespace holds): its data
            # may reach that one (``Base.fn = f``, ``f`` taking ``Sub``), so it is set once
            # the outermost is made, by that one's state.
            building.moved.setdefault(next(iter(building.cells)), []).extend([mine, *moved])
            return tuple, (((), {}),)
        if moved:
            return tuple, ((mine[1], mine[2], tuple(moved)),)
        return tuple, (mine[1:],)


def make(meta: type, name: str, bases: tuple, ns: dict[str, Any]) -> type:
    """The class :func:`reduce` saved: its metaclass called as its ``class`` statement did."""
    if not (isinstance(meta, type) and issubclass(meta, type)) or type(ns) is not dict:
        raise _damaged(name)
    return meta(name, bases, dict(ns))


def _damaged(name: object) -> TypeError:
    """What a class payload that cannot make a class raises (the restore says so)."""
    return TypeError(f"the saved class {name!r} is not a class: the payload is damaged")


class _Stand:
    """What :func:`make_quietly` makes a class on before giving it its bases."""


_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement or type()


def make_quietly(name: str, bases: tuple, ns: dict[str, Any]) -> type:
    """The class :func:`reduce` saved whose bases' ``__init_subclass__`` already ran (when
    the notebook made it): made on :class:`_Stand`, which runs nothing, then given its
    bases (``__bases__``), so that it is not run again."""
    if (
        type(bases) is not tuple
        or not all(type(b) in METACLASSES for b in bases)
        or (type(ns) is not dict)
    ):
        raise _damaged(name)
    cls = type(name, (_Stand,), dict(ns))
    try:
        cls.__bases__ = bases
    except TypeError as exc:  # (a layout :func:`_quiet` never lets through)
        raise _damaged(name) from exc
    return cls


def fill(cls: type, cells: tuple) -> type:
    """Set the closure cells that hold ``cls`` (``super()``'s ``__class__``), made empty."""
    for c in cells:
        c.cell_contents = cls
    return cls


def fill_later(cls: type, state: tuple) -> type:
    """Set the closure cells that hold ``cls`` (:func:`fill`) and its data, set once made;
    then those of the notebook classes made while it was (:meth:`_Cells.reduce`). All is
    checked before anything is set: a damaged payload changes no class."""
    name = getattr(cls, "__name__", "?") if type(cls) in METACLASSES else "?"
    if type(cls) not in METACLASSES or type(state) is not tuple or len(state) not in (2, 3):
        raise _damaged(name)
    moved = state[2] if len(state) == 3 else ()
    if type(moved) is not tuple:
        raise _damaged(name)
    each = [(cls, state[0], state[1]), *moved]
    for one in each:
        if not (type(one) is tuple and len(one) == 3 and _ours(one[0])
                and _fills(*one)):  # fmt: skip
            raise _damaged(name)
    for made, cells, data in each:
        for key, value in data.items():
            setattr(made, key, value)
        fill(made, cells)
    return cls


def _ours(cls: Any) -> bool:
    """A notebook class (made by a payload: a heap type of ``__main__``)."""
    return (type(cls) in METACLASSES and bool(cls.__flags__ & _HEAP_TYPE)
            and names.of(cls)[0] == "__main__")  # fmt: skip


def _fills(cls: type, cells: Any, data: Any) -> bool:
    """Whether ``cells`` and ``data`` are what :meth:`Building.reduce` gives a class."""
    if type(cells) is not tuple or type(data) is not dict:
        return False
    if not all(type(c) is types.CellType for c in cells):
        return False
    for name, value in data.items():
        if (name, type(value)) in _LATER_DUNDERS:
            continue  # (``__slots__`` set after its statement: an attribute; annotations)
        dunder = type(name) is str and name.startswith("__") and name.endswith("__")
        if type(name) is not str or dunder or not _later(value, f"{cls.__qualname__}."):
            return False
    return True


def bases_first(groups: list[list[str]], ns: dict[str, Any]) -> list[list[str]]:
    """Each group of names with its classes first, a base before its subclasses: a class
    is made before the data of another (saved with it, :meth:`Building.reduce`) reaches it."""

    def order(name: str) -> tuple[int, int]:
        value = ns[name]
        if issubclass(type(value), type):
            return 0, len(type.__dict__["__mro__"].__get__(value))
        return 1, 0

    return [sorted(group, key=order) if len(group) > 1 else group for group in groups]


def field(names: tuple[str, ...], values: tuple) -> dataclasses.Field:
    """A dataclass's field of these slots (its metadata read-only again)."""
    f = object.__new__(dataclasses.Field)
    for name, value in zip(names, values, strict=True):
        if name == "metadata" and type(value) is dict:
            value = types.MappingProxyType(value)
        setattr(f, name, value)
    return f
