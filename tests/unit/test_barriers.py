"""A stream flush is left out only when it would send nothing and wait for nothing: the
IO thread has run all that was queued, as an event this thread waited for proves.
ipykernel's own IO thread, streams and session, in process (no kernel needed)."""

from __future__ import annotations

import signal
import sys
import threading

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st
from ipykernel.iostream import IOPubThread, OutStream
from jupyter_client.session import Session

from durable_nb._ipykernel import barriers, streams


class Kernel:
    """An IO thread and the two streams, leaned as the extension leans them; ``sent``:
    the (stream, text) of each stream message, as the IO thread sends it."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        socket = self.context.socket(zmq.PUB)
        socket.bind_to_random_port("tcp://127.0.0.1")
        self.io = IOPubThread(socket)
        self.io.start()
        self.sent: list[tuple[str, str]] = []
        self.out, self.err = (OutStream(Session(), self.io, name, watchfd=False)
                              for name in ("stdout", "stderr"))  # fmt: skip
        hooked = threading.Event()
        for s in (self.out, self.err):
            s._flush_buffers = streams._Tracked(s._flush_buffers)
            self.io.schedule(lambda s=s: s.register_hook(self._seen))  # (the IO thread's)
        self.io.schedule(hooked.set)
        assert hooked.wait(10)
        self.undo = barriers.lean_stream_flushes((self.out, self.err), streams._quiet)
        self.stdout = sys.stdout
        self.as_stdout()
        assert self.undo is not None
        self.queue = vars(self.io)["schedule"].__self__

    def as_stdout(self) -> None:
        """``sys.stdout`` is the kernel's own, as stderr's leaning needs (see the G1 test
        below); called in the test itself (pytest sets its own back after the fixture)."""
        sys.stdout = self.out

    def _seen(self, msg: dict) -> dict:
        self.sent.append((msg["content"]["name"], msg["content"]["text"]))
        return msg

    def text(self, name: str) -> str:
        return "".join(t for n, t in self.sent if n == name)

    def close(self) -> None:
        sys.stdout = self.stdout
        self.undo()
        if self.io.thread.is_alive():
            self.io.stop()
        self.io.close()
        self.context.term()


@pytest.fixture
def kernel():
    k = Kernel()
    yield k
    k.close()


def test_settled_only_by_this_threads_event_when_nothing_was_queued_since(kernel):
    q = kernel.queue
    assert not q.settled()  # nothing waited for yet
    kernel.out.flush()  # ipykernel's round trip: its (empty) send, then the event
    assert q.settled()
    gate = threading.Event()

    def then_more() -> None:  # what a stream's send does on the IO thread: queue more
        gate.wait(10)
        kernel.io.schedule(lambda: None)

    kernel.io.schedule(then_more)
    evt = threading.Event()
    kernel.io.schedule(evt.set)
    gate.set()
    assert evt.wait(10)
    assert not q.settled()  # queued by the IO thread after the event: not proven run
    kernel.err.flush()  # (nothing to send, but not settled: a round trip, as ipykernel's)
    assert q.settled()
    kernel.io.schedule(lambda: None)  # anything queued since: not proven run
    assert not q.settled()
    kernel.err.flush()
    assert q.settled()
    other = threading.Thread(target=kernel.out.flush)
    other.start()
    other.join()
    assert not q.settled()  # another thread's event: that thread's proof, not this one's


def test_not_settled_while_the_event_is_not_set(kernel):
    release = threading.Event()
    kernel.io.schedule(lambda: release.wait(10))  # the IO thread is busy
    evt = threading.Event()
    kernel.io.schedule(evt.set)
    assert not kernel.queue.settled()
    release.set()
    assert evt.wait(10) and kernel.queue.settled()


def test_a_quiet_stderrs_flush_queues_nothing_once_settled(kernel):
    kernel.as_stdout()
    kernel.out.flush()
    count = kernel.queue.count
    kernel.err.flush()
    kernel.err.flush()
    assert kernel.queue.count == count  # left out: nothing queued, nothing waited for
    kernel.out.flush()  # stdout's all stay (the fd watcher's chance; idle after the reply)
    assert kernel.queue.count > count
    count = kernel.queue.count
    kernel.err.write("e")
    kernel.err.flush()  # text to send: flushed, as ipykernel does
    assert kernel.queue.count > count and kernel.text("stderr") == "e"


def test_never_settled_without_a_running_io_thread(kernel):
    kernel.out.flush()
    assert kernel.queue.settled()
    kernel.io.stop()  # (a forked child's: its lock may be held by a thread that is gone)
    assert not kernel.queue.settled()
    held = threading.Thread(target=kernel.queue.lock.acquire)  # (a thread the fork left)
    held.start()
    held.join()
    assert not kernel.queue.settled() and not kernel.queue.stopped  # no wait on its lock
    kernel.err.flush()  # ipykernel's own, inline: nothing to send


def test_settled_means_everything_queued_before_has_run(kernel):
    """Another thread queues all along; each time this one finds the queue settled,
    everything that thread had queued by then has run."""
    ran: list[int] = []
    queued = [0]
    stop = threading.Event()

    def producer() -> None:
        i = 0
        while not stop.is_set():
            kernel.io.schedule(lambda i=i: ran.append(i))
            i += 1
            queued[0] = i  # (after schedule returned: it is on the queue)

    t = threading.Thread(target=producer)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # (the threads interleave often)
    t.start()
    try:
        for _ in range(300):
            kernel.out.flush()
            before = queued[0]
            if kernel.queue.settled():
                assert len(ran) >= before
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(interval)
    assert queued[0] > 0


OPS = st.lists(st.one_of(
    st.tuples(st.sampled_from(["stdout", "stderr"]), st.text(max_size=5)),  # a write
    st.sampled_from(["flush stdout", "flush stderr", "queue"]),
), max_size=25)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_every_text_is_sent_in_order_by_the_flushes_before_a_reply(ops):
    """Whatever was written and flushed, the pair of flushes ipykernel makes before a
    reply (stdout, then stderr) leaves no text behind, each stream's in its order."""
    k = Kernel()
    try:
        written = {"stdout": "", "stderr": ""}
        for op in ops:
            if isinstance(op, tuple):
                getattr(k, "out" if op[0] == "stdout" else "err").write(op[1])
                written[op[0]] += op[1]
            elif op == "queue":
                k.io.schedule(lambda: None)
            else:
                (k.out if op == "flush stdout" else k.err).flush()
        k.out.flush()
        k.err.flush()
        assert (k.text("stdout"), k.text("stderr")) == (written["stdout"], written["stderr"])
    finally:
        k.close()


def test_undone_leaves_the_io_thread_and_streams_as_they_were(kernel):
    kernel.undo()
    assert {"schedule"} & vars(kernel.io).keys() == set()
    assert not any("flush" in vars(s) for s in (kernel.out, kernel.err))
    kernel.undo = lambda: None  # (closed by the fixture)


def test_streams_not_as_written_against_are_left_alone(kernel):
    kernel.undo()
    kernel.undo = lambda: None  # (closed by the fixture)
    a = OutStream(Session(), kernel.io, "stdout", watchfd=False)
    b = OutStream(Session(), kernel.io, "stderr", watchfd=False)
    b.flush = b.flush  # someone's own flush on the stream
    assert barriers.lean_stream_flushes((a, b), streams._quiet) is None
    assert "schedule" not in vars(kernel.io)
    c = OutStream(Session(), kernel.io, "stderr", watchfd=False)
    c.pub_thread = object()  # another IO thread
    assert barriers.lean_stream_flushes((a, c), streams._quiet) is None
    assert "flush" not in vars(c) and "schedule" not in vars(kernel.io)


@pytest.mark.timeout(120)
def test_a_signal_handler_that_prints_mid_schedule_neither_hangs_nor_settles_early(kernel):
    """Python runs a signal handler between any two steps, inside a schedule's lock too:
    its print schedules again on the same thread (a lock that is not re-entrant hung
    the kernel 6 times in 6, helper-107 F1), before the outer function is appended."""
    ticks = [0]

    def handler(signum, frame) -> None:
        ticks[0] += 1
        kernel.out.write("t")
        if ticks[0] % 7 == 0:  # an event of this thread's own, nested: not the last queued
            kernel.io.schedule(threading.Event().set)

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
    try:
        for _ in range(2000):
            kernel.out.write("x")
            kernel.out.flush()
            kernel.err.flush()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    kernel.out.flush()
    kernel.err.flush()
    assert ticks[0] > 50 and not kernel.queue.stopped  # (re-entered, never waited on)
    assert kernel.text("stdout").count("x") == 2000
    assert kernel.text("stdout").count("t") == ticks[0]


def test_a_nested_schedules_event_is_not_taken_for_the_last(kernel):
    """A schedule nested in another on the same thread (a signal handler's) comes before
    the outer's function: its event proves nothing about that function."""
    q = kernel.queue
    kernel.out.flush()
    assert q.settled()
    evt = threading.Event()
    with q.lock:  # as the outer schedule holds it, between its count and its append
        q.mine.depth = 1
        q.schedule(evt.set)
        q.mine.depth = 0
    assert evt.wait(10) and not q.settled()


def test_a_holder_suspended_by_a_debugger_stops_the_counting_not_the_kernel(kernel, monkeypatch):
    """A debugger can stop the main thread inside a schedule, holding its lock; the other
    threads' schedules go on after :data:`barriers.WAIT` (else the debugger's own events
    waited for ever, helper-107 F2), and the queue is never settled again."""
    q = kernel.queue
    kernel.as_stdout()
    kernel.out.flush()
    assert q.settled()
    held, release = threading.Event(), threading.Event()

    def suspended() -> None:
        with q.lock:
            held.set()
            release.wait(10)

    t = threading.Thread(target=suspended)
    t.start()
    assert held.wait(10)
    kernel.out.write("x")
    kernel.out.flush()  # waits WAIT once, then goes on as ipykernel's
    release.set()
    t.join()
    flushed = []
    real = OutStream.flush
    monkeypatch.setattr(OutStream, "flush", lambda s: (flushed.append(s.name), real(s))[1])
    kernel.err.flush()
    assert q.stopped and not q.settled() and flushed == ["stderr"]
    assert kernel.text("stdout") == "x"


def test_a_lock_a_ctrl_c_left_held_is_given_back(kernel):
    """A Ctrl-C landing just after the lock is taken, before the ``try`` that gives it
    back, leaves it held (helper-108 G2): the thread's next schedule gives it back, so
    another thread's schedule does not wait and stop the counting."""
    q = kernel.queue
    q.lock.acquire()  # what the interrupted schedule left
    kernel.out.flush()
    other = threading.Thread(target=kernel.out.flush)
    other.start()
    other.join()
    assert not q.stopped and not q.lock._is_owned()
    kernel.out.flush()
    assert q.settled()


def test_stderr_is_flushed_when_stdout_is_not_the_kernels(kernel):
    """With ``sys.stdout`` replaced, ipykernel's flush of it is no round trip: stderr's is
    the one before the reply or idle, and stays (helper-108 G1: idle beat the reply)."""
    kernel.out.flush()
    assert kernel.queue.settled()
    count = kernel.queue.count
    kernel.as_stdout()
    kernel.err.flush()
    assert kernel.queue.count == count  # (the kernel's own: left out)
    sys.stdout = kernel.err  # (``sys.stdout = sys.stderr``, or a StringIO)
    try:
        kernel.err.flush()
    finally:
        sys.stdout = kernel.out
    assert kernel.queue.count > count


class _Interrupting:
    """An RLock whose next release first runs ``then`` (a signal handler arriving between
    the steps of a section's end)."""

    def __init__(self, then) -> None:
        self.lock, self.then = threading.RLock(), then

    def acquire(self, *args, **kwargs) -> bool:
        return self.lock.acquire(*args, **kwargs)

    def release(self) -> None:
        then, self.then = self.then, None
        if then is not None:
            then()
        self.lock.release()

    def _is_owned(self) -> bool:
        return self.lock._is_owned()


def test_a_print_between_a_sections_steps_gives_back_nothing_of_it(kernel):
    """A signal handler that prints as a section ends (its lock given back, its depth not
    yet counted down, or the other way round) is nested: it must not take the section's
    lock for a leftover and give it back (the section's own release then raised in the
    person's ``print``)."""
    q = kernel.queue
    q.lock = _Interrupting(lambda: kernel.err.write("t"))
    kernel.out.write("x")  # its schedule's release runs the handler's write first
    kernel.out.flush()
    kernel.err.flush()
    assert (kernel.text("stdout"), kernel.text("stderr")) == ("x", "t")
    assert not q.lock._is_owned()
