"""What ipykernel's IO thread has run, so that a stream flush that would only wait for it
is left out (private surface; see :func:`lean_stream_flushes`).

ipykernel flushes ``sys.stdout``, then ``sys.stderr``, before each execute reply and
again before each idle status. A flush puts the stream's send and an ``Event.set`` on the
IO thread's queue and waits for the event: a round trip (~0.05 ms idle, 0.2-0.3 ms while a
widget cell's messages queue there). When the stream has nothing to send, the round trip
only proves that what was queued before it has run. If the last thing queued is an event
this thread waited for, and it is set, that is proven already: the flush would send
nothing and wait for nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

#: What ipykernel's ``IOPubThread.schedule`` reads (6.x-7.4): the three lines
#: :meth:`Queue.schedule` repeats, with a count.
_SCHEDULE_NAMES = ("thread", "is_alive", "_events", "append", "_event_pipe", "send")
#: What its ``OutStream.flush`` reads (7.x): the stream's send and an ``Event.set``
#: scheduled, then the wait for the event (or the send inline, with no IO thread).
_FLUSH_NAMES = ("pub_thread", "thread", "is_alive", "ident", "threading", "current_thread",
                "schedule", "_flush", "Event", "set", "wait", "flush_timeout", "print", "sys",
                "__stderr__")  # fmt: skip
_SET = threading.Event.set


class Queue:
    """Counts what is put on an ``IOPubThread``'s queue, and which ``Event.set`` was put
    there last: at which count, by which thread.

    :meth:`schedule` is ipykernel's, with the append and the count taken as one under a
    lock (held for no more: the IO thread schedules too, and the wake-up may block).
    """

    __slots__ = ("barrier", "count", "io", "lock")

    def __init__(self, io: Any) -> None:
        self.io, self.lock, self.count = io, threading.Lock(), 0
        self.barrier: tuple[int, threading.Event, int] | None = None

    def schedule(self, f: Callable[[], Any]) -> None:
        io = self.io
        if io.thread.is_alive():
            with self.lock:
                io._events.append(f)
                self.count += 1
                if getattr(f, "__func__", None) is _SET and type(f.__self__) is threading.Event:
                    self.barrier = (self.count, f.__self__, threading.get_ident())
            io._event_pipe.send(b"")  # wake the IO thread (message content is ignored)
        else:
            f()

    def settled(self) -> bool:
        """Whether all that was queued has run, as the last thing queued proves: an event
        this thread queued (a flush's wait), set since. The IO thread runs its queue in
        order, one thing at a time: the event was set after all before it had run."""
        thread = getattr(self.io, "thread", None)
        if thread is None or not thread.is_alive():  # (a forked child: the lock may be held)
            return False
        with self.lock:
            barrier, count = self.barrier, self.count
        return (barrier is not None and barrier[0] == count
                and barrier[2] == threading.get_ident() and barrier[1].is_set())  # fmt: skip


def lean_stream_flushes(streams: tuple[Any, ...], quiet: Callable[[Any], bool],
                        watched: Callable[[Any], bool]) -> Callable[[], None] | None:  # fmt: skip
    """Leave out a flush of one of ``streams`` (the kernel's stdout and stderr) when the
    stream is ``quiet`` (nothing to send, no flush of it under way) and the IO thread's
    queue is :meth:`Queue.settled`.

    The kernel's stdout is always flushed while its file descriptor is ``watched``: its
    round trip is when ipykernel's watcher thread hands over what a C library or a child
    wrote there. The flush of stderr that follows it, before a reply or an idle status,
    had that round trip too. Returns the undo, or None (another ipykernel: nothing
    changed).
    """
    try:
        io = streams[0].pub_thread
        if (any(s.pub_thread is not io or "flush" in vars(s) for s in streams)
                or type(io).schedule.__code__.co_names != _SCHEDULE_NAMES
                or any(type(s).flush.__code__.co_names != _FLUSH_NAMES for s in streams)
                or "schedule" in vars(io)):  # fmt: skip
            return None
    except Exception:
        return None
    queue = Queue(io)
    io.schedule = queue.schedule
    flushes = {}
    for i, s in enumerate(streams):
        flushes[s] = s.flush = _lean(s, queue, quiet, watched if i == 0 else None)

    def undo() -> None:
        for s, ours in flushes.items():
            if vars(s).get("flush") is ours:
                del s.flush
        if vars(io).get("schedule") == queue.schedule:  # (a bound method: equal, not same)
            del io.schedule

    return undo


def _lean(stream: Any, queue: Queue, quiet: Callable[[Any], bool],
          watched: Callable[[Any], bool] | None) -> Callable[[], None]:  # fmt: skip
    def flush() -> None:
        # The queue first, the stream last: text written meanwhile is seen (and flushed).
        if (watched is None or not watched(stream)) and queue.settled() and quiet(stream):
            return
        type(stream).flush(stream)  # (ipykernel's, as it is now)

    return flush
