"""Serialization of step results and fingerprints of step arguments.

JSON for plain data, pickle protocol 5 next, dill (``recurse=True``) last.
"""

from __future__ import annotations

import json
import math
import pickle
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
