"""All of durable_nb's use of ipykernel's private surface, in one package that never raises
(this module: the kernel, its requests and subshells; :mod:`.streams`: its outputs).

Every function answers "not available" (``None`` / ``False``) on any surprise: a missing or
renamed attribute, an ipykernel outside the tested range, a timeout. The caller then asks
on stdin or raises the person's own error; durable_nb never breaks the notebook.
"""

from __future__ import annotations

import _signal
import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .._report import report
from .streams import _replied, flush_streams, lean_flushes, watch_outputs

#: What the package gives from :mod:`.streams` (beside this module's own).
__all__ = ["flush_streams", "lean_flushes", "watch_outputs"]

#: The ipykernel releases whose private surface this module was written and tested against.
TESTED = ((7, 0), (7, 4))
#: The release from which a comm's replies follow its ``_reply_subshell_id``.
_PINNED_ROUTES = (7, 4)
#: Longest wait for the shell channel thread to create our subshell, in seconds.
SUBSHELL_TIMEOUT = 10.0

_subshells: dict[int, str | None] = {}  # id(kernel) -> our subshell's id (None: failed)
_subshell_lock = threading.Lock()


def kernel() -> Any:
    """The running ipykernel kernel, or None (terminal IPython, a script, no IPython)."""
    try:
        from IPython import get_ipython

        return getattr(get_ipython(), "kernel", None)
    except Exception:
        return None


def session_name() -> str | None:
    """The running kernel's connection file name (``kernel-<uuid>``), or None.

    A kernel manager keeps it across restarts, so it names the kernel session.
    """
    try:
        from ipykernel.kernelapp import IPKernelApp

        if not IPKernelApp.initialized():
            return None
        return Path(IPKernelApp.instance().connection_file).stem or None
    except Exception:
        return None


def version() -> tuple[int, int] | None:
    """ipykernel's (major, minor) when it is in the tested range; else None (said once)."""
    try:
        import ipykernel

        found = tuple(int(part) for part in ipykernel.version_info[:2])
        label = ipykernel.__version__
    except Exception:
        return None
    if TESTED[0] <= found <= TESTED[1]:
        return found  # type: ignore[return-value]
    low, high = (".".join(map(str, v)) for v in TESTED)
    report(
        f"ipykernel {label} is outside the versions durable_nb was tested with ({low}-{high}): "
        "a suspended step asks on stdin instead of with buttons",
        once="ipykernel-version",
    )
    return None


def hide_from_debugger(k: Any) -> Callable[[], None] | None:
    """Let the kernel's debugger skip durable_nb's code as it skips the kernel's own.

    ipykernel lists the modules loaded before it started, and its debugger sends them as
    rules to skip when it attaches; durable_nb loads after, so a step into ``print``
    stepped through durable_nb's stream code, and could stop there holding its lock
    (helper-107 F2). durable_nb's folder is added to that list (debugpy skips all under
    a folder; a debugger attached already keeps the rules it sent). Returns the undo, or
    None."""
    try:
        listed = k._kernel_modules
        if type(listed) is not list:
            return None
        added = [f for f in [str(Path(__file__).resolve().parent.parent)] if f not in listed]
        listed.extend(added)
    except Exception:
        return None

    def undo() -> None:
        for f in added:
            with contextlib.suppress(ValueError):
                listed.remove(f)

    return undo


def ready_after(k: Any, wait: Callable[[], Any]) -> Callable[[], None] | None:
    """Answer the kernel's first ``kernel_info`` request only once ``wait()`` returned.

    Frontends (JupyterLab, nbclient, papermill) send the first cell after the kernel
    answered it: work the kernel started at load (the journal's opening, in a thread)
    is then done before a cell runs, rather than competing with it for the interpreter.
    Later requests are answered as usual. Returns the undo, or None (nothing changed).
    """
    try:
        handlers = k.shell_handlers
        original = handlers["kernel_info_request"]
    except Exception:
        return None

    def undo() -> None:
        if handlers.get("kernel_info_request") is gated:
            handlers["kernel_info_request"] = original

    def gated(stream: Any, ident: Any, parent: Any) -> Any:
        undo()
        # Only ever a wait: the reply goes out anyway, even after an interrupt (the stop
        # button, pressed at a kernel that looks slow to start), or the frontend never
        # hears from it (review3 R3-3).
        with contextlib.suppress(BaseException):
            wait()
        return original(stream, ident, parent)

    handlers["kernel_info_request"] = gated
    return undo


def allow_stdin(k: Any) -> bool:
    """Whether the request being executed lets the kernel read stdin.

    False (so nobody is waited for) when the kernel does not say: an execute request with
    ``allow_stdin`` false (nbclient, papermill, scripts) has nobody to answer.
    """
    try:
        value = k._allow_stdin
    except Exception:
        return False
    return value if isinstance(value, bool) else False


def cell_id(k: Any) -> str | None:
    """The ``cellId`` of the request being executed (sent by JupyterLab, Notebook 7, VS Code)."""
    try:
        parent = k.get_parent() or {}
        value = (parent.get("metadata") or {}).get("cellId")
    except Exception:
        return None
    return value if isinstance(value, str) and value else None


def has_subshells(k: Any) -> bool:
    """Whether ``k`` runs subshells (ipykernel 7 with a shell channel thread)."""
    try:
        return k._supports_kernel_subshells is True
    except Exception:
        return False


def route_to_subshell(comms: Iterable[Any]) -> bool:
    """Make messages to ``comms`` reach the kernel while the main thread is blocked.

    ipykernel 7.4 delivers a comm message to the thread the comm last published from (its
    private ``_reply_subshell_id``); we point these comms at a subshell of our own, whose
    thread is free while the cell waits. On 7.0-7.3 JupyterLab sends widget messages
    through a subshell itself, so nothing is needed.

    Returns
    -------
    bool
        False when clicks could not arrive: no subshells, an untested ipykernel, a comm
        without the expected attributes, or a subshell that could not be created in time.
        Nothing is changed then.
    """
    k = kernel()
    if k is None or not has_subshells(k):
        return False
    found = version()
    if found is None:
        return False
    comms = list(comms)
    if found < _PINNED_ROUTES:
        return True
    if not comms or not all(_routable(c) for c in comms):
        return False
    subshell = _subshell(k)
    if subshell is None:
        return False
    try:
        for comm in comms:
            _pin(comm, subshell)
    except Exception:
        return False
    return True


def _routable(comm: Any) -> bool:
    """Whether ``comm`` has the 7.4 routing surface that :func:`_pin` relies on."""
    try:
        lock = comm._reply_subshell_lock
        return (
            callable(comm._reply_subshell_for)
            and callable(comm.publish_msg)
            and callable(getattr(lock, "__enter__", None))
        )
    except Exception:
        return False


def _pin(comm: Any, subshell: str) -> None:
    """Keep ``comm``'s replies on ``subshell`` (each publish would reset the route)."""
    publish = comm.publish_msg
    lock = comm._reply_subshell_lock

    def publish_msg(*args: Any, **kwargs: Any) -> None:
        publish(*args, **kwargs)
        with lock:
            comm._reply_subshell_id = subshell

    with lock:
        comm._reply_subshell_id = subshell
    comm.publish_msg = publish_msg


def _subshell(k: Any) -> str | None:
    """This kernel's subshell for durable_nb's widgets, created once (on its thread).

    A failure is remembered too: the next failed step does not wait again.
    """
    with _subshell_lock:
        if id(k) not in _subshells:
            _subshells[id(k)] = _create(k)
        return _subshells[id(k)]


def _create(k: Any) -> str | None:
    try:
        manager = k.shell_channel_thread.manager
        create_subshell = manager._create_subshell
        loop = manager._shell_channel_io_loop
    except Exception:
        return None
    box: dict[str, Any] = {}
    done = threading.Event()

    def create() -> None:
        try:
            box["id"] = create_subshell()
        except BaseException as exc:  # kept for the caller, who falls back
            box["error"] = exc
        finally:
            done.set()

    try:
        loop.add_callback(create)
    except Exception:
        return None
    if not done.wait(SUBSHELL_TIMEOUT) or not isinstance(box.get("id"), str):
        return None
    return box["id"]


def execute_parent(k: Any) -> dict | None:
    """The request the calling (main) thread is executing, or None."""
    try:
        parent = k.get_parent("shell")
    except Exception:
        return None
    return parent if isinstance(parent, dict) and parent.get("header") else None


def will_reply(k: Any) -> bool:
    """Whether the calling thread runs an execute request whose reply is still to be sent
    (through :func:`watch_outputs`' wrap), not a comm message (a widget click), a request
    already answered (a thread or task the cell started runs a cell later: the parent is
    a context variable it copied) or anything else that gets no execute reply."""
    parent = execute_parent(k)
    if parent is None or parent["header"].get("msg_type") != "execute_request":
        return False
    return parent["header"].get("msg_id") not in _replied


@contextlib.contextmanager
def busy(k: Any) -> Iterator[None]:
    """While the block runs, the kernel reads ``busy`` for the cell's request.

    A message handled by a subshell meanwhile (a widget click, a comm message) ends with
    an ``idle`` status for its own parent; the server's ``execution_state`` and
    JupyterLab's status bar take that as "the kernel is free", and an idle culler may
    shut the kernel down mid-wait. Each such ``idle`` is followed by a ``busy`` for the
    waiting cell's request. Does nothing when the private surface is not there.
    """
    parent = execute_parent(k)
    try:
        previous = k.__dict__.get("_publish_status")
        publish = k._publish_status
    except Exception:
        parent = None
    if parent is None or not callable(publish):
        yield
        return

    def publish_status(status: str, channel: str, parent_: Any = None) -> None:
        publish(status, channel, parent_)
        if status == "idle" and parent_ is not parent:
            with contextlib.suppress(Exception):
                publish("busy", "shell", parent)

    try:
        k._publish_status = publish_status
        publish("busy", "shell", parent)  # an idle published before the block
    except Exception:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            if previous is None:
                del k._publish_status
            else:
                k._publish_status = previous


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold the kernel's interrupts (SIGINT) off the main thread while a cell's records are
    written as its reply goes out: a KeyboardInterrupt there would leave a torn record and
    no reply. One that comes meanwhile is dropped, said: the cell has ended."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers are the main thread's (a subshell is never interrupted by SIGINT)
        return
    came: list[int] = []
    # _signal's own functions: signal's wrappers turn numbers into enums (~20 µs a cell).
    previous = _signal.getsignal(_signal.SIGINT)
    if previous is None:  # a handler not set from Python: it could not be put back
        yield
        return
    _signal.signal(_signal.SIGINT, lambda *_: came.append(1))
    try:
        yield
    finally:
        _signal.signal(_signal.SIGINT, previous)
        if came:
            report("an interrupt came as the cell ended, while its records were written: "
                   "ignored (the cell had ended)")  # fmt: skip


#: Requests that any thread may answer: a page reloaded while a cell runs sends them
#: first, and waits for them before it restores widgets (the live status view).
_ANYWHERE = frozenset({"kernel_info_request", "comm_info_request"})
#: Widget messages that only read state: what a reloaded page asks to restore widgets.
_CONTROL_TARGET = "jupyter.widget.control"
_READS = frozenset({"request_state", "request_states"})


def _anywhere(k: Any, peek: dict, session: Any) -> bool:
    """Whether a shell message (header verified, content not) only reads the kernel's state."""
    kind = peek["header"].get("msg_type")
    if kind in _ANYWHERE:
        return True
    if kind not in ("comm_open", "comm_msg"):
        return False
    raw = peek["content"]
    content = session.unpack(getattr(raw, "bytes", raw))
    if kind == "comm_open":
        return content.get("target_name") == _CONTROL_TARGET
    return ((content.get("data") or {}).get("method") in _READS
            and k.comm_manager.get_comm(content.get("comm_id")) is not None)  # fmt: skip


_answering: set[int] = set()  # id(kernel) of kernels that answer them on our subshell


def answer_while_busy(k: Any) -> bool:
    """Have ``kernel_info`` and ``comm_info`` requests answered on durable_nb's subshell.

    Sent to the main shell, they wait for the running cell to end; a page reloaded
    meanwhile (JupyterLab) then shows no widget until it does. Our subshell's thread
    answers them at once (both only read the kernel's state). ipykernel 7.4 only: False,
    changing nothing, elsewhere.
    """
    if k is None or id(k) in _answering or not has_subshells(k):
        return id(k) in _answering
    found = version()
    if found is None or found < _PINNED_ROUTES:
        return False
    subshell = _subshell(k)
    if subshell is None:
        return False
    try:
        stream, handler = k.shell_stream, k.shell_channel_thread_main
        manager = k.shell_channel_thread.manager
        loop = manager._shell_channel_io_loop
        session = k.session
    except Exception:
        return False

    running: dict[str, Any] = {}  # the last execute request sent to the main shell

    async def route(msg: Any) -> None:
        try:
            idents, frames = session.feed_identities(msg, copy=False)
            peek = session.deserialize(frames, content=False, copy=False)
            if peek["header"].get("subshell_id") is None:
                if peek["header"].get("msg_type") == "execute_request":
                    running["parent"] = {"header": peek["header"]}
            if peek["header"].get("subshell_id") is None and _anywhere(k, peek, session):
                # The subshell wants its id in the header, which is signed: sign it again.
                full = session.deserialize(frames, content=True, copy=False)
                full["header"]["subshell_id"] = subshell
                ident = [getattr(i, "bytes", i) for i in idents]
                manager.get_shell_channel_to_subshell_socket(subshell).send_multipart(
                    session.serialize(full, ident=ident)
                )
                return
        except Exception:
            pass  # whatever it is, the kernel's own handler deals with it
        await handler(msg)

    try:
        publish = k._publish_status
        lock = k._main_asyncio_lock
        loop.add_callback(lambda: stream.on_recv(route, copy=False))
    except Exception:
        return False

    def publish_status(status: str, channel: str, parent: Any = None) -> None:
        publish(status, channel, parent)
        # Our subshell's "idle" must not read as "the kernel is free" (the status bar, an
        # idle culler) while the main shell still runs a cell: say busy for that cell again.
        with contextlib.suppress(Exception):
            of = parent if parent is not None else k.get_parent(channel)
            if status == "idle" and of["header"].get("subshell_id") == subshell \
                    and lock.locked() and "parent" in running:  # fmt: skip
                publish("busy", "shell", running["parent"])

    k._publish_status = publish_status
    _answering.add(id(k))
    return True
