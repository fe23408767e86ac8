"""Variables of builtin data only (JSON rows, dicts of strings, tuples), saved by marshal.

For such values ``marshal`` writes 2-7x faster than pickle (50k JSON rows: ~13 ms against
~38; a dict of 100k strings: ~6 against ~35) and loads faster: pickle memoizes every string
and container it writes, marshal only what is held twice (``Py_REFCNT > 1``), so which
objects are one survives as with pickle. It keeps interned strings interned (a restored
table's keys are shared, not one copy per row).

Marshal writes these exact types as themselves and refuses any other object, except one: an
object with a buffer (a ``bytearray``, an array) is written as ``bytes``. So a value is
marshaled only when the walk that precedes it (:func:`graph.reach`) met no type but those
of :data:`TYPES`, which has no ``bytes``; and a load that finds a ``bytes`` object (a thread
put a buffer in the value between the walk and the write) refuses the payload rather than
give a value that never was (:func:`loads`).
"""

from __future__ import annotations

import gc
import itertools
import marshal
from typing import Any

#: The journal's ``codec`` column for a marshaled payload.
MARSHAL = "marshal"
#: The format written (Python 3.4 and later read it).
VERSION = 4
#: The exact types a marshaled value may hold: no ``bytes`` (see the module docstring).
TYPES = frozenset({dict, list, tuple, set, frozenset, str, int, float, complex, bool,
                   type(None)})  # fmt: skip
#: Containers whose items tell whether a value is worth walking first (:func:`wordy`).
ROOTS = frozenset({dict, list, tuple, set, frozenset})
_NUMBERS = frozenset({int, float, bool, type(None)})
_LOOK = 8


class Refused(ValueError):
    """A marshaled payload holds what its value did not (see :func:`loads`)."""


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
    if not types <= TYPES:
        return None
    try:
        return marshal.dumps(obj, VERSION)
    except ValueError:
        return None


def loads(stream: bytes) -> Any:
    """The value of a marshaled payload; :class:`Refused` when it holds an object of a type
    not in :data:`TYPES`: a ``bytes`` is a buffer a thread put in the value while it was
    saved (marshal writes both alike), a code object or any other one was never written
    by :func:`dumps`."""
    value = marshal.loads(stream)
    if not _only(value):
        raise Refused("its payload holds an object of a type it was not saved with "
                      "(a thread changed it while it was saved)")  # fmt: skip
    return value


def _only(value: Any) -> bool:
    """Whether all ``value`` holds is of :data:`TYPES`: a walk of what was just loaded, each
    container once (marshal keeps which objects are one, cycles too)."""
    seen: set[int] = set()
    level = [value]
    while level:
        kinds = set(map(type, level))
        if not kinds <= TYPES:
            return False
        if kinds.isdisjoint(ROOTS):
            return True
        held = list(itertools.compress(level, map(ROOTS.__contains__, map(type, level))))
        by_id = dict(zip(map(id, held), held, strict=True))
        fresh = [by_id[i] for i in by_id.keys() - seen]
        seen.update(by_id)
        level = gc.get_referents(*fresh)
    return True
