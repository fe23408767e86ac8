"""NumPy views saved as views: ``v = a[2:5]`` comes back looking into ``a``.

NumPy pickles a view as a copy of what it shows. The walk (:mod:`durable_nb.graph`) ties a
view to the array whose memory it shows, so both are saved in one payload; pickled as
NumPy does, they came back apart: ``a[3] = 0`` no longer showed in ``v``, silently.
So a view of an array saved with it (a variable of the same payload, owning its memory)
is pickled as that array, the byte offset, shape, strides and dtype (:class:`Owners`), and
made again as a view of the restored array (:func:`view`). Anything else (a view of an
array no variable holds, of a subclass, of objects) is pickled as NumPy does.
"""

from __future__ import annotations

import sys
from typing import Any


class Owners:
    """The arrays owning their memory that a pickle holds: the payload's members, and those
    pickled so far (``{'a': a, 'v': a[2:5]}``); a view of one is pickled as a view of it.

    ``array`` is NumPy's ndarray, or None when NumPy is not imported (nothing to do)."""

    def __init__(self, members: tuple) -> None:
        np = sys.modules.get("numpy")
        self.array: type | None = None if np is None else np.ndarray
        self.held = {id(m): m for m in members if type(m) is self.array and m.base is None}

    def reduce(self, obj: Any) -> tuple | None:
        """How to pickle ``obj`` (an ndarray) as a view of an owner; None: as NumPy does."""
        base = obj.base
        if base is None:
            self.held.setdefault(id(obj), obj)
            return None
        if id(base) not in self.held or obj.dtype.hasobject:
            return None  # (an object array cannot be made over a buffer)
        offset = obj.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        return view, (base, offset, obj.shape, obj.strides, obj.dtype, obj.flags.writeable)


def view(base: Any, offset: int, shape: tuple, strides: tuple, dtype: Any, writeable: bool
         ) -> Any:  # fmt: skip
    """The view :func:`reduce` saved, made again over ``base`` (NumPy checks that it lies
    within it)."""
    np = sys.modules["numpy"]  # (loaded: ``base`` is an array)
    out = np.ndarray(shape, dtype, buffer=base, offset=offset, strides=strides)
    if not writeable:
        out.flags.writeable = False
    return out
