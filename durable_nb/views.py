"""Views saved as views: ``v = a[2:5]`` comes back looking into ``a``, ``ks = d.keys()``
into ``d``.

NumPy pickles a view as a copy of what it shows. The walk (:mod:`durable_nb.graph`) ties a
view to the array whose memory it shows, so both are saved in one payload; pickled as
NumPy does, they came back apart: ``a[3] = 0`` no longer showed in ``v``, silently.
So an array whose memory lies within a variable of the same payload (an array in one
block) is pickled as that array, the byte offset, shape, strides and dtype
(:class:`Owners`), and made again as a view of the restored array (:func:`view`); the
restored array is one block again, so this holds restore after restore. Anything else (a
view of an array no variable holds, or held inside a container with it, of a subclass,
of objects) is pickled as NumPy does: its own bytes.

A dict's keys, values or items view was saved apart from its dict (the walk stopped at
it) and pickled by dill as a view of a copy: ``d['b'] = 2`` no longer showed in ``ks``.
The walk ties it to its dict; it is pickled as that dict and which view
(:func:`reduce_dict_view`).
"""

from __future__ import annotations

import gc
import sys
from collections import OrderedDict
from typing import Any


class Owners:
    """The arrays of a payload's members (its variables) whose memory is one block (C or
    Fortran order): an array whose memory lies within one of them is pickled as a view of
    it, whatever made it (slicing, ``.T``, ``reshape``, ``as_strided``) and wherever it
    sits in the value. Members only, so the answer never depends on the order the value is
    pickled in (review68 M1). ``array`` is NumPy's ndarray, or None when NumPy is not
    imported (nothing to do)."""

    def __init__(self, members: tuple) -> None:
        np = sys.modules.get("numpy")
        self.array: type | None = None if np is None else np.ndarray
        found = sorted(((*_bounds(m), m) for m in members
                        if type(m) is self.array and m.size and not m.dtype.hasobject
                        and (m.flags.c_contiguous or m.flags.f_contiguous)),
                       key=lambda b: (b[0] - b[1], not b[2].flags.writeable))  # fmt: skip
        # The largest first (a writeable one first of equal ones: a view over a read-only
        # block cannot be written, review69 L1; then in the members' order): one within
        # another (``a`` and ``a[:]``) is a view of it, never the other way round too.
        self.blocks: list[tuple[int, int, Any]] = []
        for start, end, m in found:
            if not any(s <= start and end <= e for s, e, _ in self.blocks):
                self.blocks.append((start, end, m))

    def reduce(self, obj: Any) -> tuple | None:
        """How to pickle ``obj`` (an ndarray) as a view of a block; None: as NumPy does."""
        if not self.blocks or not obj.size or obj.dtype.hasobject:
            return None  # (an object array cannot be made over a buffer)
        low, high = _bounds(obj)
        if any(block is obj for _, _, block in self.blocks):
            return None  # (a block itself: its own bytes)
        for start, end, block in self.blocks:
            if start <= low and high <= end:
                offset = obj.__array_interface__["data"][0] - start
                return view, (block, offset, obj.shape, obj.strides, obj.dtype,
                              obj.flags.writeable)  # fmt: skip
        return None


def chain(a: Any) -> list[int]:
    """The ids of what ``a``'s memory belongs to, along NumPy's ``.base`` chain: an array's
    read by ndarray's own descriptor (a subclass of the notebook's runs no code of its own,
    and does not end the chain: review69 H1), NumPy's other bases (``as_strided``'s) as
    attributes; it ends at anything else, and where it loops (review68 M4)."""
    np = sys.modules["numpy"]  # (loaded: ``a`` is an array)
    get, out = np.ndarray.base.__get__, []
    b = get(a)
    while b is not None and id(b) not in out:
        out.append(id(b))
        if issubclass(type(b), np.ndarray):
            b = get(b)
        elif str(type(b).__module__)[:5] == "numpy":
            b = getattr(b, "base", None)
        else:
            break
    return out


def _bounds(a: Any) -> tuple[int, int]:
    """The first and past-the-last byte of ``a``'s memory (a non-empty array)."""
    low = high = a.__array_interface__["data"][0]
    for n, stride in zip(a.shape, a.strides, strict=True):
        if stride < 0:
            low += (n - 1) * stride
        else:
            high += (n - 1) * stride
    return low, high + a.itemsize


def view(base: Any, offset: int, shape: tuple, strides: tuple, dtype: Any, writeable: bool
         ) -> Any:  # fmt: skip
    """The view :func:`reduce` saved, made again over ``base`` (NumPy checks that it lies
    within it)."""
    np = sys.modules["numpy"]  # (loaded: ``base`` is an array)
    if np.dtype(dtype).hasobject or getattr(base, "dtype", np.dtype(object)).hasobject:
        raise ValueError("a view of objects is not made over memory")  # (review69 L2)
    out = np.ndarray(shape, dtype, buffer=base, offset=offset, strides=strides)
    if not writeable:
        out.flags.writeable = False
    return out


_ORDERED = OrderedDict()
#: The types of a dict's views (an OrderedDict's too) -> the method that makes one.
DICT_VIEWS = {type(d.keys()): (type(d), "keys") for d in ({}, _ORDERED)} | {
    type(d.values()): (type(d), "values") for d in ({}, _ORDERED)} | {
    type(d.items()): (type(d), "items") for d in ({}, _ORDERED)}  # fmt: skip
_MAKE = {(t, kind): getattr(t, kind) for t, kind in DICT_VIEWS.values()}


def reduce_dict_view(obj: Any) -> tuple:
    """How to pickle a dict's view (its type in :data:`DICT_VIEWS`): its dict, and which."""
    (mapping,) = gc.get_referents(obj)  # the dict it shows (read without calling it)
    maker, kind = DICT_VIEWS[type(obj)]
    return dict_view, (mapping, kind, maker is OrderedDict)


def dict_view(mapping: dict, kind: str, ordered: bool = False) -> Any:
    """The view :func:`reduce_dict_view` saved, of the restored dict (made by ``dict``'s or
    ``OrderedDict``'s own method, :data:`DICT_VIEWS`: nothing else is called)."""
    return _MAKE[OrderedDict if ordered else dict, kind](mapping)
