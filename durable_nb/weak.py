"""Weak references in a saved value: kept only while what they point at comes back with them.

A weak reference holds nothing alive. Pickled alone (as dill does: the object it points at,
copied), it comes back pointing at a copy that nothing else holds, so it is dead at once:
``r()`` reads ``None`` where it read an object. So:

- a plain ``weakref.ref`` without a callback is saved as the object it points at (the
  walk, :mod:`durable_nb.graph`, ties it to the variables holding that object, so they are
  saved together and the object is one object again after a restore), and only when that
  object is held, strongly, by the value saved with it (:func:`check`); a dead one is saved
  dead;
- proxies, callbacks, subclasses (``WeakMethod``, ``KeyedRef``) and the weak containers
  (``WeakKeyDictionary``, ``WeakValueDictionary``, ``WeakSet``, ``finalize``) are not saved:
  their cell makes them again (dill saved a ``WeakSet`` that came back empty);
- a restore checks it again (:func:`loading`): a reference whose object the loaded value
  no longer holds (a ``__getstate__`` that drops the cache holding it) raises
  :class:`WeakReferenceLost`, and the payload's variables are reported not restored, never
  handed back with a dead reference (nor made again by their cell: a saved value's cell
  does not redo what later cells did to it, review68 H1);
- a step result holding weak references is not saved (codec.py): replayed, they were dead.

The walk keys an object that a weak reference points at even when one container holds
it (graph.py): the weak reference reaches it too, and garbage it points into (a cycle the
collector has not freed yet) would otherwise be walked round and round.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import sys
import types
import weakref
from collections.abc import Iterator
from typing import Any

from .errors import WeakReferenceLost

#: Types saved by :func:`reduce`: exactly ``weakref.ref`` (a subclass holds more).
REF = weakref.ReferenceType
#: Types refused: what a weak reference or container holds cannot be told from what it
#: shows (a proxy's object cannot be read without calling it), or comes back empty.
_REFUSED = (weakref.ReferenceType, weakref.ProxyType, weakref.CallableProxyType,
            weakref.WeakKeyDictionary, weakref.WeakValueDictionary, weakref.WeakSet,
            weakref.finalize)  # fmt: skip


_WEAK: dict[type, bool] = {}


def weak(t: type) -> bool:
    """Whether ``t``'s instances are weak references or containers (:func:`reduce`)."""
    known = _WEAK.get(t)
    if known is None:
        if len(_WEAK) > 50_000:  # classes made in a loop: do not keep them all alive
            _WEAK.clear()
        known = _WEAK[t] = issubclass(t, _REFUSED)
    return known


class Refused(Exception):
    """A weak reference or container that is not saved; the reason is the message."""


def reduce(obj: Any, targets: list[Any]) -> tuple:
    """How to pickle ``obj``, weak (:func:`weak`): the object it points at is added to
    ``targets``, for :func:`check`. Raises :class:`Refused`."""
    t = type(obj)
    if t is not REF:  # (a proxy's object cannot even be read without using it)
        raise Refused(f"a {t.__name__} holds weak references, saved only as a plain "
                      "weakref.ref: it is made again by its cell")  # fmt: skip
    if obj.__callback__ is not None:
        raise Refused("a weak reference with a callback is made again by its cell")
    target = obj()
    if target is not None:
        targets.append(target)
    return ref, (target,)


def check(value: Any, targets: list[Any]) -> bool:
    """Whether every object in ``targets`` is held: found again by its module and name (a
    class, a function, a module: pickled by reference, held by its module), or held by
    ``value`` through what a pickle of it saves by value (:func:`_held_by`; a weak
    reference holds nothing)."""
    left = {id(t) for t in targets if not _named(t)}
    np = sys.modules.get("numpy")
    apart = (*_CODE, type) if np is None else (*_CODE, type, np.ndarray)
    seen: set[int] = set()
    level = [value]
    while level and left:  # one level at a time, in C but for code, modules and arrays
        fresh = [o for o in level if id(o) not in seen]
        seen.update(map(id, fresh))
        left.difference_update(map(id, fresh))
        odd = [issubclass(type(o), apart) for o in fresh]
        level = gc.get_referents(*(o for o, x in zip(fresh, odd, strict=True) if not x))
        for o in (o for o, x in zip(fresh, odd, strict=True) if x):
            level.extend(_held_by(o))
    return not left


#: What a pickle saves by reference, or by value only in part (:func:`_held_by`).
_CODE = (types.ModuleType, types.FunctionType, types.MethodType)


def _held_by(o: Any) -> list[Any]:
    """What ``o``'s pickle holds by value: nothing of a module or of a class or function
    found by its name (they are pickled by name: held by their module, not by ``o``); a
    function's defaults, closure and attributes, not its globals (its module's); all a
    class saved by value holds; the objects an array of objects holds."""
    t = type(o)
    if t is types.ModuleType or _named(o):
        return []
    if t is types.FunctionType:
        return [o.__defaults__, o.__kwdefaults__, o.__closure__, o.__dict__]
    if t is types.MethodType:
        return [o.__func__, o.__self__]
    if issubclass(t, type):
        return gc.get_referents(o)
    # An array: the objects it holds (the collector sees none of them).
    return o.ravel(order="K").tolist() if o.dtype.hasobject else []


#: ``type``'s own getters: a metaclass's ``__module__`` or ``__dict__`` is the notebook's code.
_MODULE, _NAME = type.__dict__["__module__"], type.__dict__["__qualname__"]
_DICT = type.__dict__["__dict__"]


def _named(o: Any) -> bool:
    """Whether ``o`` is a class, function or module found again by its module and name."""
    t = type(o)
    if t is types.ModuleType:
        return sys.modules.get(o.__name__) is o
    if issubclass(t, type):
        module, qualname = _MODULE.__get__(o), _NAME.__get__(o)
    elif t is types.FunctionType or t is types.BuiltinFunctionType:
        module, qualname = o.__module__, o.__qualname__
    else:
        return False
    found = sys.modules.get(module) if type(module) is str else None
    for part in qualname.split(".") if type(qualname) is str else ["<>"]:
        if type(found) is types.ModuleType:
            found = vars(found).get(part)
        elif found is not None and issubclass(type(found), type):
            found = _DICT.__get__(found).get(part)
        else:
            return False
    return found is o


class _Dead:
    """What a dead reference pointed at: made, referred to, and let go at once."""


_MADE: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "durable_nb_weak_made", default=None
)


def ref(target: Any) -> weakref.ReferenceType:
    """A weak reference to ``target`` (None: a dead one), as a payload loads it."""
    made = _MADE.get()
    if target is None:
        return weakref.ref(_Dead())
    if made is not None:
        made.append(target)
    return weakref.ref(target)


@contextlib.contextmanager
def loading() -> Iterator[list[Any]]:
    """The objects weak references loaded within point at (for :func:`check` against the
    loaded value: :class:`WeakReferenceLost` when it does not hold them)."""
    made: list[Any] = []
    token = _MADE.set(made)
    try:
        yield made
    finally:
        _MADE.reset(token)


def held(value: Any, made: list[Any]) -> None:
    """Raise :class:`WeakReferenceLost` unless ``value`` holds what its weak references
    point at (``made``, from :func:`loading`)."""
    if made and not check(value, made):
        raise WeakReferenceLost()
