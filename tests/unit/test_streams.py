"""A stream is quiet (its flush before a display left out) only when it has nothing to send:
ipykernel's own IO thread, stream and session, in process (no kernel needed)."""

from __future__ import annotations

import threading

import pytest
import zmq
from ipykernel.iostream import IOPubThread, OutStream
from jupyter_client.session import Session

from durable_nb._ipykernel import streams


@pytest.fixture
def stream():
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.bind_to_random_port("tcp://127.0.0.1")
    thread = IOPubThread(socket)
    thread.start()
    out = OutStream(Session(), thread, "stdout", watchfd=False)
    out._flush_buffers = streams._Tracked(out._flush_buffers)
    yield out, thread
    thread.stop()
    thread.close()
    context.term()


def test_a_stream_is_quiet_only_with_no_text_written_and_no_flush_under_way(stream):
    out, thread = stream
    assert streams._quiet(out)
    out.write("before the display\n")
    assert not streams._quiet(out)  # written, not flushed

    entered, release, done = threading.Event(), threading.Event(), threading.Event()

    def hold(msg):  # runs on the IO thread inside ``_flush``: the text taken, not queued yet
        entered.set()
        release.wait(10)
        return msg

    thread.schedule(lambda: out.register_hook(hold))  # (hooks are the IO thread's own)
    thread.schedule(out._flush)
    thread.schedule(done.set)
    assert entered.wait(10)
    assert not streams._holds_text(out)  # the buffers are empty, the flush mark cleared...
    assert not streams._quiet(out)  # ...yet its message is not queued: a display must wait
    release.set()
    assert done.wait(10)
    assert streams._quiet(out)


def test_an_untracked_stream_is_never_quiet(stream):
    out, _ = stream
    assert not streams._quiet(OutStream(Session(), out.pub_thread, "stderr", watchfd=False))
    assert not streams._quiet(object())  # not ipykernel's at all
