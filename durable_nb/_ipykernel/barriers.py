"""What ipykernel's IO thread has run, so that a stream flush that would only wait for it
is left out (private surface; see :func:`lean_stream_flushes`).

ipykernel flushes ``sys.stdout``, then ``sys.stderr``, before each execute reply and
again before each idle status. A flush puts the stream's send and an ``Event.set`` on the
IO thread's queue and waits for the event: a round trip (~0.05 ms idle, 0.2-0.3 ms while a
widget cell's messages queue there). When the stream has nothing to send, the round trip
only proves that what was queued before it has run. If the last thing queued is an event
this thread waited for, and it is set, that is proven already: the flush would send
nothing and wait for nothing. So the stderr flush that follows stdout's is left out when
stderr has nothing to send and stdout's sent nothing new.
"""

from __future__ import annotations

import sys
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
_EVENT = threading.Event
_SET = _EVENT.set


#: How long a schedule waits for another thread's count (s) before counting stops for
#: good: a thread a debugger suspended inside it holds it (helper-107 F2).
WAIT = 0.05


class Queue:
    """Counts what is put on an ``IOPubThread``'s queue, and which ``Event.set`` was put
    there last: at which count, by which thread.

    :meth:`schedule` is ipykernel's, with the count taken and the function appended as
    one, under a lock held for no more (the IO thread schedules too, and the wake-up may
    block). The lock is re-entrant: a signal handler that prints, run between two of its
    steps, schedules on the same thread (helper-107 F1); such a nested schedule is
    counted, and its event is not taken for the last queued (the outer's function is
    appended after it). A schedule that waits past :data:`WAIT` (the holder suspended by
    a debugger) stops the counting for good: from then on the queue is never settled,
    and schedules are ipykernel's own.
    """

    __slots__ = ("barrier", "count", "io", "lock", "mine", "stopped")

    def __init__(self, io: Any) -> None:
        self.io, self.lock, self.count, self.stopped = io, threading.RLock(), 0, False
        self.mine = threading.local()  # ``depth``: this thread's sections under way
        self.barrier: tuple[int, threading.Event, int] | None = None

    def schedule(self, f: Callable[[], Any]) -> None:
        io = self.io
        if not io.thread.is_alive():
            f()
            return
        if not self.stopped:
            mine, held = self.mine, False
            depth = mine.depth = getattr(mine, "depth", 0) + 1  # (before the lock: see _take)
            try:
                held = self._take(depth)
                if held:
                    self.count += 1
                    # (not one nested in another, a signal handler's: the outer's after it)
                    if (
                        depth == 1
                        and getattr(f, "__func__", None) is _SET
                        and type(f.__self__) is _EVENT
                    ):
                        self.barrier = (self.count, f.__self__, threading.get_ident())
                    io._events.append(f)
            finally:
                try:  # (given back first: see _take)
                    if held:
                        self.lock.release()
                finally:
                    mine.depth = depth - 1
            if held:
                io._event_pipe.send(b"")  # wake the IO thread (message content is ignored)
                return
        io._events.append(f)
        io._event_pipe.send(b"")

    def settled(self) -> bool:
        """Whether all that was queued has run, as the last thing queued proves: an event
        this thread queued (a flush's wait), set since. The IO thread runs its queue in
        order, one thing at a time: the event was set after all before it had run.

        No lock: the counts are taken one at a time under the lock, each before its
        append, so a count read equal to the event's own means nothing was appended after
        it, nor is being appended (the event read first, the count after)."""
        thread = getattr(self.io, "thread", None)
        if self.stopped or thread is None or not thread.is_alive():  # (a forked child too)
            return False
        barrier = self.barrier
        return (
            barrier is not None
            and barrier[0] == self.count
            and barrier[2] == threading.get_ident()
            and barrier[1].is_set()
            and not self.stopped  # (stopped since: what came after is not counted)
        )

    def _take(self, depth: int) -> bool:
        """Take the lock (within :data:`WAIT`; else stop counting). ``depth``: this
        thread's sections under way, this one included, counted before the lock is taken.
        A Ctrl-C landing just after an acquire, before its ``try``, leaves the lock held by
        this thread (helper-108 G2: 2 in 400 interrupts of a printing loop); when this is
        the thread's only section, whatever it holds is such a leftover, given back here
        (else other threads' schedules would wait and stop the counting). A section gives
        the lock back before it counts itself done, and counts itself done even when a
        Ctrl-C lands between the two: a signal handler's print run in between is nested,
        and gives back nothing of it."""
        if depth == 1:
            try:  # (not contextlib.suppress: this runs for every message sent)
                while self.lock._is_owned():  # (RLock's own, as Condition uses it)
                    self.lock.release()
            except Exception:
                pass
        if self.lock.acquire(timeout=WAIT):
            return True
        self.stopped = True
        return False


def lean_stream_flushes(streams: tuple[Any, Any],
                        quiet: Callable[[Any], bool]) -> Callable[[], None] | None:  # fmt: skip
    """Leave out a flush of the kernel's stderr (``streams[1]``) when it is ``quiet``
    (nothing to send, no flush of it under way) and the IO thread's queue is
    :meth:`Queue.settled`: right after the flush of stdout (``streams[0]``) before a
    reply or an idle status, when that sent nothing new.

    stdout's own flushes all stay: while file descriptors are watched its round trip is
    when ipykernel's watcher thread hands over what a C library or a child wrote (the
    flush of stderr that follows had that round trip too); and before idle it is what
    lets the reply, which the main thread sends, reach the client first (without it,
    idle came first 39 times in 60 with descriptors unwatched, helper-107 F3). Returns
    the undo, or None (another ipykernel: nothing changed).
    """
    out, err = streams
    try:
        io = out.pub_thread
        if (err.pub_thread is not io or "flush" in vars(err)
                or type(io).schedule.__code__.co_names != _SCHEDULE_NAMES
                or type(err).flush.__code__.co_names != _FLUSH_NAMES
                or "schedule" in vars(io)):  # fmt: skip
            return None
    except Exception:
        return None
    queue = Queue(io)
    io.schedule = queue.schedule

    def flush() -> None:
        # Only after a round trip of the kernel's own stdout (ipykernel's flush before it:
        # with ``sys.stdout`` replaced there was none, and idle beat the reply, helper-108
        # G1). The queue first, the stream last: text written meanwhile is seen (flushed).
        if sys.stdout is out and queue.settled() and quiet(err):
            return
        type(err).flush(err)  # (ipykernel's, as it is now)

    err.flush = flush

    def undo() -> None:
        if vars(err).get("flush") is flush:
            del err.flush
        if vars(io).get("schedule") == queue.schedule:  # (a bound method: equal, not same)
            del io.schedule

    return undo
