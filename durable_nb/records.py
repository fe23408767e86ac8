"""A list, tuple or dict of instances of plain classes (records: dataclasses, ``class Obj``
with attributes), saved as their classes and their attributes' dicts, marshaled.

Pickle calls each instance's reduce and memoizes each object it writes: 1,000 dataclass
records ~2 ms, 10,000 instances ~21 ms. Their ``__dict__`` s read in a list and
marshaled (marshaled.py) take ~0.3 and ~3.5 ms; a load takes about what pickle's does
(plus the check of what marshal read: 10,000 instances ~23 ms against ~21). The payload is a
pickle that names the classes (by reference, as pickle names them) and calls
:func:`rebuild` on the marshaled dicts: the codec stays pickle.

A class qualifies when pickle would make its instances again exactly as :func:`rebuild`
does, ``cls.__new__(cls)`` then the instance's dict updated (pickle's ``NEWOBJ`` and
``BUILD``): pure Python classes over ``object``, none defining how they pickle, get or set
state, are made, or read attributes (:func:`plain`). Each instance is held once, at the
top (the walk keyed none: no other holder, no weak reference), and its attributes hold only
builtin data (marshal refuses an instance in them: pickled then as before); objects they
share stay one (marshal's references).
"""

from __future__ import annotations

import copyreg
import pickle
import types
from operator import attrgetter, is_
from typing import Any

from . import graph, marshaled, names
from .errors import PayloadRefused

#: Names a class defining any of disqualifies (pickle, state, making, attribute reads).
_OWN = frozenset({"__reduce__", "__reduce_ex__", "__getstate__", "__setstate__",
                  "__getnewargs__", "__getnewargs_ex__", "__new__", "__getattribute__",
                  "__getattr__", "__slots__", "__class__"})  # fmt: skip


def plain(t: type) -> bool:
    """Whether ``t``'s instances are records (see the module docstring). Asked anew each time
    (~1 µs a class): a class can gain a ``__setstate__`` or a ``__reduce__`` later."""
    if type(t) is not type:  # (first: no metaclass's attribute is read)
        return False
    mro = t.__mro__
    return (mro[-1] is object and t.__dictoffset__ != 0 and t not in copyreg.dispatch_table
            and not vars(t).get("__slotnames__")  # (pickle reads those; it caches [] there)
            and graph.kind(t) == graph.WALK and all(map(_own_none, mro[:-1])))  # fmt: skip


def _own_none(c: type) -> bool:
    """Whether class ``c`` (of an MRO) is pure Python and defines none of :data:`_OWN` nor a
    ``__dict__`` of its own; its dict's keys exact strings (no key's ``__eq__`` runs)."""
    d = vars(c)
    return (bool(c.__flags__ & names.HEAP) and set(map(type, d)) == {str} and _OWN.isdisjoint(d)
            and type(d.get("__dict__", _DEFAULT)) is types.GetSetDescriptorType)  # fmt: skip


_DEFAULT = vars(type("_Plain", (), {}))["__dict__"]  # a class's own __dict__ descriptor


def encode(obj: Any, reached: graph.Reach) -> tuple[bytes, tuple[type, ...]] | None:
    """The payload of ``obj`` (a pickle that calls :func:`rebuild` on its records' classes
    and the marshal of their dicts, with the dict's keys for a dict) and those classes; None
    when ``obj`` is no container of records only, or pickle cannot name a class."""
    met = reached.types - marshaled.TYPES - {type}
    if not met or not all(map(plain, met)) or reached.kernel:
        return None
    items = list(obj.values() if type(obj) is dict else obj)
    keyed = reached.keys - {id(obj)}  # (the container itself: never one of its records)
    if keyed and not keyed.isdisjoint(map(id, items)):
        return None  # a record held twice, or elsewhere too, or weakly: pickled with them
    kinds = list(map(type, items))
    classes = tuple(dict.fromkeys(kinds))
    if met != set(classes):
        return None  # builtin data beside them, or a record in a record: pickled
    index = {c: i for i, c in enumerate(classes)}
    with marshaled.gc_paused():  # (no finalizer runs while the dicts are read: helper-74 M1)
        states = list(map(_STATE, items))  # (in C: the default descriptor, no code runs)
        blob = marshaled.write((type(obj).__name__, list(obj) if type(obj) is dict else None,
                                [index[k] for k in kinds] if len(classes) > 1 else None,
                                states))  # fmt: skip
    if blob is None or not all(map(is_, map(type, items), kinds)):
        return None  # an instance, an array... in them, or a class changed: pickled
    try:
        return pickle.dumps(_Rebuild((classes, blob)), protocol=5), classes
    except Exception:  # a class no longer bound to its name: pickled as before (refused)
        return None


class _Rebuild:
    """Pickles as a call of :func:`rebuild` (the classes by reference, as pickle names them)."""

    __slots__ = ("args",)

    def __init__(self, args: tuple) -> None:
        self.args = args

    def __reduce__(self) -> tuple:
        return rebuild, self.args


_STATE = attrgetter("__dict__")


def rebuild(classes: tuple[type, ...], blob: bytes) -> Any:
    """The value :func:`encode` wrote (the restore's classes): each record made as pickle
    makes it (``__new__``, then its ``__setstate__`` or its dict updated; nothing for an
    empty one). :class:`~durable_nb.errors.PayloadRefused` for what :func:`encode` never
    writes."""
    got = marshaled.loads(blob)
    if not _written(classes, got):
        raise PayloadRefused("is not one durable_nb writes (damaged, or made elsewhere)")
    kind, keys, which, states = got
    made, fast = [], list(map(plain, classes))
    for i, state in enumerate(states):
        k = which[i] if which is not None else 0
        cls = classes[k]
        if fast[k]:
            obj = object.__new__(cls)
            obj.__dict__.update(state)
        else:  # a class redefined since: as pickle would, with what it defines now
            obj = cls.__new__(cls)
            setstate = getattr(obj, "__setstate__", None) if state else None
            if setstate is not None:
                setstate(state)
            else:
                obj.__dict__.update(state)
        made.append(obj)
    if kind == "dict":
        return dict(zip(keys, made, strict=True))
    return made if kind == "list" else tuple(made)


def _written(classes: Any, got: Any) -> bool:
    """Whether ``got`` (a loaded blob) and ``classes`` are what :func:`encode` writes: the
    container's kind, its keys (a dict's, each once), a class index per record (several
    classes), each record's state a dict."""
    if type(classes) is not tuple or not all(type(c) is type for c in classes) or not classes:
        return False
    if type(got) is not tuple or len(got) != 4:
        return False
    kind, keys, which, states = got
    if kind not in ("list", "tuple", "dict") or type(states) is not list:
        return False
    if (keys is None) != (kind != "dict") or (
        keys is not None
        and (type(keys) is not list or len(keys) != len(states) or len(set(keys)) != len(keys))
    ):
        return False  # fmt: skip
    if which is None:
        ok_which = len(classes) == 1
    else:
        ok_which = (type(which) is list and len(which) == len(states)
                    and all(type(k) is int and 0 <= k < len(classes) for k in which))  # fmt: skip
    return ok_which and all(type(s) is dict for s in states)
