"""Serialization of step results and fingerprints of step arguments.

JSON for plain data, pickle protocol 5 next, dill (``recurse=True``) last.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import xxhash

#: Codec names stored in the journal's ``kind`` column.
JSON, PICKLE, DILL = "json", "pickle", "dill"

_SCALARS = (str, int, float, bool, type(None))


def dumps(value: Any) -> tuple[str, bytes]:
    """Serialize ``value``; return ``(kind, payload)``.

    Raises whatever the last serializer raised when none can handle the value.
    """
    if _json_exact(value, 0):
        return JSON, json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    try:
        return PICKLE, pickle.dumps(value, protocol=5)
    except Exception:
        import dill  # imported on first need: dill is slow to import

        return DILL, dill.dumps(value, protocol=5, recurse=True)


def loads(kind: str, payload: bytes) -> Any:
    """Inverse of :func:`dumps`; each call builds a fresh object."""
    if kind == JSON:
        return json.loads(payload)
    if kind == PICKLE:
        return pickle.loads(payload)
    if kind == DILL:
        import dill

        return dill.loads(payload)
    raise ValueError(f"unknown codec {kind!r}")


def _json_exact(value: Any, depth: int) -> bool:
    """True when JSON round-trips ``value`` to an equal object of the same types."""
    if depth > 64:
        return False
    t = type(value)
    if t is float:
        return math.isfinite(value)
    if t in _SCALARS:
        return True
    if t is list:
        return all(_json_exact(v, depth + 1) for v in value)
    if t is dict:
        return all(type(k) is str and _json_exact(v, depth + 1) for k, v in value.items())
    return False


def fingerprint(*parts: Any) -> str:
    """A stable 128-bit hex digest of ``parts``, equal across processes.

    Containers are hashed structurally (dicts and sets in a canonical order, so
    ``PYTHONHASHSEED`` does not matter); other objects by their pickle, with
    out-of-band buffers (numpy, pandas) hashed in place; objects that cannot
    be pickled by their type, since their identity does not survive a restart.
    """
    h = xxhash.xxh3_128()
    _feed(h, parts, set())
    return h.hexdigest()


def _feed(h: xxhash.xxh3_128, obj: Any, seen: set[int]) -> None:
    t = type(obj)
    if t in _SCALARS or t is bytes or t is complex:
        h.update(b"%s:%d:%s;" % (t.__name__.encode(), len(r := repr(obj)), r.encode()))
        return
    if t in (list, tuple, dict, set, frozenset):
        if id(obj) in seen:  # a cycle: the structure above already identifies it
            h.update(b"cycle;")
            return
        seen.add(id(obj))
        h.update(b"%s:%d[" % (t.__name__.encode(), len(obj)))
        if t is dict:
            items = sorted(((fingerprint(k), v) for k, v in obj.items()), key=lambda kv: kv[0])
            for kfp, v in items:
                h.update(kfp.encode())
                _feed(h, v, seen)
        elif t in (set, frozenset):
            for efp in sorted(fingerprint(e) for e in obj):
                h.update(efp.encode())
        else:
            for v in obj:
                _feed(h, v, seen)
        h.update(b"]")
        seen.discard(id(obj))
        return
    h.update(b"obj:%s.%s;" % (t.__module__.encode(), t.__qualname__.encode()))
    try:
        h.update(pickle.dumps(obj, protocol=5, buffer_callback=lambda b: h.update(b.raw())))
    except Exception:
        pass  # unpicklable (a client, a socket): its type alone identifies the argument


# -- namespace values: pickle 5 with out-of-band buffers, references between variables --


class Unserializable(Exception):
    """A value neither pickle nor dill can save safely; the reason is the message."""


class _ByValue(Exception):
    """A notebook-defined function or class: pickle would save a dangling reference."""


def _guard(obj: Any) -> None:
    # dill "saves" open files by reopening them with their mode on load, and mode
    # 'w' truncates the file: never let a file handle into a snapshot.
    if isinstance(obj, io.IOBase):
        raise Unserializable(f"{type(obj).__name__} is an open file")


class _RefPickler(pickle.Pickler):
    """pickle.Pickler that writes other variables as references to them."""

    def __init__(self, file: Any, refs: dict[int, tuple[str, str]], own: int, **kw: Any) -> None:
        super().__init__(file, protocol=5, **kw)
        self._refs, self._own, self.used = refs, own, set()

    def persistent_id(self, obj: Any) -> Any:
        ref = self._refs.get(id(obj))
        if ref is None or id(obj) == self._own:
            return None
        self.used.add(ref)
        return ref

    def reducer_override(self, obj: Any) -> Any:
        _guard(obj)
        if isinstance(obj, (types.FunctionType, type)) and obj.__module__ == "__main__":
            raise _ByValue
        return NotImplemented


def _dill_pickler() -> type:
    import dill

    class _RefDillPickler(dill.Pickler):
        def __init__(self, file: Any, refs: dict, own: int, **kw: Any) -> None:
            super().__init__(file, protocol=5, recurse=True, **kw)
            self._refs, self._own, self.used = refs, own, set()

        persistent_id = _RefPickler.persistent_id

        def reducer_override(self, obj: Any) -> Any:
            _guard(obj)
            return NotImplemented

    return _RefDillPickler


@dataclass
class Encoded:
    """A value ready to store: a pickle stream, its raw buffers and its references."""

    codec: str
    stream: bytes
    buffers: list[memoryview]
    refs: set[tuple[str, str]]


def encode(obj: Any, refs: dict[int, tuple[str, str]], own: int) -> Encoded:
    """Serialize ``obj`` without copying its large buffers.

    Objects whose ``id`` is in ``refs`` (other variables) are written as
    references ``(name, token)``, except ``own``, the object being saved.
    Raises :class:`Unserializable` with the reason when nothing can save it.
    """
    buffers: list[memoryview] = []

    def keep(buf: pickle.PickleBuffer) -> None:
        buffers.append(buf.raw())

    for codec_name, factory in ((PICKLE, lambda: _RefPickler), (DILL, _dill_pickler)):
        out = io.BytesIO()
        buffers.clear()
        try:
            pickler = factory()(out, refs, own, buffer_callback=keep)
            pickler.dump(obj)
            return Encoded(codec_name, out.getvalue(), list(buffers), pickler.used)
        except Unserializable:
            raise
        except _ByValue:
            continue
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
    raise Unserializable(reason)


def decode(codec: str, stream: bytes, buffers: list[Any], resolve: Callable[[Any], Any]) -> Any:
    """Inverse of :func:`encode`; ``resolve((name, token))`` returns referenced variables."""
    if codec == DILL:
        import dill

        base: type = dill.Unpickler
    else:
        base = pickle.Unpickler

    class _RefUnpickler(base):  # type: ignore[misc, valid-type]
        def persistent_load(self, pid: Any) -> Any:
            return resolve(tuple(pid))

    return _RefUnpickler(io.BytesIO(stream), buffers=buffers).load()
