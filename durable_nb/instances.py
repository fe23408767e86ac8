"""What an object holds of its own, read without running its code: its ``__dict__``, its
slots, whether that is all of it, and the name a function or class is found by.

Used by :mod:`durable_nb.fingerprints` (a step argument's identity). Imports nothing of
the package.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import weakref
from typing import Any


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


#: An instance's size with nothing but a ``__dict__`` and a weak reference slot.
_PLAIN_SIZE = type("_Plain", (), {}).__basicsize__
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
