"""Views saved as views: ``v = a[2:5]`` comes back looking into ``a``, ``ks = d.keys()``
into ``d``.

NumPy pickles a view as a copy of what it shows. The walk (:mod:`durable_nb.graph`) ties a
view to the array whose memory it shows, so both are saved in one payload; pickled as
NumPy does, they came back apart: ``a[3] = 0`` no longer showed in ``v``, silently.
So a view of an array saved with it (a variable of the same payload, owning its memory)
is pickled as that array, the byte offset, shape, strides and dtype (:class:`Owners`), and
made again as a view of the restored array (:func:`view`). Anything else (a view of an
array no variable holds, of a subclass, of objects) is pickled as NumPy does.

A dict's keys, values or items view was saved apart from its dict (the walk stopped at
it) and pickled by dill as a view of a copy: ``d['b'] = 2`` no longer showed in ``ks``.
The walk ties it to its dict; it is pickled as that dict and which view
(:func:`reduce_dict_view`).
"""

from __future__ import annotations

import gc
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


#: The types of a dict's views -> the dict method that makes one.
DICT_VIEWS = {type({}.keys()): "keys", type({}.values()): "values", type({}.items()): "items"}
_MAKE = {"keys": dict.keys, "values": dict.values, "items": dict.items}


def reduce_dict_view(obj: Any) -> tuple:
    """How to pickle a dict's view (its type in :data:`DICT_VIEWS`): its dict, and which."""
    (mapping,) = gc.get_referents(obj)  # the dict it shows (read without calling it)
    return dict_view, (mapping, DICT_VIEWS[type(obj)])


def dict_view(mapping: dict, kind: str) -> Any:
    """The view :func:`reduce_dict_view` saved, of the restored dict."""
    return _MAKE[kind](mapping)
