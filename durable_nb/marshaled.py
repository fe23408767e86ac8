"""Variables of builtin data only (JSON rows, dicts of strings, tuples), saved by marshal.

For such values ``marshal`` writes 2-7x faster than pickle (50k JSON rows: ~13 ms against
~38; a dict of 100k strings: ~6 against ~35), and reads faster (the check of what it read,
a walk, brings a load to about pickle's time): pickle memoizes every string
and container it writes, marshal only what is held twice (``Py_REFCNT > 1``), so which
objects are one survives as with pickle. It keeps interned strings interned (a restored
table's keys are shared, not one copy per row).

Marshal writes these exact types as themselves and refuses any other object, except one: an
object with a buffer (a ``bytearray``, an array) is written as ``bytes``. So a value is
marshaled only when the walk that precedes it (:func:`graph.reach`) met no type but those
of :data:`TYPES`, which has no ``bytes``; and a load that finds a ``bytes`` object (a thread
put a buffer in the value between the walk and the write) refuses the payload rather than
give a value that never was (:func:`loads`). Nor sets: marshal sorts a set's members by
their own marshal, allocating as it goes (a collection inside it could run a finalizer that
lets a thread change the list being written: read freed memory, helper-73 H1), and nested
sets are marshaled again at each level (2^depth: helper-73 H2). The collector is off while
marshal writes (:func:`write`), so that a set a thread puts in after the walk cannot.

A thread that puts another variable's object in the value between the walk and the write
has the two saved apart (one object comes back as two) until the next save that reaches
them: with pickle, written first and walked after, the same holds of one it takes out.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import marshal
from collections.abc import Iterator
from typing import Any

from . import graph
from .errors import PayloadRefused

#: The journal's ``codec`` column for a marshaled payload.
MARSHAL = "marshal"
#: The format written (Python 3.4 and later read it).
VERSION = 4
#: The exact types a marshaled value may hold: no ``bytes`` (see the module docstring).
TYPES = frozenset({dict, list, tuple, str, int, float, complex, bool, type(None)})
#: Containers whose items tell whether a value is worth walking first (:func:`wordy`).
ROOTS = frozenset({dict, list, tuple})
_NUMBERS = frozenset({int, float, bool, type(None)})
_LOOK = 8


def wordy(obj: Any) -> bool:
    """Whether ``obj``, a container of :data:`ROOTS`, starts with strings or containers (what
    pickle memoizes one by one, and marshal writes faster): worth walking before it is
    written. A list of numbers is not: pickle writes it as fast, and what it reaches is
    read from pickle's memo without a walk (``codec.encode_plain``)."""
    t = type(obj)
    first = itertools.islice(obj.items() if t is dict else obj, _LOOK)
    if t is dict:
        first = itertools.chain.from_iterable(first)
    return not _NUMBERS.issuperset(map(type, first)) if obj else False


def dumps(obj: Any, types: set[type]) -> bytes | None:
    """``obj``'s marshal, when ``types`` (all the walk met) are all of :data:`TYPES`; None
    when not, or when marshal refuses it (nested past its depth, or a thread put another
    object in it after the walk)."""
    return write(obj) if types <= TYPES else None


def write(obj: Any) -> bytes | None:
    """``marshal.dumps(obj)`` with the collector off (no finalizer runs, no thread takes its
    turn: marshal runs no Python code), None when marshal refuses it."""
    with gc_paused():
        try:
            return marshal.dumps(obj, VERSION)
        except Exception:  # nested past marshal's depth, a thread's object (ValueError)...
            return None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block, if it runs; as it was after.

    No finalizer runs inside (:func:`write`, ``records.encode``). And a restore's unpickling,
    with the imports it sets off, makes many objects and no garbage, where each collection
    walks all those made so far (50k JSON-like rows load in 32 ms instead of 77).
    Collections left due come when they will after the block.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def loads(stream: bytes) -> Any:
    """The value of a marshaled payload; :class:`~durable_nb.errors.PayloadRefused` when it
    holds an object of a type not in :data:`TYPES`: a ``bytes`` is a buffer a thread put in
    the value while it was saved (marshal writes both alike), a code object or any other
    one was never written by :func:`dumps`."""
    value = marshal.loads(stream)
    if not _only(value):
        raise PayloadRefused("holds an object of a type it was not saved with (a thread "
                             "changed it while it was saved)")  # fmt: skip
    return value


def _only(value: Any) -> bool:
    """Whether all ``value`` holds is of :data:`TYPES`: what a walk of it meets (each object
    shared in it once; what only one container holds is not looked up)."""
    return graph.reach(value, {}, typed=True).types <= TYPES
