"""Many step identities that differ in a few places (``dnb.map``'s items), computed fast:
the bytes around the places that vary are hashed once (:class:`Shape`).
"""

from __future__ import annotations

from typing import Any

import xxhash

from .fingerprints import ATOMS, TooShared, Walk, feed, feed_top, fingerprint

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
    when ``dnb.map`` identifies 100,000 items a second). The parts met again are counted
    across the parts and the fills, as :func:`fingerprint` counts them: past its limit, a
    call is ``fingerprint`` of the parts with the holes filled (holes in tuples and lists).
    """

    def __init__(self, *parts: Any) -> None:
        tape, hole, walk = _Tape(), _Tape(), Walk()
        try:
            feed(tape, parts, {None: walk})
        except TooShared:  # (every call is fingerprint's then: the tape was cut short)
            walk.done, tape.chunks = None, []
        feed(hole, HOLE, {})
        pieces: list[list[bytes]] = [[]]
        for chunk in tape.chunks:
            if [chunk] == hole.chunks:
                pieces.append([])
            else:
                pieces[-1].append(chunk)
        self._head = xxhash.xxh3_128()
        self._head.update(b"".join(pieces[0]))
        self._after = [b"".join(p) for p in pieces[1:]]
        self._parts, self._met = parts, walk  # (what the parts walked: counted in each call)

    def __call__(self, *fills: Any) -> str:
        met = self._met
        if met.done is not None:  # (else the parts alone share too many: no tape to fill)
            h, walk = self._head.copy(), None
            for fill, after in zip(fills, self._after, strict=True):
                if walk is None and type(fill) not in ATOMS:
                    walk = Walk()
                    walk.done, walk.again = dict(met.done), met.again
                if not feed_top(h, fill, walk=walk):
                    break
                h.update(after)
            else:
                return h.hexdigest()
        return fingerprint(*_filled(self._parts, iter(fills)))  # (sharing many parts)


def _filled(part: Any, fills: Any) -> Any:
    """``part`` with each :data:`HOLE` in it (in tuples and lists) the next of ``fills``;
    what holds none is itself (what it shares stays shared: helper-89)."""
    if type(part) is str and part == HOLE:
        return next(fills)
    if type(part) in (tuple, list) and _holes(part, set()):
        return type(part)(_filled(p, fills) for p in part)
    return part


def _holes(part: Any, seen: set[int]) -> bool:
    """Whether ``part`` holds a :data:`HOLE` (in tuples and lists, each looked at once)."""
    if type(part) is str:
        return part == HOLE
    if type(part) not in (tuple, list) or id(part) in seen:
        return False
    seen.add(id(part))
    return any(_holes(p, seen) for p in part)
