"""What an object holds of its own, read without running its code: its ``__dict__``, its
slots, whether that is all of it, and the name a function or class is found by.

And what a subclass of a built-in value holds, read through its base, in a canonical order
when its base has none (:class:`Unordered`); what pickle refuses but shows (:data:`VIEWS`).
Used by :mod:`durable_nb.fingerprints` (a step argument's identity).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import marshal
import sys
import types
import weakref
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from . import containers


def dict_of(obj: Any) -> Any:
    """``obj.__dict__``, or None; a ``__getattr__`` of the notebook's is not asked (one
    raising KeyError for it gave a readable value no identity: helper-83)."""
    try:
        return object.__getattribute__(obj, "__dict__")
    except Exception:
        return None


def attributes(obj: Any) -> Any:
    """What an object refusing its pickle holds of its own: its ``__dict__`` and slots (by
    ``object.__getstate__``, not its own), else its ``__dict__``, else None."""
    try:
        return object.__getstate__(obj)
    except Exception:
        state = dict_of(obj)
        return dict(state) if type(state) is dict else None


#: A class of nothing but a ``__dict__`` and a weak reference slot; its instances' size.
_PLAIN = type("_Plain", (), {})
_PLAIN_SIZE = _PLAIN.__basicsize__
#: id of a type -> (a weak reference to it, :func:`dict_only`'s answer). By id: a
#: metaclass's ``__eq__`` is no class's identity, and may leave it unhashable (helper-84).
_DICT_ONLY: dict[int, tuple[weakref.ref, bool]] = {}


def dict_only(t: type) -> bool:
    """Whether an instance of ``t`` holds nothing but its ``__dict__``: no slot, no state
    of a C base (a datetime's, an array's, an exception's args). Only then are its
    attributes its whole value; else it is told by them and its pickle (helper-83: a slotted
    dataclass's subclass, an ndarray's or a datetime's with an attribute, a method made
    by ``functools.wraps`` were told by their ``__dict__`` alone, so two of them differing
    elsewhere were one call)."""
    known = _DICT_ONLY.get(id(t))
    if known is not None and known[0]() is t:
        return known[1]
    found = t.__basicsize__ <= _PLAIN_SIZE and not any(
        set(_slots(c)) - {"__dict__", "__weakref__"} for c in t.__mro__
    )
    with contextlib.suppress(TypeError):  # (a type that takes no weak reference)
        _DICT_ONLY[id(t)] = (weakref.ref(t, functools.partial(_forget, id(t))), found)
    return found


def walked_by_dict(t: type) -> bool:
    """Whether all the collector finds in an instance of ``t`` is its ``__dict__`` (or the
    values it holds, before a dict is made of them) and ``t``, and ``o.__dict__`` gives that
    dict in C: a class made by ``class`` statements over ``object`` alone, with no metaclass,
    slot, C base or attribute lookup of its own. ``graph.reach`` reads such instances'
    dicts, and their class once, not once an instance: ~3x faster than their referents."""
    # A plain class's layout: no field of a C base, no slot (even one whose ``__slots__``
    # entry was deleted since: review109 F2), in the room of a dict and a weak reference.
    if type(t) is not type or _layout(t) != _PLAIN_LAYOUT:
        return False
    first: Any = _NONE  # the ``__dict__`` an instance's lookup finds: its class's own
    for c in t.__mro__[:-1]:
        d = c.__dict__
        if set(map(type, d)) != {str} or not _LOOKUPS.isdisjoint(d):  # (a C type has
            return False  # ``__getattribute__``, unless it inherits its lookup)
        if first is _NONE and "__dict__" in d:  # (``= None`` too: review109 F1; every base
            first = d["__dict__"]  # is still checked for a lookup: review110 F4)
    return type(first) is types.GetSetDescriptorType and first.__objclass__ in t.__mro__


def _layout(t: type) -> tuple[int, int, int]:
    """An instance's size, and where its dict and weak references are."""
    return t.__basicsize__, t.__dictoffset__, t.__weakrefoffset__


_PLAIN_LAYOUT = _layout(_PLAIN)


_NONE = object()
#: Names by which a class reads its instances' attributes or holds them its own way.
_LOOKUPS = frozenset({"__slots__", "__getattribute__", "__getattr__"})


def _forget(key: int, _: weakref.ref) -> None:
    """A type :func:`dict_only` answered for is gone: its id may be another's next."""
    _DICT_ONLY.pop(key, None)


def _slots(c: type) -> tuple:
    slots = c.__dict__.get("__slots__", ())
    return (slots,) if isinstance(slots, str) else tuple(slots)


def name_of(obj: Any) -> str:
    """A function's or class's module and qualified name."""
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '?')}"


def by_reference(obj: Any) -> bool:
    """Whether the pickler finds ``obj`` by its module and qualified name (a lambda, a
    local class or function is not found)."""
    found = sys.modules.get(getattr(obj, "__module__", None) or "")
    for part in str(getattr(obj, "__qualname__", "<")).split("."):
        found = getattr(found, part, None) if not part.startswith("<") else None
    return found is obj


def mutable_buffer(obj: Any) -> bool:
    """Arrays and frames: their pickle (raw buffers) identifies them, not their __dict__."""
    return type(obj).__module__.partition(".")[0] in ("numpy", "pandas", "pyarrow")


class Unordered:
    """A subclass's pairs (``kind`` b"dict") or members (b"frozenset"), read through its
    base: fed as that container is, in a canonical order, with no dict or set made of them
    (that would call a notebook's ``__hash__`` and ``__eq__``, which may raise, or make two
    members one: reread M2)."""

    __slots__ = ("items", "kind")

    def __init__(self, kind: bytes, items: list) -> None:
        self.kind, self.items = kind, items


def unordered(t: type) -> bool:
    """Whether ``t`` holds what a dict or a set holds (a Counter, a defaultdict, a set's
    subclass): hashed as they are, in a canonical order. Until 2026-12-04 by its pickle, in
    its hash or insertion order: the hash seed changed it in every process, so a step called
    with a Counter of names ran again after each restart (such calls journaled before run
    once more)."""
    return containers.base_of(t) in UNORDERED


#: Bases whose subclasses' instances are hashed in a canonical order (:func:`unordered`).
UNORDERED = (dict, defaultdict, set, frozenset)


#: Built-in values whose subclasses' instances are told by what their base holds.
VALUES = (str, bytes, int, float, complex, tuple, *containers.BASES)


def base_value(obj: Any, t: type) -> Any:
    """What ``obj`` (a subclass of one of :data:`VALUES`) holds, as its base's value, read
    by its base's own methods (no code of the notebook's runs)."""
    base = containers.base_of(t)
    if base is not None:  # (an OrderedDict's order, a defaultdict's factory, a deque's maxlen)
        held = containers.held(obj)
        if base is dict:
            return Unordered(b"dict", held)
        if base is defaultdict:
            return held[0], Unordered(b"dict", held[1])
        return Unordered(b"frozenset", held) if base in (set, frozenset) else held
    if issubclass(t, tuple):
        return tuple(tuple.__iter__(obj))
    if issubclass(t, bytes):
        return bytes(memoryview(obj))
    for base in (str, int, float, complex):
        if issubclass(t, base):
            return getattr(base, f"__{base.__name__}__")(obj)
    raise TypeError(f"{t.__qualname__} is no built-in value")


def unordered_items(obj: Any) -> Unordered:
    """A dict view's items in no order (a dict's fingerprint is in none: one made from a
    set had another in each process, helper-82)."""
    return Unordered(b"frozenset", list(obj))


#: What pickle refuses but shows its data, by its type's name (no import for it), and
#: what each shows: read-only views, a database row, a match, a hash's state, a weak
#: reference's referent, code.
VIEWS: dict[str, Callable[[Any], Any]] = {
    "builtins.mappingproxy": dict, "builtins.dict_keys": unordered_items,
    "builtins.dict_values": unordered_items, "builtins.dict_items": unordered_items,
    "builtins.odict_keys": list, "builtins.odict_values": list, "builtins.odict_items": list,
    "builtins.memoryview": lambda m: (m.format, m.shape, m.tobytes()),
    "sqlite3.Row": lambda r: (tuple(r.keys()), tuple(r)),
    "re.Match": lambda m: (m.re.pattern, m.re.flags, m.string, m.regs),
    "_hashlib.HASH": lambda h: (h.name, h.digest()),
    "weakref.ReferenceType": lambda r: (r(),),
    "builtins.code": marshal.dumps,
}  # fmt: skip


#: What a type annotation holds: its origin, arguments, metadata (``Annotated``) and a
#: type variable's bound and constraints; ``__unpacked__`` (``*tuple[int]``) too.
ANNOTATION_PARTS = ("__origin__", "__args__", "__metadata__", "__bound__", "__constraints__",
                    "__unpacked__")  # fmt: skip
#: dataclasses' sentinels, alive as long as their module: id -> how a print names them.
#: One stateless instance of its type each, pickled (by dill) by reference.
SENTINELS = {
    id(getattr(dataclasses, n)): ("dataclasses", n)
    for n in ("MISSING", "_HAS_DEFAULT_FACTORY", "KW_ONLY", "_FIELD", "_FIELD_CLASSVAR",
              "_FIELD_INITVAR")
    if hasattr(dataclasses, n)
}  # fmt: skip
SENTINEL_TYPES = frozenset(type(getattr(dataclasses, name)) for _, name in SENTINELS.values())
#: :func:`own_state` found nothing.
ABSENT = containers.ABSENT


def own_state(o: Any, name: str) -> Any:
    """``o``'s own ``name``: a slot (its C descriptor) or an entry of its ``__dict__``;
    never a property, a class attribute or ``__getattr__`` (no code of the value runs).
    :data:`ABSENT` when it has none."""
    for c in type(o).__mro__:
        found = vars(c).get(name, ABSENT)
        if found is not ABSENT:
            if type(found) not in (types.MemberDescriptorType, types.GetSetDescriptorType):
                break
            try:
                return found.__get__(o, type(o))
            except AttributeError:  # an unset slot
                return ABSENT
    try:
        own = object.__getattribute__(o, "__dict__")
    except AttributeError:
        return ABSENT
    return own.get(name, ABSENT) if type(own) is dict else ABSENT
