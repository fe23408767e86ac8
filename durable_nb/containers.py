"""List, dict and set subclasses: what they hold, read through their base.

Pickle saves such an object, by its base's reduce, as what iterating it yields, and a
fingerprint of its ``__dict__`` left out what it holds. A subclass may iterate its own
way (a filtering ``__iter__``, an endless one, a dict's ``items`` of its own): what it
yields is not what it holds. Here it is read through its base's own iteration, and put
back through its base's own writers: its ``__setitem__``, ``extend`` or ``__init__``
would wrap again what its storage holds wrapped (a case-insensitive dict keeping each
key's spelling, a cache keeping each entry's expiry). No code of the notebook's runs
either way, not even a hash of a key; the object comes back as it was, storage and
attributes. Every pickler of the package asks :func:`reducer` (one cache per type), so
the rule holds at any depth: a result's, a fingerprint's, the namespace's.

Class attributes are read from the classes' own ``vars`` along the MRO (:func:`lookup`):
``getattr`` on a class would run a notebook descriptor's ``__get__`` or a metaclass's
``__getattr__`` while saving.

A journal names :func:`empty`, :func:`fill` and :func:`frozen`: never rename them.
"""

from __future__ import annotations

import copyreg
import operator
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from typing import Any

#: The bases whose subclasses' contents are read here (OrderedDict and defaultdict are
#: dicts).
BASES = (list, dict, set, frozenset, deque)
#: Each base, and the subclasses of dict with a reduce and storage of their own. Exact
#: instances of these are C types that never change: plain pickle's.
_EXACT = frozenset((*BASES, OrderedDict, defaultdict))
#: What each pickler of the package calls for a type without a reducer of its own: the
#: type's own ``__reduce_ex__`` (what a pickler without a table calls).
REDUCE = operator.methodcaller("__reduce_ex__", 5)


#: What :func:`lookup` finds for a name no class defines.
ABSENT = object()


def lookup(t: type, name: str) -> Any:
    """``t``'s class attribute ``name`` as stored (:data:`ABSENT` when none; a ``None``
    too is what it is: ``__iter__ = None``): no descriptor's ``__get__``, no metaclass
    ``__getattr__`` or ``__getattribute__``, runs (``type``'s own getters: review110 F6)."""
    for c in MRO(t):
        found = CLASS_DICT(c).get(name, ABSENT)
        if found is not ABSENT:
            return found
    return ABSENT


def defines(t: type, name: str) -> bool:
    """Whether ``t`` or a base defines ``name`` (as ``type()`` looks a special name up)."""
    return lookup(t, name) is not ABSENT


#: A class's MRO and dict through ``type``'s own getters: never a metaclass's code.
MRO, CLASS_DICT = type.__dict__["__mro__"].__get__, type.__dict__["__dict__"].__get__


_OBJECT_REDUCE = vars(object)["__reduce__"]
_OBJECT_REDUCE_EX = vars(object)["__reduce_ex__"]
_OBJECT_GETSTATE = vars(object).get("__getstate__", ABSENT)  # (none before Python 3.11)


def base_of(t: type) -> type | None:
    """The base of :data:`_EXACT` whose storage ``t`` has (the first along its MRO: an
    OrderedDict subclass's is OrderedDict, not dict), or None."""
    for c in t.__mro__:
        if c in _EXACT:
            return c
    return None


def _keeps_reduce(t: type, base: type) -> bool:
    """Whether ``t``'s instances are pickled by ``base``'s reduce: no reduce, state or new
    arguments of the notebook's, and none in ``copyreg``."""
    reduce = lookup(t, "__reduce__")
    return (reduce is lookup(base, "__reduce__")
            and lookup(t, "__reduce_ex__") is _OBJECT_REDUCE_EX
            and lookup(t, "__getstate__") is _OBJECT_GETSTATE
            # (object's reduce calls these; a set's or a deque's own does not)
            and (reduce is not _OBJECT_REDUCE or (lookup(t, "__getnewargs_ex__") is ABSENT
                                                  and lookup(t, "__getnewargs__") is ABSENT))
            and t not in copyreg.dispatch_table)  # fmt: skip


def object_reduce(t: type) -> bool:
    """Whether ``t``'s instances are pickled by object's own reduce (none of their own)."""
    return _keeps_reduce(t, object)


def iteration(t: type) -> Any:
    """What iterating a ``t`` calls as pickle reads it (a dict's ``items``; a deque is no
    dict), as stored on its class."""
    return lookup(t, "items" if issubclass(t, dict) else "__iter__")


def _has_state(t: type) -> bool:
    """Whether ``t``'s instances may hold attributes or slots (a plain defaultdict: none)."""
    return t.__dictoffset__ != 0 or any(vars(c).get("__slots__") for c in t.__mro__)


def iterates_own_way(t: type) -> bool:
    """Whether pickle, by ``t``'s base's own reduce, would save what iterating a ``t``
    yields rather than what it holds: a list, dict or set subclass that overrides
    ``__iter__`` (``items`` for a dict). A filtering one would restore other contents, an
    endless one never end (a plain kernel never iterates it): :func:`stored_contents`. And
    a defaultdict subclass with attributes or slots: its base's reduce leaves them out. A
    plain defaultdict, OrderedDict or deque is none of these: plain pickle saves it."""
    base = base_of(t)
    return (base is not None and t is not base and _keeps_reduce(t, base)
            and (iteration(t) is not iteration(base)
                 or (base is defaultdict and _has_state(t))))  # fmt: skip


#: Type -> (what decided it when seen, its reducer or None): :func:`reducer`'s cache.
_KNOWN: dict[type, tuple[tuple, Callable[[Any], tuple] | None]] = {}


def _decided_by(t: type) -> tuple:
    """What :func:`iterates_own_way` reads of ``t``: a class given an ``__iter__``, a
    reduce or a state of its own after its instances were saved is decided again
    (review60 #2, review64 L1)."""
    return (iteration(t), lookup(t, "__reduce__"), lookup(t, "__reduce_ex__"),
            lookup(t, "__getstate__"), copyreg.dispatch_table.get(t))  # fmt: skip


def reducer(t: type) -> Callable[[Any], tuple] | None:
    """:func:`stored_contents` when ``t`` :func:`iterates_own_way`, else None: what every
    pickler of the package (and a fingerprint) asks once per type and pickle. Remembered
    per type, and found again when what decided it changed (:func:`_decided_by`)."""
    if t in _EXACT or not issubclass(t, BASES):  # (most types: no MRO read)
        return None
    it = _decided_by(t)
    known = _KNOWN.get(t)
    if known is not None and all(map(operator.is_, known[0], it)):
        return known[1]
    if len(_KNOWN) > 50_000:  # classes made in a loop: do not keep them all alive
        _KNOWN.clear()
    found = stored_contents if iterates_own_way(t) else None
    _KNOWN[t] = (it, found)
    return found


def reduce_held(obj: Any) -> Any:
    """``obj``'s reduce by :func:`stored_contents`, or NotImplemented (a pickler's
    ``reducer_override``: the pickler's own way)."""
    found = reducer(type(obj))
    return NotImplemented if found is None else found(obj)


class ResultTable(dict):
    """A ``dispatch_table`` for a pickler of results and of fingerprints: copyreg's
    reducers, :func:`stored_contents` for a type that iterates its own way, else the
    type's own ``__reduce_ex__`` (what the pickler calls without a table); made per type
    on first sight (a list, dict or set subclass's asked at each object: its class may
    change, and a fingerprint's table lives on). So no value, at any depth, is pickled
    by its own iteration."""

    def __missing__(self, t: type) -> Any:
        if issubclass(t, type):  # a class of a metaclass (an Enum, an ABC): by name, as
            raise KeyError(t)  # the pickler does without a table (review61 #1)
        found = copyreg.dispatch_table.get(t) or (_asked if issubclass(t, BASES) else REDUCE)
        self[t] = found
        return found


def _asked(obj: Any) -> Any:
    """``obj``'s reduce as :func:`reducer` decides it now, else its own."""
    return (reducer(type(obj)) or REDUCE)(obj)


def stored_contents(obj: Any) -> tuple:
    """A reduce that saves ``obj`` as it is (see :func:`iterates_own_way`): made empty by its
    base (:func:`empty`), then given what its base held and its own state (:func:`fill`,
    pickle's state setter: after ``obj`` is memoized, so it may hold itself); a frozenset
    made whole by its base (:func:`frozen`)."""
    t, own = type(obj), object.__getstate__(obj)
    base = base_of(t)
    if base is frozenset:
        return frozen, (t, held(obj, base)), own
    return empty, (t,), (held(obj, base), own), None, None, fill


def frozen(t: type, members: list) -> frozenset:
    """A frozenset subclass ``t`` holding ``members``, made by frozenset."""
    return frozenset.__new__(t, members)


def empty(t: type) -> Any:
    """An empty ``t`` (a list, dict or set subclass), made by its base: no ``__new__`` or
    ``__init__`` of the notebook's runs."""
    base = base_of(t)
    if base is None or base is frozenset:
        raise TypeError(f"{t.__qualname__} is no list, dict or set")
    return base.__new__(t)


def fill(obj: Any, state: tuple) -> None:
    """Put back what ``obj``'s base held and its own state (``state``, from
    :func:`stored_contents`), as pickle's BUILD sets one: ``__setstate__``, else its
    ``__dict__`` and slots. A dict's contents are pairs, or a dict (journals written
    before pairs: reread M2): its base's writers take either."""
    contents, own = state
    base = base_of(type(obj))
    if base is OrderedDict:  # its order is its own list, kept by its __setitem__
        for key, value in contents:
            OrderedDict.__setitem__(obj, key, value)
    elif base is defaultdict or base is deque:  # (factory and pairs; items and maxlen)
        base.__init__(obj, contents[0], contents[1])
    elif base is dict:
        dict.update(obj, contents)
    elif base is list:
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


def held(obj: Any, base: type | None = None) -> Any:
    """What ``obj`` holds, read through its base: a plain list (a dict, an OrderedDict: its
    pairs, in order; a defaultdict: its factory and its pairs; a deque: a plain list and its
    maxlen). Pairs, not a dict: a dict made here would hash every key again, a notebook's
    ``__hash__`` that plain pickle never calls (reread M2). ``base``: its
    :func:`base_of`, when known."""
    base = base or base_of(type(obj))
    if base is dict or base is OrderedDict:
        return list(base.items(obj))
    if base is defaultdict:
        return defaultdict.default_factory.__get__(obj), list(dict.items(obj))
    if base is deque:
        return list(deque.__iter__(obj)), deque.maxlen.__get__(obj)
    if base is None:
        raise TypeError(f"{type(obj).__qualname__} is no list, dict or set")
    return list(base.__iter__(obj))
