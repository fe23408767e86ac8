"""Waiting for a person inside a running cell: a failed step's decision, or an answer.

:func:`ask` is the runtime's ``asker``: it picks how to ask (widget, stdin, or not at all).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _ipykernel
from ._report import report
from .errors import describe


@dataclass
class Decision:
    """What the person chose: ``retry``, ``skip`` (with ``value``) or ``raise``."""

    action: str
    value: Any = None


def ask(
    step: str,
    args: str,
    error: BaseException,
    asynchronous: bool = False,
    *,
    notify: Callable[..., None] | None = None,
    widget: Callable[[str, str, BaseException], Any] | None = None,
) -> Callable[[], Any] | None:
    """How the failed call ``step(args)`` waits for the person, or None to raise at once.

    Parameters
    ----------
    step, args, error
        The step's name, its arguments as shown, and the error that exhausted its retries.
    asynchronous
        True for an ``async`` step: the returned callable is then awaited.
    notify
        Told ``notify("suspended", step=step)`` just before the wait (the status view).
    widget
        Builds the prompt widget (``widgets.SuspensionPrompt``); passed in, not imported,
        because the widgets import this module. Without it the person is asked on stdin.

    Returns
    -------
    A callable returning (or, asynchronous, resolving to) a :class:`Decision`; None when
    nobody can answer here: a headless request, stdin outside the main thread.
    """
    how = frontend()
    if how == "raise":
        return None
    if how == "widget" and widget is not None:
        _notify(notify, step)  # first, so that the prompt's Details show it
        waiter = _shown(lambda: widget(step, args, error))
        if waiter is not None:
            return waiter.wait_async if asynchronous else waiter.wait
    if threading.current_thread() is not threading.main_thread():
        return None  # stdin belongs to the main thread
    _notify(notify, step)
    if asynchronous:

        async def wait_async() -> Decision:
            return prompt(step, args, error)

        return wait_async
    return lambda: prompt(step, args, error)


def _shown(build: Callable[[], Any]) -> Any:
    """The prompt widget ``build`` makes, when its clicks can arrive; else None (closed, unseen)."""
    try:
        waiter = build()
    except Exception as exc:  # the person's error matters more than ours
        report(f"could not build the suspension prompt ({describe(exc)}); asking on stdin",
               once="suspension-widget")  # fmt: skip
        return None
    if waiter.reachable:
        return waiter
    waiter.box.close()
    return None


def question(
    prompt: str,
    choices: list | None,
    yes_no: bool,
    default: Any = None,
    *,
    notify: Callable[..., None] | None = None,
    widget: Callable[..., Any] | None = None,
) -> Callable[[], Any] | None:
    """How ``dnb.ask``/``dnb.confirm`` waits for the answer, or None when nobody can answer.

    As :func:`ask` does for a failed step: the widget (``widgets.QuestionPrompt``, passed
    in) where clicks can arrive, else stdin on the main thread, else None (headless).
    The returned callable blocks until the answer and returns it.
    """
    how = frontend()
    if how == "raise":
        return None
    if how == "widget" and widget is not None:
        waiter = _shown(lambda: widget(prompt, choices, yes_no, default))
        if waiter is not None:
            _notify(notify, f"question: {prompt[:40]}")
            return lambda: waiter.wait().value
    if threading.current_thread() is not threading.main_thread():
        return None
    _notify(notify, f"question: {prompt[:40]}")
    return lambda: read_answer(prompt, choices, yes_no, default)


def read_answer(prompt: str, choices: list | None, yes_no: bool, default: Any = None) -> Any:
    """Ask ``prompt`` on stdin until the answer is one that fits; KeyboardInterrupt propagates."""
    print(f"durable_nb: {prompt}")
    if choices:
        for n, choice in enumerate(choices, 1):
            print(f"  {n}. {choice}")
    while True:
        if yes_no:
            word = input("[y]es or [n]o? ").strip().lower()
            if word in ("y", "yes", "n", "no"):
                return word.startswith("y")
            continue
        text = input(f"answer{f' [{default}]' if default is not None else ''}: ").strip()
        if not text and default is not None:
            return default
        if not choices:
            return text
        for n, choice in enumerate(choices, 1):
            if text in (str(n), str(choice)):
                return choice


def _notify(notify: Callable[..., None] | None, step: str) -> None:
    if notify is not None:
        notify("suspended", step=step)


def frontend() -> str:
    """How to ask right now: ``widget``, ``prompt`` or ``raise``.

    An execute request with ``allow_stdin`` false (nbclient, papermill, scripts over
    jupyter_client) is headless: nobody can answer, so it never blocks. Frontends that
    send a cell id (JupyterLab, Notebook 7, VS Code) render widgets.
    """
    kernel = _ipykernel.kernel()
    if kernel is None:  # terminal IPython or a script
        return "prompt" if _tty() else "raise"
    if not _ipykernel.allow_stdin(kernel):
        return "raise"
    if _ipykernel.cell_id(kernel):
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


def _tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # a closed or detached stdin
        return False
