"""List, dict and set subclasses: what they hold, read through their base.

Pickle saves such an object, by its base's reduce, as what iterating it yields, and a
fingerprint of its ``__dict__`` left out what it holds. A subclass may iterate its own
way (a filtering ``__iter__``, an endless one, a dict's ``items`` of its own): what it
yields is not what it holds. Here it is read through its base's own iteration, which runs
no code of the notebook's.
"""

from __future__ import annotations

import copyreg
from typing import Any

#: The bases whose subclasses' contents are read here.
BASES = (list, dict, set, frozenset)


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
    endless one never end (a plain kernel never iterates it): :func:`stored_contents`."""
    if issubclass(t, list):
        return object_reduce(t) and t.__iter__ is not list.__iter__
    if issubclass(t, dict):
        return object_reduce(t) and t.items is not dict.items
    base = set if issubclass(t, set) else frozenset if issubclass(t, frozenset) else None
    return base is not None and (
        t.__reduce_ex__ is object.__reduce_ex__ and t.__reduce__ is base.__reduce__
        and getattr(t, "__getstate__", None) is getattr(object, "__getstate__", None)
        and t.__iter__ is not base.__iter__ and t not in copyreg.dispatch_table
    )  # fmt: skip


def stored_contents(obj: Any) -> tuple:
    """The reduce its base gives ``obj`` (see :func:`iterates_own_way`), with what it holds
    (read through the base's own iteration) in place of what iterating it yields."""
    t = type(obj)
    state = object.__getstate__(obj)
    if isinstance(obj, set | frozenset):  # set's reduce: the type called with its members
        return t, (held(obj),), state
    items = list.__iter__(obj) if isinstance(obj, list) else None
    pairs = iter(dict.items(obj)) if isinstance(obj, dict) else None
    return copyreg.__newobj__, (t,), state, items, pairs


def held(obj: list | dict | set | frozenset) -> list | dict:
    """What ``obj`` holds, as a plain list (a dict: a plain dict), read through its base."""
    if isinstance(obj, dict):
        return dict(dict.items(obj))
    if isinstance(obj, list):
        return list(list.__iter__(obj))
    return list((set if isinstance(obj, set) else frozenset).__iter__(obj))
