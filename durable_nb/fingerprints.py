"""Fingerprints of step arguments: a stable 128-bit hash of a value, equal across processes.

A step's identity is the fingerprint of its cell, name and arguments (runtime.py); a
:class:`~durable_nb.shapes.Shape` computes many that differ in a few places fast.
"""

from __future__ import annotations

import functools
import io
import operator
import os
import pickle
import threading
import time
import types
from collections.abc import Callable
from typing import Any

import xxhash

from . import containers, instances
from ._report import report
from .errors import describe

#: Hashed by their repr.
SCALARS = (str, int, float, bool, type(None))


def fingerprint(*parts: Any) -> str:
    """A stable 128-bit hex digest of ``parts``, equal across processes.

    Containers and instances' attributes are hashed structurally (dicts and sets in
    a canonical order, so ``PYTHONHASHSEED`` does not matter); functions, classes and
    modules by name; other objects by their pickle, with out-of-band buffers (numpy,
    pandas) hashed in place and the sets in it (a namedtuple's frozenset) by their
    fingerprint; what cannot be pickled whole by a pickle naming the parts that cannot
    (a lock, a socket: by its type, since its identity does not survive a restart); what
    cannot be read at all gets an identity of its own, never replayed (said once).
    """
    h = xxhash.xxh3_128()
    if feed_top(h, parts):
        return h.hexdigest()
    h, end = xxhash.xxh3_128(), time.perf_counter() + MOST_SECONDS
    if feed_top(h, parts, once=True, end=end):
        return h.hexdigest()
    h = xxhash.xxh3_128()  # too deep or too long for the second way: one walk, if in time
    feed_top(h, parts, end=time.perf_counter() + MOST_SECONDS)
    return h.hexdigest()


#: Past this much walking of parts met before (each time a part's size: its items, its
#: pickle's bytes / 16), a value is fingerprinted again with each part hashed once
#: (:func:`_feed_once`): a graph whose nodes share their dependencies is walked once per
#: path, ~1.6**depth when each holds the two before it (40 such steps never ended). High:
#: such an identity follows the sharing (rows sharing one dict, and equal rows read back
#: from a journal, sharing none, are two calls).
AGAIN = 500_000
#: The second way, and when it fails (nested past the stack it needs, ~2 frames a level)
#: one walk as before, are given up after this long (s): an identity of its own (said).
MOST_SECONDS = 5.0
_NO_CYCLE = 1 << 62  # (a part's ``low`` when no cycle in it leads back)


class TooShared(BaseException):
    """Out of a walk past its limit (no ``except Exception`` on the way takes it)."""


def feed_top(h: xxhash.xxh3_128, obj: Any, once: bool = False, end: float | None = None,
             walk: Walk | None = None) -> bool:  # fmt: skip
    """:func:`feed` from the top; False when ``obj`` shares too many parts (past
    :data:`AGAIN`, counted in ``walk`` if given: a :class:`~durable_nb.shapes.Shape`'s
    fills) or, with ``once``, when that way fails or lasts past ``end``: ``h`` then holds a
    part of it. One walk with ``end`` (no limit) has an identity of its own past it; so
    has a value something raises out of (a ``__getattr__``, nesting past the recursion
    limit: :func:`_unidentified`): a step call never fails for its fingerprint."""
    try:
        if once:
            h.update(b"once;")
        if type(obj) in ATOMS and not once:  # (shares nothing: a Shape's fills, ~0.2 µs)
            feed(h, obj, {})
        else:  # (cycles say how many levels up: one more key changes none)
            feed(h, obj, {None: walk or Walk(once, end)})
    except TooShared:
        if end is None or once:
            return False
        _unidentified(h, "", TimeoutError(f"its shared parts took over {MOST_SECONDS:g} s"))
    except KeyboardInterrupt:  # Ctrl-C: the call stops
        raise
    except BaseException as exc:  # (a reduce raising SystemExit, CancelledError: helper-82)
        if once:
            return False
        _unidentified(h, "", exc)
    return True


class Walk:
    """A fingerprint under way (``seen[None]``): the parts walked whole (id -> (part, its
    size), kept: no id is reused meanwhile) and how much walking met one again; in the
    second pass, each part's hash (``memo``), the highest level a cycle in the part under
    way leads to (``low``: a part's hash is kept only when none leads to it or above) and
    the part :func:`_feed_once` hashes apart, fed now (``entering``)."""

    __slots__ = ("again", "done", "end", "entering", "limit", "low", "memo")

    def __init__(self, once: bool = False, end: float | None = None) -> None:
        self.done: dict[int, tuple[Any, int]] | None = None if once else {}
        self.memo: dict[int, tuple[Any, bytes]] | None = {} if once else None
        self.again = self.low = 0
        self.limit = AGAIN if end is None else float("inf")  # (with an end: in time only)
        self.end = end
        self.entering: Any = None


def feed(h: xxhash.xxh3_128, obj: Any, seen: dict[int, int]) -> None:
    """Add ``obj`` to the hash ``h`` as :func:`fingerprint` does (``seen``: for cycles, the
    ancestors on the way, each with its depth; at None, :func:`feed_top`'s :class:`Walk`)."""
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
    w = seen.get(None)  # (:func:`feed_top`'s)
    if w is None:
        done = None
    elif w.memo is None:
        done = w.done  # (the parts walked whole, counted when met again: :func:`_again`)
    elif w.entering is not obj:  # the second pass
        _feed_once(h, obj, seen, w)
        return
    else:
        w.entering = done = None
    if t in (list, tuple, dict, set, frozenset):
        if id(obj) in seen:  # a cycle, and how many levels up it leads
            _cycle(h, seen, id(obj))
            return
        if done is not None and id(obj) in done:
            _again(seen, done[id(obj)][1])
        seen[id(obj)] = len(seen)
        try:  # (always taken back: an id left behind, reused, would be a false cycle)
            h.update(b"%s:%d[" % (t.__name__.encode(), len(obj)))
            if t is dict:
                _feed_pairs(h, obj.items(), seen)
            elif t in (set, frozenset):
                _feed_members(h, obj, seen)
            else:
                for v in obj:
                    feed(h, v, seen)
            h.update(b"]")
        finally:
            seen.pop(id(obj), None)
        if done is not None:
            done[id(obj)] = (obj, 1 + len(obj))
        return
    if t is instances.Unordered:  # a subclass's pairs or members, hashed as a dict's or a set's
        h.update(b"%s:%d[" % (obj.kind, len(obj.items)))
        if obj.kind == b"dict":
            _feed_pairs(h, obj.items, seen)
        else:
            _feed_members(h, obj.items, seen)
        h.update(b"]")
        return
    h.update(b"obj:%s.%s;" % (t.__module__.encode(), t.__qualname__.encode()))
    state = instances.dict_of(obj)
    if issubclass(t, instances.VALUES) and (state or containers.reducer(t) is not None
                                   or instances.unordered(t)):  # fmt: skip
        # A subclass of a built-in value with attributes, iterating its own way, or of an
        # unordered base: what its base holds, read through its base (its attributes alone
        # had left it out: two batches of one name were one call), and its attributes.
        if id(obj) in seen:
            _cycle(h, seen, id(obj))
            return
        if done is not None and id(obj) in done:
            _again(seen, done[id(obj)][1])
        seen[id(obj)] = len(seen)
        try:
            feed(h, base := instances.base_value(obj, t), seen)
            feed(h, object.__getstate__(obj), seen)
        finally:
            seen.pop(id(obj), None)
        if done is not None:  # (its size: what its base holds)
            held = base.items if type(base) is instances.Unordered else base
            done[id(obj)] = (obj, 1 + (len(held) if type(held) in (list, tuple) else 0))
        return
    fed, attributes = None, type(state) is dict and bool(state)
    if attributes and id(obj) in seen:  # (pickled below: a cycle all the same)
        _low(seen, id(obj))
    elif attributes and not instances.mutable_buffer(obj):
        seen[id(obj)] = len(seen)  # an instance: its attributes, so sets inside hash canonically
        try:
            feed(h, state, seen)
        finally:
            seen.pop(id(obj), None)
        if instances.dict_only(t):
            return
        # It holds more (slots, a C base's state): its pickle too, below. Its attributes
        # first all the same: a datetime's or an array's pickle leaves them out (helper-84);
        # its pickle names them (in insertion order, and sharing the pickle's memo, they
        # had followed the hash seed, or what a replayed string shares: helper-84).
        fed = state
    # Pickled below (an instance on a cycle too, its pickle telling which one it is): one a
    # set in its pickle leads back to is a cycle, said with how many levels up it is (a
    # graph's node pointing back to the first node or to itself are two values).
    key = ~id(obj)  # (apart from the ids of the walk's containers and instances)
    if key in seen:
        _cycle(h, seen, key)
        return
    if done is not None and id(obj) in done:
        _again(seen, done[id(obj)][1])
    seen[key] = len(seen)
    try:  # (a container at any depth: what it holds, never by its own iteration)
        if fed is not None:  # (a pickler asked about each object: only such instances)
            buffers, stream, _ = _pickled(obj, seen, _SetPickler, fed)
        elif _small_with_sets(obj):  # (the bytes the two passes below give, in one)
            buffers, stream, _ = _pickled(obj, seen, _SetPickler)
        else:
            buffers, stream, pickler = _pickled(obj, seen, _Pickler)
            if _holds_set(stream, pickler):
                # A set whose fingerprint is too deep to walk keeps its hash order: a step
                # run again after a restart, never another value's identity (a type's).
                try:
                    buffers, stream, _ = _pickled(obj, seen, _SetPickler)
                except Exception as exc:
                    _deeper(seen, exc)
        for buffer in buffers:
            h.update(buffer.raw())
        h.update(stream)
    except Exception as first:  # unpicklable as a whole: pickled with its parts named
        _deeper(seen, first)
        try:
            buffers, stream, _ = _pickled(obj, seen, _Tolerant, fed)
        except Exception as exc:  # (a lying __class__, a reduce naming no global, too deep)
            _deeper(seen, exc)
            _unidentified(h, f" of type {t.__module__}.{t.__qualname__}", exc)
            return
        for buffer in buffers:
            h.update(buffer.raw())
        h.update(stream)
    finally:
        seen.pop(key, None)
    if done is not None:
        done[id(obj)] = (obj, 1 + len(stream) // 16)


def _feed_once(h: xxhash.xxh3_128, obj: Any, seen: dict[int, int], w: Walk) -> None:
    """:func:`feed` of a value sharing many parts: each part is hashed apart and its hash
    fed, once per part (kept, with the part: no id reused meanwhile) unless a cycle in it
    leads above it (its hash then depends on the way down)."""
    got = w.memo.get(id(obj))
    if got is not None and got[0] is obj:
        h.update(got[1])
        return
    if w.end is not None and time.perf_counter() > w.end:  # (nodes pointing back up)
        raise TooShared
    part, level = xxhash.xxh3_128(), len(seen)
    low, w.low, w.entering = w.low, _NO_CYCLE, obj
    try:
        feed(part, obj, seen)
    finally:
        inner, w.low = w.low, min(low, w.low)
    said = b"part:%s;" % part.hexdigest().encode()
    if inner > level:  # (one on a cycle says where it is entered: A <-> B, helper-87)
        w.memo[id(obj)] = (obj, said)
    h.update(said)


def _again(seen: dict[int, int], size: int) -> None:
    """Count a walk of a part met before whole (its ``size``); past the walk's limit,
    :class:`TooShared`."""
    w = seen[None]
    w.again += size
    if w.again > w.limit or (w.end is not None and time.perf_counter() > w.end):
        raise TooShared


def _deeper(seen: dict[int, int], exc: Exception) -> None:
    """In the second way, nesting past the stack fails the whole way (one walk then, as
    before: helper-88, a set's walk in a pickle kept its hash order, or no identity)."""
    w = seen.get(None)
    if w is not None and w.memo is not None and isinstance(exc, RecursionError):
        raise exc


def _cycle(h: xxhash.xxh3_128, seen: dict[int, int], key: int) -> None:
    """A part leading back to one on the way down: how many levels up (helper-80 #4: a bare
    mark made ``[[X]]`` with X = its outer list one call with the list holding itself)."""
    h.update(b"cycle:%d;" % (len(seen) - seen[key]))
    _low(seen, key)


def _low(seen: dict[int, int], key: int) -> None:
    """The part under way leads back to ``key``'s level (:class:`Walk`'s ``low``)."""
    w = seen.get(None)
    if w is not None:
        w.low = min(w.low, seen[key])


def _small_with_sets(obj: Any) -> bool:
    """Whether ``obj`` is a small tuple (a namedtuple: a ``dnb.map`` item) of atoms and sets
    of atoms, one of them a set: pickled at once by :class:`_SetPickler`, whose bytes the
    first pickle, the memo's check and the second give too (8 → 4 µs an item)."""
    if not isinstance(obj, tuple) or len(obj) > 16:
        return False
    found = False
    for v in obj:
        t = type(v)
        if t is set or t is frozenset:
            if len(v) > 64 or not set(map(type, v)) <= ATOMS:
                return False
            found = True
        elif t not in ATOMS:
            return False
    return found


#: Exact types pickled as themselves, holding nothing (what a small tuple may hold).
ATOMS = frozenset((*SCALARS, bytes))


def _unidentified(h: xxhash.xxh3_128, what: str, exc: BaseException) -> None:
    """A value that cannot be told apart from others (``what``: `` of type ...``): its
    call gets an identity of its own (random bytes in ``h``), so it is never replayed; said
    once per ``what`` (a type's identity alone had replayed one call's result for another:
    helper-81)."""
    h.update(b"unidentified:" + os.urandom(16))  # (C calls: at the stack's end too)
    try:
        _say(what, exc)
    except RecursionError:  # (said once there is stack to say it)
        pass


def _say(what: str, exc: BaseException) -> None:
    report(f"a step argument{what} cannot be fingerprinted ({describe(exc)}): such a call "
           "is never replayed, and runs again after a restart; give the step key= (a "
           "string naming the call) to journal it",
           once=f"unidentified:{what}:{type(exc).__name__}")  # fmt: skip


def _pickled(obj: Any, seen: dict[int, int], kind: type[_Pickler],
             fed: dict | None = None) -> tuple[list, bytes, Any]:  # fmt: skip
    """``obj``'s pickle by a pickler of ``kind``: its out-of-band buffers, its stream and
    the pickler (its memo: what it pickled but numbers, ``None`` and booleans); ``fed``:
    the instance's ``__dict__`` fed already, a token in the pickle."""
    out, buffers = io.BytesIO(), []
    pickler = kind(out, protocol=5, buffer_callback=buffers.append)
    pickler.seen, pickler.tokens, pickler.fed = seen, {}, fed
    walks = _WALKS.seen
    walks.append(seen)
    try:
        pickler.dump(obj)
    finally:
        walks.pop()
    return buffers, out.getvalue(), pickler


#: An exact set's or frozenset's opcode, each followed by the memo's in its pickle
#: (protocol 4 on: the pickler memoizes each).
_SET, _FROZENSET = pickle.EMPTY_SET, pickle.FROZENSET


def _holds_set(stream: bytes, pickler: pickle.Pickler) -> bool:
    """Whether a pickle holds an exact set or frozenset. Its opcodes' bytes are looked for
    first (one byte: ``memchr``, where two bytes cost 60% of the pickle's time), then with
    the memo's after them; data holds them too (the int 38031, text), so a hit is
    confirmed in the memo, which lists every set pickled (0.06-0.7 µs an entry:
    a namedtuple of 100k namedtuples of numbers costs 3× its pickle)."""
    if not (_SET in stream or _FROZENSET in stream):
        return False
    if not (_SET + pickle.MEMOIZE in stream or _FROZENSET + pickle.MEMOIZE in stream):
        return False
    return not _SETS.isdisjoint(map(type, map(_OBJECT, pickler.memo.copy().values())))


_SETS, _OBJECT = frozenset((set, frozenset)), operator.itemgetter(1)


class _Table(containers.ResultTable):
    """The fallback pickler's table: an instance of an unordered base (a Counter, a dict's
    or set's subclass: never an exact one, which the pickler handles itself) is pickled as
    its fingerprint. A table, not ``reducer_override``: that is asked about every object
    not of a built-in type (+30% on a list of namedtuples)."""

    def __missing__(self, t: type) -> Any:
        found = super().__missing__(t)
        if issubclass(t, instances.UNORDERED):  # (its bases may change: asked at each object)
            self[t] = found = functools.partial(_unordered_or, found)
        return found


def _unordered_or(other: Callable[[Any], Any], obj: Any) -> Any:
    """``obj``'s reduce in :class:`_Table`: its fingerprint if it is unordered, else
    ``other``'s."""
    if instances.unordered(type(obj)):
        return str, (_canonical(obj, _WALKS.seen[-1]),)
    return other(obj)


class _Walks(threading.local):
    """Per thread, the ``seen`` of each pickling under way, innermost last (:func:`_pickled`)."""

    def __init__(self) -> None:
        self.seen: list[dict[int, int]] = []


_WALKS = _Walks()


class _Pickler(pickle.Pickler):
    """The fallback's pickler: one table for the process (made per call, it cost a
    fingerprint twice pickle's time: review64 L2).

    What the hash seed orders is pickled as its fingerprint, in canonical order: an
    instance of an unordered base by its table, an exact set by :class:`_SetPickler`. Until
    2026-12-04 both were pickled in hash order, so a namedtuple or a
    ``dataclass(slots=True)`` holding a frozenset of names had another identity in each
    kernel, and its step ran again after a restart.
    """

    dispatch_table = _Table()
    seen: dict[int, int]
    tokens: dict[int, tuple[str, Any]]  # a set's id -> its token, and the set (kept alive)
    fed: dict | None  # the instance's __dict__ fed already (:func:`feed`)


class _SetPickler(_Pickler):
    """:class:`_Pickler` that pickles an exact set as its fingerprint too: the C pickler
    asks ``persistent_id``, unlike a table or ``reducer_override``, before its own
    handling of exact sets; but about every object, at ~18× the pickle's time, so only
    for a pickle that holds a set's opcode, a small tuple holding sets, or an instance
    whose ``__dict__`` was fed already (that ``__dict__``, or a copy of it, is a token)."""

    def persistent_id(self, obj: Any) -> str | None:
        if type(obj) is dict and _copy_of(obj, self.fed):
            return "durable_nb.attributes"
        t = type(obj)
        if t is not set and t is not frozenset:
            return None
        made = self.tokens.get(id(obj))  # (asked before the memo: a shared set, once)
        if made is None:
            made = self.tokens[id(obj)] = (_canonical(obj, self.seen), obj)
        return made[0]


class _Tolerant(_SetPickler):
    """:class:`_SetPickler` for a value that cannot be pickled whole (a namedtuple or a
    ``dataclass(slots=True)`` of a host and a client): in one pass, each part that cannot
    be pickled is pickled as a token naming it, a function or class by its name (a lambda,
    a local class), any other object by its type (a lock, a socket, a client). Until
    2026-12-04 such a value was told by its type alone: one call for every host, an
    earlier call's result replayed for another when the calls came in another order."""

    def reducer_override(self, obj: Any) -> Any:
        t = type(obj)
        if isinstance(obj, (types.FunctionType, type)):
            if instances.by_reference(obj):
                return NotImplemented
            return str, (f"durable_nb.named:{instances.name_of(obj)}",)
        if isinstance(obj, types.ModuleType):  # (as :func:`feed` names it)
            return str, (f"durable_nb.module:{getattr(obj, '__name__', '?')}",)
        if isinstance(obj, instances.UNORDERED) and instances.unordered(t):  # (raising: none)
            return str, (_canonical(obj, self.seen),)
        shows = instances.VIEWS.get(f"{t.__module__}.{t.__qualname__}")
        if shows is not None:  # what pickle refuses, told by what it shows (canonically)
            return str, (f"durable_nb.view:{instances.name_of(t)}:{_part(shows(obj), self.seen)}",)
        try:  # the reduce the pickler would call (:class:`_Table`)
            return self.dispatch_table[t](obj)
        except (RecursionError, MemoryError):  # (not the value's own refusal: no identity)
            raise
        except Exception:  # its attributes, if it has them (a client refusing its pickle)
            return str, (f"durable_nb.type:{instances.name_of(t)}",), instances.attributes(obj)


def _copy_of(found: dict, fed: dict | None) -> bool:
    """Whether ``found`` holds what ``fed`` holds, the very values under the same keys: a
    copy of the instance's ``__dict__`` its reduce hands out (``dict(self.__dict__)``),
    else pickled in insertion order (helper-85)."""
    if found is fed:
        return True
    if fed is None or len(found) != len(fed):
        return False
    return all(fed.get(k, _NOTHING) is v for k, v in found.items())


_NOTHING = object()


def _canonical(obj: Any, seen: dict[int, int]) -> str:
    """What a pickle holds in place of a set or an instance of an unordered base: an exact
    set of strings, of ints or of bytes sorted by value (a namedtuple's frozenset of roles:
    ~1 µs, where its members' fingerprints cost ~8 and halved a ``dnb.map``'s replay
    rate), any other by its fingerprint. Used inside pickles only, so no identity of a set
    elsewhere changes with it."""
    t = type(obj)
    if t is set or t is frozenset:
        kinds = set(map(type, obj))
        if len(kinds) == 1 and kinds <= _SORTABLE:
            kind = kinds.pop()
            values = sorted(obj)
            if kind is int:  # hex: repr refuses ints over 4,300 digits (helper-86)
                values = [format(v, "x") for v in values]
            return f"durable_nb.{t.__name__}:{kind.__name__}:{values!r}"
    return "durable_nb.unordered:" + _part(obj, seen)


#: Exact types whose values sort the same in every process (no NaN, no mixed kinds).
_SORTABLE = frozenset((str, int, bytes))


def _feed_pairs(h: xxhash.xxh3_128, pairs: Any, seen: dict[int, int]) -> None:
    """A dict's pairs, in the order of their keys' fingerprints (no key is hashed)."""
    for kfp, v in sorted(((_part(k, seen), v) for k, v in pairs), key=lambda kv: kv[0]):
        h.update(kfp.encode())
        feed(h, v, seen)


def _feed_members(h: xxhash.xxh3_128, members: Any, seen: dict[int, int]) -> None:
    """A set's members, in the order of their fingerprints (none is hashed)."""
    for efp in sorted(_part(e, seen) for e in members):
        h.update(efp.encode())


def _part(obj: Any, seen: dict[int, int]) -> str:
    """``fingerprint(obj)`` inside a walk: what leads back to a container on the way (a
    graph's node keyed by itself, holding the graph) is a cycle, not a walk without end
    (helper-78 #3: RecursionError)."""
    h = xxhash.xxh3_128()
    # ``feed(h, (obj,), seen)``, the tuple (a temporary) neither kept nor counted
    h.update(b"tuple:1[")
    mark = ("part", len(seen))  # its place on the way down (cycles say levels up)
    seen[mark] = len(seen)
    try:
        feed(h, obj, seen)
    finally:
        seen.pop(mark, None)
    h.update(b"]")
    return h.hexdigest()
