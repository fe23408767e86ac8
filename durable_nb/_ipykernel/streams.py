"""ipykernel's outputs as durable_nb uses them (private surface, never raises): every
message watched as it goes out, the pause before a reply taken for the cell's save, and
stream flushes left out where a stream has no text to send.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import barriers

#: The ids of the last execute requests answered (:func:`will_reply`), oldest first.
_replied: dict[str, None] = {}
#: How many of them are kept.
REPLIED_KEPT = 4096


def watch_outputs(
    k: Any,
    seen: Callable[[str, dict], None],
    kinds: frozenset[str],
    replying: Callable[[], None] | None = None,
) -> Callable[[], None] | None:
    """Call ``seen(msg_type, content)`` for each iopub message of ``kinds`` the kernel sends.

    Wraps ``send`` of the kernel's session (and of the sessions its streams, display
    publisher and display hook hold, when they are other objects): every output passes
    there, from any thread, after the kernel's own hooks. ``seen`` is called before the
    message goes out and must not raise (errors are swallowed). ``replying()`` is called
    before each ``execute_reply`` goes out: the kernel has published all that the cell
    printed by then; what ``replying`` prints is published before the reply. Returns the
    function that takes the wrap back, or None when the surface is not there (nothing is
    changed then).

    ipykernel pauses before each execute reply (``_execute_sleep``, 0.5 ms after its last
    flush, so that the outputs reach the frontend before the reply does): ``replying``
    runs in that pause, and the kernel sleeps what it left of it. The reply goes out when
    it did before, unless ``replying`` takes longer than the pause.
    """
    try:
        shell = k.shell
        holders = [k, sys.stdout, sys.stderr, shell.display_pub, shell.displayhook]
        sessions = {id(s): s for s in (getattr(h, "session", None) for h in holders)
                    if s is not None and callable(getattr(s, "send", None))}  # fmt: skip
    except Exception:
        return None
    if not sessions:
        return None

    pause = _take_pause(k) if replying is not None else 0.0

    def wrap(send: Callable) -> Callable:
        def send_and_watch(stream: Any, msg_or_type: Any, content: Any = None, *args: Any,
                           **kwargs: Any) -> Any:  # fmt: skip
            try:
                if isinstance(msg_or_type, str):
                    kind, body = msg_or_type, content
                else:
                    kind, body = msg_or_type["header"]["msg_type"], msg_or_type["content"]
                if kind in kinds and isinstance(body, dict):
                    seen(kind, body)
                elif kind == "execute_reply" and replying is not None:
                    _answered(args[0] if args else kwargs.get("parent"))
                    began = time.perf_counter()
                    with contextlib.suppress(KeyboardInterrupt):  # the reply goes out
                        replying()
                    flush_streams()  # a line it printed goes before the reply
                    # (an aborted request's reply was sent with no pause)
                    if pause and (body or {}).get("status") != "aborted":
                        with contextlib.suppress(KeyboardInterrupt):  # the cell has ended
                            time.sleep(max(0.0, pause - (time.perf_counter() - began)))
            except Exception:
                pass
            return send(stream, msg_or_type, content, *args, **kwargs)

        send_and_watch.__wrapped__ = send  # type: ignore[attr-defined]
        return send_and_watch

    wrapped = []
    try:
        for session in sessions.values():
            had = "send" in session.__dict__
            session.send = wrap(session.send)
            wrapped.append((session, had))
    except Exception:
        _unwrap(wrapped)
        _give_pause(k, pause)
        return None

    def unwatch() -> None:
        _unwrap(wrapped)
        _give_pause(k, pause)

    return unwatch


def _answered(parent: Any) -> None:
    """Remember that the request ``parent`` is answered (its reply is going out now)."""
    with contextlib.suppress(Exception):
        _replied[parent["header"]["msg_id"]] = None
        while len(_replied) > REPLIED_KEPT:
            del _replied[next(iter(_replied))]


def _take_pause(k: Any) -> float:
    """The kernel's pause before an execute reply (s), now ours to keep (0.0: none taken)."""
    try:
        pause = k._execute_sleep
        if type(pause) is not float or not 0.0 < pause <= 1.0:
            return 0.0
        k._execute_sleep = 0.0
        return pause
    except Exception:
        return 0.0


def _give_pause(k: Any, pause: float) -> None:
    """Give the kernel back the pause :func:`_take_pause` took (unless set since)."""
    with contextlib.suppress(Exception):
        if pause and k._execute_sleep == 0.0:
            k._execute_sleep = pause


def _unwrap(wrapped: list[tuple[Any, bool]]) -> None:
    for session, had in wrapped:
        with contextlib.suppress(Exception):
            if had:
                session.send = session.send.__wrapped__
            else:
                del session.send


def flush_streams() -> None:
    """Publish what ``sys.stdout``/``sys.stderr`` hold. A kernel stream with nothing
    written since its last flush is left alone: each flush waits for a round trip through
    the kernel's IO thread (~0.5 ms)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if _holds_text(stream):
                stream.flush()


#: What ipykernel's display publisher's ``_flush_streams`` reads (6.x-7.4): it flushes
#: ``sys.stdout``, then ``sys.stderr``.
_FLUSH_NAMES = ("sys", "stdout", "flush", "stderr")
#: What its display hook's ``finish_displayhook`` reads (7.3-7.4): those two flushes, then
#: the result sent through the hooks (the body :func:`_finish` repeats; 7.0-7.2's has no
#: hooks: left alone, helper-105 H4).
_FINISH_NAMES = (*_FLUSH_NAMES, "msg", "session", "_hooks", "send", "pub_socket", "topic")


def lean_flushes(k: Any) -> Callable[[], None] | None:
    """Let displays and cell results wait for fewer flushes of stdout and stderr.

    ipykernel flushes both streams before each display and each cell's result, so that
    what was printed before shows before. Each flush waits for a round trip through its
    IO thread (~0.03 ms idle, 0.2-0.3 ms while a widget cell's messages queue there): a
    tenth of a widget notebook's cell time. :func:`before_output` leaves out the ones that
    order nothing. The flushes before a reply or an input request stay (those go out on
    other sockets), less those that only wait for the IO thread to run what it has
    already run (:mod:`.barriers`). Returns the undo, or None (streams, publisher or
    display hook other than ipykernel's as this was written against: nothing changed).
    """
    try:
        streams = (sys.stdout, sys.stderr)
        pub, hook = k.shell.display_pub, k.shell.displayhook
        taken = vars(pub).keys() | vars(hook).keys()  # (set by someone else: left alone)
        # The streams themselves, not a proxy whose reads reach them (helper-104 G1).
        if (any("_flush_buffers" in vars(s) or not callable(vars(type(s)).get("_flush_buffers"))
                for s in streams)
                or type(pub)._flush_streams.__code__.co_names != _FLUSH_NAMES
                or type(hook).finish_displayhook.__code__.co_names != _FINISH_NAMES
                or "_flush_streams" in taken or "finish_displayhook" in taken):  # fmt: skip
            return None
    except Exception:
        return None
    for s in streams:
        s._flush_buffers = _Tracked(s._flush_buffers)
    before = functools.partial(before_output, streams)
    finish = functools.partial(_finish, hook, before)
    pub._flush_streams, hook.finish_displayhook = before, finish
    unflush = barriers.lean_stream_flushes(streams, _quiet)

    def undo() -> None:
        if unflush is not None:
            unflush()
        for owner, name, ours in ((pub, "_flush_streams", before),
                                  (hook, "finish_displayhook", finish)):  # fmt: skip
            if vars(owner).get(name) is ours:
                delattr(owner, name)
        for s in streams:
            if type(vars(s).get("_flush_buffers")) is _Tracked:
                del s._flush_buffers

    return undo


def before_output(kernels: tuple[Any, Any]) -> None:
    """Flush ``sys.stdout`` and ``sys.stderr`` before a display or a result, as ipykernel
    does, less the round trips that order nothing. ``kernels``: the kernel's own streams.

    A stream with no text to send (:func:`_quiet`) orders nothing: the display goes out
    through the same IO thread, after all the stream sent. But text a C library or a child
    process wrote to a watched file descriptor may be in the hands of ipykernel's watcher
    thread, which needs the interpreter to put it in the stream: then the main thread
    waits for a round trip through the IO thread as ipykernel's flush does (the kernel's
    stdout flushed when it is ``sys.stdout``; else only the wait, whatever ``sys.stdout``
    is: helper-104 G2, helper-105 H3), and the streams are looked at after.
    """
    if any(map(_watched, kernels)):
        if sys.stdout is kernels[0]:
            kernels[0].flush()
        else:  # (its text is not the display's to send: an Output widget may capture now)
            _round_trip(kernels[0])
    for s in (sys.stdout, sys.stderr):
        if not _quiet(s):  # (text the watcher handed over during the wait too)
            s.flush()


def _round_trip(stream: Any) -> None:
    """Wait for ``stream``'s IO thread to run what was scheduled so far (as its flush
    waits, sending nothing); nothing when that thread is not running (a forked child)."""
    io = getattr(stream, "pub_thread", None)  # (None once the stream is closed: helper-106 F6)
    thread = getattr(io, "thread", None)
    if thread is None or not thread.is_alive() or thread is threading.current_thread():
        return
    done = threading.Event()
    io.schedule(done.set)
    done.wait(stream.flush_timeout)


def _finish(hook: Any, before: Callable[[], None]) -> None:
    """ipykernel 7.3's ``finish_displayhook`` (names checked by :func:`lean_flushes`), its
    two flushes ``before`` (:func:`before_output`)."""
    before()
    if hook.msg and hook.msg["content"]["data"] and hook.session:
        msg = hook.msg
        for transform in hook._hooks:
            msg = transform(msg)
            if msg is None:
                hook.msg = None
                return
        hook.session.send(hook.pub_socket, msg, ident=hook.topic)
    hook.msg = None


class _Tracked:
    """A stream's ``_flush_buffers`` (what its ``_flush`` sends from, on the IO thread):
    counts the flushes under way, from taking the text to sending the last of it."""

    __slots__ = ("buffers", "running")

    def __init__(self, buffers: Callable[[], Iterator[tuple[dict, str]]]) -> None:
        self.buffers, self.running = buffers, 0

    def __call__(self) -> Iterator[tuple[dict, str]]:
        self.running += 1
        try:
            yield from self.buffers()
        finally:  # (a flush stopped early drops the generator: closed, here too)
            self.running -= 1


def _quiet(stream: Any) -> bool:
    """Whether ``stream`` (tracked by :func:`lean_flushes`) has no text to send: none
    written since its last flush began, and no flush under way, which may have taken the
    text and not yet handed its message to the IO thread's queue (read last: one ending
    meanwhile has handed it)."""
    try:
        tracked = vars(stream)["_flush_buffers"]
        return type(tracked) is _Tracked and not _holds_text(stream) and not tracked.running
    except Exception:
        return False


def _watched(stream: Any) -> bool:
    """Whether ipykernel copies a file descriptor's output into ``stream`` (a thread)."""
    try:
        return stream._fid is not None and stream._should_watch is not False
    except Exception:
        return True


def _holds_text(stream: Any) -> bool:
    """Whether ``stream`` may hold text not yet published (True unless sure it does not).

    ipykernel's ``OutStream`` marks a flush pending on every write and clears the mark
    when its flush starts, which takes the buffers in one swap under their lock.
    """
    try:
        if stream._flush_pending or stream._subprocess_flush_pending or stream.echo is not None:
            return True  # (a flush also flushes the echo: the terminal's copy)
        with stream._buffer_lock:
            return any(buffer.tell() for buffer in stream._buffers.values())
    except Exception:  # not ipykernel's stream, or another version of it: flush
        return True
