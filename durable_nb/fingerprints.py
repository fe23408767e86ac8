"""Fingerprints of step arguments: a stable 128-bit hash of a value, equal across processes.

A step's identity is the fingerprint of its cell, name and arguments (runtime.py); a
:class:`Shape` computes many that differ in a few places (``dnb.map``'s items) fast.
"""

from __future__ import annotations

import io
import pickle
import types
from collections import defaultdict
from typing import Any

import xxhash

from . import containers

#: Hashed by their repr.
SCALARS = (str, int, float, bool, type(None))


def fingerprint(*parts: Any) -> str:
    """A stable 128-bit hex digest of ``parts``, equal across processes.

    Containers and instances' attributes are hashed structurally (dicts and sets in
    a canonical order, so ``PYTHONHASHSEED`` does not matter); functions, classes and
    modules by name; other objects by their pickle, with out-of-band buffers (numpy,
    pandas) hashed in place; what cannot be pickled by its type alone, since its
    identity does not survive a restart.
    """
    h = xxhash.xxh3_128()
    feed(h, parts, set())
    return h.hexdigest()


def feed(h: xxhash.xxh3_128, obj: Any, seen: set[int]) -> None:
    """Add ``obj`` to the hash ``h`` as :func:`fingerprint` does (``seen``: for cycles)."""
    t = type(obj)
    if t is int:  # hex: decimal repr refuses ints over 4300 digits
        h.update(b"int:%s;" % format(obj, "x").encode())
        return
    if t in SCALARS or t is bytes or t is complex:
        h.update(b"%s:%d:%s;" % (t.__name__.encode(), len(r := repr(obj)), r.encode()))
        return
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, type, types.ModuleType)):
        name = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', obj.__name__)}"
        h.update(b"named:%s;" % name.encode())
        return
    if t in (list, tuple, dict, set, frozenset):
        if id(obj) in seen:  # a cycle: the structure above already identifies it
            h.update(b"cycle;")
            return
        seen.add(id(obj))
        h.update(b"%s:%d[" % (t.__name__.encode(), len(obj)))
        if t is dict:
            _feed_pairs(h, obj.items(), seen)
        elif t in (set, frozenset):
            _feed_members(h, obj, seen)
        else:
            for v in obj:
                feed(h, v, seen)
        h.update(b"]")
        seen.discard(id(obj))
        return
    if t is _Unordered:  # a subclass's pairs or members, hashed as a dict's or a set's
        h.update(b"%s:%d[" % (obj.kind, len(obj.items)))
        if obj.kind == b"dict":
            _feed_pairs(h, obj.items, seen)
        else:
            _feed_members(h, obj.items, seen)
        h.update(b"]")
        return
    h.update(b"obj:%s.%s;" % (t.__module__.encode(), t.__qualname__.encode()))
    state = getattr(obj, "__dict__", None)
    if issubclass(t, _VALUES) and (state or containers.reducer(t) is not None
                                   or _unordered(t)):  # fmt: skip
        # A subclass of a built-in value with attributes, iterating its own way, or of an
        # unordered base: what its base holds, read through its base (its attributes alone
        # had left it out: two batches of one name were one call), and its attributes.
        if id(obj) in seen:
            h.update(b"cycle;")
            return
        seen.add(id(obj))
        feed(h, _base_value(obj, t), seen)
        feed(h, object.__getstate__(obj), seen)
        seen.discard(id(obj))
        return
    if type(state) is dict and state and id(obj) not in seen and not _mutable_buffer(obj):
        seen.add(id(obj))  # an instance: its attributes, so sets inside hash canonically
        feed(h, state, seen)
        seen.discard(id(obj))
        return
    try:  # (a container at any depth: what it holds, never by its own iteration)
        out = io.BytesIO()
        pickler = _Pickler(out, protocol=5, buffer_callback=lambda b: h.update(b.raw()))
        pickler.dump(obj)
        h.update(out.getbuffer())
    except Exception:
        pass  # unpicklable (a client, a socket): its type alone identifies the argument


class _Pickler(pickle.Pickler):
    """The fallback's pickler: one table for the process (made per call, it cost a
    fingerprint twice pickle's time: review64 L2)."""

    dispatch_table = containers.ResultTable()


def _feed_pairs(h: xxhash.xxh3_128, pairs: Any, seen: set[int]) -> None:
    """A dict's pairs, in the order of their keys' fingerprints (no key is hashed)."""
    for kfp, v in sorted(((_part(k, seen), v) for k, v in pairs), key=lambda kv: kv[0]):
        h.update(kfp.encode())
        feed(h, v, seen)


def _feed_members(h: xxhash.xxh3_128, members: Any, seen: set[int]) -> None:
    """A set's members, in the order of their fingerprints (none is hashed)."""
    for efp in sorted(_part(e, seen) for e in members):
        h.update(efp.encode())


def _part(obj: Any, seen: set[int]) -> str:
    """``fingerprint(obj)`` inside a walk: what leads back to a container on the way (a
    graph's node keyed by itself, holding the graph) is a cycle, not a walk without end
    (helper-78 #3: RecursionError)."""
    h = xxhash.xxh3_128()
    feed(h, (obj,), seen)
    return h.hexdigest()


class _Unordered:
    """A subclass's pairs (``kind`` b"dict") or members (b"frozenset"), read through its
    base: fed as that container is, in a canonical order, with no dict or set made of them
    (that would call a notebook's ``__hash__`` and ``__eq__``, which may raise, or make two
    members one: reread M2)."""

    __slots__ = ("items", "kind")

    def __init__(self, kind: bytes, items: list) -> None:
        self.kind, self.items = kind, items


#: Marks a place that varies in a :class:`Shape`.
HOLE = "\x00durable_nb.codec.HOLE\x00"


class _Tape:
    """Stands in for a hash in :func:`feed` to record the bytes it would hash."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def update(self, data: bytes) -> None:
        self.chunks.append(bytes(data))


class Shape:
    """Fingerprints of many values that differ in a few places, computed fast.

    ``Shape(*parts)`` takes parts with :data:`HOLE` where values vary; ``shape(*fills)``
    equals ``fingerprint(*parts)`` with the holes filled in order. The bytes around
    the holes come from :func:`feed` itself and are hashed once; each call copies that
    hash state (~5× faster than :func:`fingerprint` for a small value, which counts
    when ``dnb.map`` identifies 100,000 items a second).
    """

    def __init__(self, *parts: Any) -> None:
        tape, hole = _Tape(), _Tape()
        feed(tape, parts, set())
        feed(hole, HOLE, set())
        pieces: list[list[bytes]] = [[]]
        for chunk in tape.chunks:
            if [chunk] == hole.chunks:
                pieces.append([])
            else:
                pieces[-1].append(chunk)
        self._head = xxhash.xxh3_128()
        self._head.update(b"".join(pieces[0]))
        self._after = [b"".join(p) for p in pieces[1:]]

    def __call__(self, *fills: Any) -> str:
        h = self._head.copy()
        for fill, after in zip(fills, self._after, strict=True):
            feed(h, fill, set())
            h.update(after)
        return h.hexdigest()


def _unordered(t: type) -> bool:
    """Whether ``t`` holds what a dict or a set holds (a Counter, a defaultdict, a set's
    subclass): hashed as they are, in a canonical order. Until 2026-12-04 by its pickle, in
    its hash or insertion order: the hash seed changed it in every process, so a step called
    with a Counter of names ran again after each restart (such calls journaled before run
    once more)."""
    return containers.base_of(t) in _UNORDERED


#: Bases whose subclasses' instances are hashed in a canonical order (:func:`_unordered`).
_UNORDERED = (dict, defaultdict, set, frozenset)


#: Built-in values whose subclasses' instances are told by what their base holds.
_VALUES = (str, bytes, int, float, complex, tuple, *containers.BASES)


def _base_value(obj: Any, t: type) -> Any:
    """What ``obj`` (a subclass of one of :data:`_VALUES`) holds, as its base's value, read
    by its base's own methods (no code of the notebook's runs)."""
    base = containers.base_of(t)
    if base is not None:  # (an OrderedDict's order, a defaultdict's factory, a deque's maxlen)
        held = containers.held(obj)
        if base is dict:
            return _Unordered(b"dict", held)
        if base is defaultdict:
            return held[0], _Unordered(b"dict", held[1])
        return _Unordered(b"frozenset", held) if base in (set, frozenset) else held
    if issubclass(t, tuple):
        return tuple(tuple.__iter__(obj))
    if issubclass(t, bytes):
        return bytes(memoryview(obj))
    for base in (str, int, float, complex):
        if issubclass(t, base):
            return getattr(base, f"__{base.__name__}__")(obj)
    raise TypeError(f"{t.__qualname__} is no built-in value")


def _mutable_buffer(obj: Any) -> bool:
    """Arrays and frames: their pickle (raw buffers) identifies them, not their __dict__."""
    return type(obj).__module__.partition(".")[0] in ("numpy", "pandas", "pyarrow")
