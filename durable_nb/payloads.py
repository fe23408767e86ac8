"""Loading a restore's payloads: their rows in one query, their blob chunks read ahead.

A thread reads the chunks of the payloads held in blob files, in the order they will
be loaded (the smallest first), each checked against its name as it is read; the
restore's thread meanwhile unpickles, and imports what the payloads need. A payload's
buffers are handed to the unpickler as it reaches them, so that the imports its stream
starts with (numpy, pandas) overlap the reading of its own buffers too. The cyclic
garbage collector is paused meanwhile (:func:`marshaled.gc_paused`, in snapshot.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from . import codec
from .store import PayloadRow


class Loader:
    """Loads payloads (once each: the members of a group share one), fetched in one query.

    Their blob chunks are read by a thread, in the order they are loaded, while this one
    unpickles (and imports what the payloads need): a payload's buffers are handed to
    the unpickler as it reaches them, so its imports overlap the reads too.
    """

    def __init__(self, journal: Any, value_ids: list[str]) -> None:
        self.journal = journal
        self.loaded: dict[str, Any] = {}
        self.refs: dict[str, frozenset[str]] = {}  # value id -> notebook globals it names
        self._payloads = journal.payloads(value_ids)
        for p in self._payloads.values():  # refuse at once, in one line (the rows: what
            journal.check(p, "a snapshot", quick=True)  # in blob files: as it loads)
        self._reads: dict[str, list[Future]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def order(self, names: list[str], value_of: Callable[[str], str | None]) -> list[str]:
        """``names`` in the order to load them: those read from blob files last, smallest
        first, and start reading their chunks (in that order) in a thread."""
        size = {v: _blob_bytes(p) for v, p in self._payloads.items()}
        ordered = sorted(names, key=lambda n: (size.get(value_of(n), 0), n))  # type: ignore[arg-type]
        if any(size.values()):
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="durable_nb-restore")
            for name in ordered:
                v = value_of(name)
                if v in size and size[v] and v not in self._reads:
                    reads = self._submit(self._payloads[v])
                    if reads is not None:
                        self._reads[v] = reads
        return ordered

    def _submit(self, p: PayloadRow) -> list[Future] | None:
        """Futures of ``p``'s stream (its first, None when in the row) and buffers; None
        when its columns are malformed (loading it raises, as without reading ahead)."""
        blobs, pool = self.journal.blobs, self._pool
        assert pool is not None
        try:
            parts = [(size, chunks) for size, chunks in json.loads(p.buffers)]
        except Exception:
            return None
        stream = pool.submit(_read, blobs, p.stream_chunks) if p.stream is None else None
        return [stream, *(pool.submit(blobs.get_chunks, chunks, size) for size, chunks in parts)]

    def close(self) -> None:
        """Stop reading ahead (what was not loaded is dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._reads.clear()

    def load(self, value_id: str, resolve: Callable[[str], Any], share: bool) -> Any:
        """The payload's value; ``share``: the one value the members of a group hold
        (a variable saved alone gets its own: equal content is not identity)."""
        if share and value_id in self.loaded:
            return self.loaded[value_id]
        refs: set[str] = set()

        def named(name: str) -> Any:
            refs.add(name)
            return resolve(name)

        p = self._payloads[value_id]
        reads = self._reads.pop(value_id, None) or self._submit_now(p)
        stream = p.stream if reads[0] is None else bytes(reads[0].result())
        if p.stream is None:
            self.journal.check(p, "a snapshot", stream)  # before unpickling
        value = codec.decode(p.codec, stream, (f.result() for f in reads[1:]), named)
        self.refs[value_id] = frozenset(refs)
        if share:
            self.loaded[value_id] = value
        return value

    def _submit_now(self, p: PayloadRow) -> list[Future]:
        """``p``'s reads when none were started ahead (read here, as they are needed)."""
        blobs = self.journal.blobs
        stream = _Done(lambda: _read(blobs, p.stream_chunks)) if p.stream is None else None
        return [stream, *(_Done(lambda s=s, c=c: blobs.get_chunks(c, s))
                          for s, c in json.loads(p.buffers))]  # fmt: skip


class _Done:
    """A read done when its result is asked for (the interface of a Future we use)."""

    def __init__(self, read: Callable[[], Any]) -> None:
        self.read = read

    def result(self) -> Any:
        return self.read()


def _read(blobs: Any, stream_chunks: str) -> memoryview:
    size, chunks = json.loads(stream_chunks)
    return blobs.get_chunks(chunks, size)


def _blob_bytes(p: PayloadRow) -> int:
    """How many bytes of ``p`` are in blob files (0: all in its row)."""
    try:
        size = json.loads(p.stream_chunks)[0] if p.stream is None else 0
        return int(size) + sum(int(n) for n, _ in json.loads(p.buffers))
    except Exception:  # malformed: loading it says so
        return 0
