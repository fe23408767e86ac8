"""Waiting for a person's decision inside a running cell, when a step has failed.

All of durable_nb's use of ipykernel's private surface (subshells, comm routing) is here.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any

from .errors import describe

_subshells: dict[int, str] = {}
_subshell_lock = threading.Lock()


@dataclass
class Decision:
    """What the person chose: ``retry``, ``skip`` (with ``value``) or ``raise``."""

    action: str
    value: Any = None


def frontend() -> str:
    """How to ask right now: ``widget``, ``prompt`` or ``raise``.

    An execute request with ``allow_stdin`` false (nbclient, papermill, scripts over
    jupyter_client) is headless: nobody can answer, so it never blocks. Frontends that
    send a cell id (JupyterLab, Notebook 7, VS Code) render widgets.
    """
    kernel = _kernel()
    if kernel is None:  # terminal IPython or a script
        return "prompt" if sys.stdin is not None and sys.stdin.isatty() else "raise"
    if not getattr(kernel, "_allow_stdin", False):
        return "raise"
    parent = kernel.get_parent() or {}
    if (parent.get("metadata") or {}).get("cellId") and _widgets_available():
        return "widget"
    return "prompt" if threading.current_thread() is threading.main_thread() else "raise"


def prompt(step: str, args: str, error: BaseException) -> Decision:
    """Ask on stdin (a frontend without widgets); KeyboardInterrupt propagates."""
    print(f"durable_nb: step {step}{args} failed: {type(error).__name__}: {error}")
    while True:
        answer = input("[r]etry, [s]kip with a value, or raise [x]? ").strip().lower()
        if answer in ("r", "retry"):
            return Decision("retry")
        if answer in ("x", "raise"):
            return Decision("raise")
        if answer in ("s", "skip"):
            expr = input("value (a Python expression): ")
            try:
                return Decision("skip", evaluate(expr))
            except Exception as exc:
                print(f"durable_nb: {describe(exc)}; try again")


def evaluate(expr: str) -> Any:
    """Evaluate ``expr`` in the notebook's namespace (the value a skipped step returns)."""
    from IPython import get_ipython

    shell = get_ipython()
    namespace = shell.user_ns if shell is not None else {}
    return eval(expr, namespace) if expr.strip() else None


def _widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _kernel() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "kernel", None)


# -- the private ipykernel surface: clicks while the main thread is blocked ------------


def route_to_subshell(widgets: list[Any]) -> bool:
    """Make messages to ``widgets`` reach the kernel while a sync cell blocks.

    ipykernel 7.4 delivers a comm message to the thread the comm last published
    from (its private ``_reply_subshell_id``); we point our widgets' comms at a
    subshell of their own, whose thread is free while the cell waits. On 7.0-7.3
    JupyterLab sends widget messages through a subshell itself, so nothing is
    needed. Returns False when this kernel has no subshells at all.
    """
    kernel = _kernel()
    if kernel is None or not getattr(kernel, "_supports_kernel_subshells", False):
        return False
    _check_version()
    comms = [w.comm for w in widgets if getattr(w, "comm", None) is not None]
    if not comms or not hasattr(comms[0], "_reply_subshell_for"):
        return True  # before 7.4: the frontend routes widget messages
    subshell = _subshell(kernel)
    if subshell is None:
        return False
    for comm in comms:
        _pin(comm, subshell)
    return True


#: The ipykernel releases whose private surface this module was written against.
SUPPORTED = ((7, 0), (7, 4))


def _check_version() -> None:
    import ipykernel

    from ._report import report

    version = tuple(ipykernel.version_info[:2])
    if not SUPPORTED[0] <= version <= SUPPORTED[1]:
        report(
            f"ipykernel {ipykernel.__version__} is newer than durable_nb knows (7.0-7.4): if "
            "clicks on a suspended step do not arrive, use %durable on_failure raise",
            once="ipykernel-version",
        )


def _pin(comm: Any, subshell: str) -> None:
    """Keep ``comm``'s replies on ``subshell`` (each publish would reset the route)."""
    publish = comm.publish_msg

    def publish_msg(*args: Any, **kwargs: Any) -> None:
        publish(*args, **kwargs)
        with comm._reply_subshell_lock:
            comm._reply_subshell_id = subshell

    comm.publish_msg = publish_msg
    with comm._reply_subshell_lock:
        comm._reply_subshell_id = subshell


def _subshell(kernel: Any) -> str | None:
    """This kernel's subshell for durable_nb's widgets, created once (on its thread)."""
    with _subshell_lock:
        if id(kernel) in _subshells:
            return _subshells[id(kernel)]
        manager = kernel.shell_channel_thread.manager
        box: dict[str, Any] = {}
        done = threading.Event()

        def create() -> None:
            try:
                box["id"] = manager._create_subshell()
            except BaseException as exc:  # reported below, in the caller's thread
                box["error"] = exc
            finally:
                done.set()

        manager._shell_channel_io_loop.add_callback(create)
        if not done.wait(10) or "id" not in box:
            return None
        _subshells[id(kernel)] = box["id"]
        return box["id"]
