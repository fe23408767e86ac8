"""List, dict and set subclasses: what they hold, read through their base.

Pickle saves such an object, by its base's reduce, as what iterating it yields, and a
fingerprint of its ``__dict__`` left out what it holds. A subclass may iterate its own
way (a filtering ``__iter__``, an endless one, a dict's ``items`` of its own): what it
yields is not what it holds. Here it is read through its base's own iteration, and put
back through its base's own writers: its ``__setitem__``, ``extend`` or ``__init__``
would wrap again what its storage holds wrapped (a case-insensitive dict keeping each
key's spelling, a cache keeping each entry's expiry). No code of the notebook's runs
either way; the object comes back as it was, storage and attributes.

A journal names :func:`empty`, :func:`fill` and :func:`frozen`: never rename them.
"""

from __future__ import annotations

import copyreg
from collections import OrderedDict, defaultdict, deque
from typing import Any

#: The bases whose subclasses' contents are read here.
BASES = (list, dict, set, frozenset, deque)
#: Of them, those with a reduce of their own that iterates the object (its ``items``, or
#: its ``__iter__``): first, as two of them are dicts.
OWN_REDUCE = (OrderedDict, defaultdict, deque)


def object_reduce(t: type) -> bool:
    """Whether ``t``'s instances are pickled by object's own reduce (none of their own)."""
    return (t.__reduce_ex__ is object.__reduce_ex__ and t.__reduce__ is object.__reduce__
            and getattr(t, "__getstate__", None) is getattr(object, "__getstate__", None)
            and not hasattr(t, "__getnewargs_ex__") and not hasattr(t, "__getnewargs__")
            and t not in copyreg.dispatch_table)  # fmt: skip


def iterates_own_way(t: type) -> bool:
    """Whether pickle, by ``t``'s base's own reduce, would save what iterating a ``t``
    yields rather than what it holds: a list, dict or set subclass that overrides
    ``__iter__`` (``items`` for a dict). A filtering one would restore other contents, an
    endless one never end (a plain kernel never iterates it): :func:`stored_contents`. And
    a defaultdict subclass with attributes or slots: its base's reduce leaves them out. A
    plain defaultdict, OrderedDict or deque is none of these: plain pickle saves it."""
    if not issubclass(t, BASES):
        return False
    for base in OWN_REDUCE:
        if issubclass(t, base):
            return (t.__reduce_ex__ is object.__reduce_ex__ and t.__reduce__ is base.__reduce__
                    and getattr(t, "__getstate__", None) is getattr(object, "__getstate__", None)
                    and t not in copyreg.dispatch_table
                    and (iteration(t) is not iteration(base)
                         or (base is defaultdict and _has_state(t))))  # fmt: skip
    if issubclass(t, list):
        return object_reduce(t) and t.__iter__ is not list.__iter__
    if issubclass(t, dict):
        return object_reduce(t) and t.items is not dict.items
    base = set if issubclass(t, set) else frozenset if issubclass(t, frozenset) else None
    return base is not None and (  # (a set's own reduce calls the type with its members)
        t.__reduce_ex__ is object.__reduce_ex__ and t.__reduce__ is base.__reduce__
        and getattr(t, "__getstate__", None) is getattr(object, "__getstate__", None)
        and t.__iter__ is not base.__iter__ and t not in copyreg.dispatch_table
    )  # fmt: skip


def _has_state(t: type) -> bool:
    """Whether ``t``'s instances may hold attributes or slots (a plain defaultdict: none)."""
    return t.__dictoffset__ != 0 or any(vars(c).get("__slots__") for c in t.__mro__)


def iteration(t: type) -> Any:
    """What iterating a ``t`` calls as pickle reads it (a dict's ``items``; a deque is no
    dict)."""
    return t.items if issubclass(t, dict) else t.__iter__


def stored_contents(obj: Any) -> tuple:
    """A reduce that saves ``obj`` as it is (see :func:`iterates_own_way`): made empty by its
    base (:func:`empty`), then given what its base held and its own state (:func:`fill`,
    pickle's state setter: after ``obj`` is memoized, so it may hold itself); a frozenset
    made whole by its base (:func:`frozen`)."""
    t, own = type(obj), object.__getstate__(obj)
    if issubclass(t, frozenset):
        return frozen, (t, held(obj)), own
    return empty, (t,), (held(obj), own), None, None, fill


def frozen(t: type, members: list) -> frozenset:
    """A frozenset subclass ``t`` holding ``members``, made by frozenset."""
    return frozenset.__new__(t, members)


def empty(t: type) -> Any:
    """An empty ``t`` (a list, dict or set subclass), made by its base: no ``__new__`` or
    ``__init__`` of the notebook's runs."""
    for base in (*OWN_REDUCE, dict, list, set):
        if issubclass(t, base):
            return base.__new__(t)
    raise TypeError(f"{t.__qualname__} is no list, dict or set")


def fill(obj: Any, state: tuple) -> None:
    """Put back what ``obj``'s base held and its own state (``state``, from
    :func:`stored_contents`), as pickle's BUILD sets one: ``__setstate__``, else its
    ``__dict__`` and slots."""
    contents, own = state
    t = type(obj)
    if issubclass(t, OrderedDict):  # its order is its own list, kept by its __setitem__
        for key, value in contents:
            OrderedDict.__setitem__(obj, key, value)
    elif issubclass(t, defaultdict):
        defaultdict.__init__(obj, contents[0], contents[1])
    elif issubclass(t, deque):
        deque.__init__(obj, contents[0], contents[1])
    elif issubclass(t, dict):
        dict.update(obj, contents)
    elif issubclass(t, list):
        list.extend(obj, contents)
    else:
        set.update(obj, contents)
    if own is None:
        return
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None:
        setstate(own)
        return
    own, slots = own if type(own) is tuple and len(own) == 2 else (own, None)
    if own:
        obj.__dict__.update(own)
    for name, value in (slots or {}).items():
        setattr(obj, name, value)


def held(obj: Any) -> Any:
    """What ``obj`` holds, read through its base: a plain list (a dict: a plain dict; an
    OrderedDict: its pairs in order; a defaultdict: its factory and a plain dict; a deque:
    a plain list and its maxlen)."""
    t = type(obj)
    if issubclass(t, OrderedDict):
        return list(OrderedDict.items(obj))
    if issubclass(t, defaultdict):
        return defaultdict.default_factory.__get__(obj), dict(dict.items(obj))
    if issubclass(t, deque):
        return list(deque.__iter__(obj)), deque.maxlen.__get__(obj)
    if issubclass(t, dict):
        return dict(dict.items(obj))
    if issubclass(t, list):
        return list(list.__iter__(obj))
    return list((set if issubclass(t, set) else frozenset).__iter__(obj))
