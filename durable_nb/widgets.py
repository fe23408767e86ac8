"""The widgets: the suspension prompt of a failed step, questions, the resume panel, status.

Callbacks may run off the main thread (a subshell); they only hand decisions over.
"""

from __future__ import annotations

import asyncio
import html
import os
import threading
import time
import traceback
from typing import Any

import ipywidgets as w
from IPython.display import display

from ._ipykernel import route_to_subshell
from .errors import describe
from .suspend import Decision, evaluate


def _comms(widget: Any) -> list[Any]:
    """The comms of ``widget`` and of every widget inside it."""
    out, stack = [], [widget]
    while stack:
        node = stack.pop()
        if getattr(node, "comm", None) is not None:
            out.append(node.comm)
        stack.extend(getattr(node, "children", ()))
    return out


def _error_html(error: BaseException, frames: int = 4) -> str:
    errors = getattr(error, "errors", None) or [error]
    last = errors[-1]
    here = os.path.dirname(__file__)  # durable_nb's own frames say nothing to the user
    stack = [f for f in traceback.extract_tb(last.__traceback__) if not f.filename.startswith(here)]
    shown = "".join(traceback.format_list(stack[-frames:]))
    return (
        f"<div><b>{html.escape(type(last).__name__)}</b>: {html.escape(str(last))}"
        f" &middot; {len(errors)} attempt{'s' * (len(errors) != 1)}</div>"
        f"<pre style='font-size:11px;max-height:12em;overflow:auto'>{html.escape(shown)}</pre>"
    )


class _Waiting:
    """A prompt the cell waits on: ``box`` shown, ``_chosen`` set once ``decision`` is made."""

    box: Any
    decision: Decision | None
    _chosen: threading.Event

    def _close(self, message: str) -> None:
        raise NotImplementedError

    def wait(self) -> Decision:
        """Show the prompt; block the calling thread until a button is pressed.

        An interrupt at any point after it is shown closes it and propagates.
        """
        try:
            display(self.box)
            while not self._chosen.wait(0.1):
                pass
        except KeyboardInterrupt:
            self._close("✖ interrupted")
            raise
        return self.decision  # type: ignore[return-value]

    async def wait_async(self) -> Decision:
        """Like :meth:`wait`, without blocking the event loop of an async cell."""
        try:
            display(self.box)
            while not self._chosen.is_set():
                await asyncio.sleep(0.1)
        except (KeyboardInterrupt, asyncio.CancelledError):
            self._close("✖ interrupted")
            raise
        return self.decision  # type: ignore[return-value]


class SuspensionPrompt(_Waiting):
    """Retry / Skip with value / Raise, shown where a step failed; the cell waits on it."""

    def __init__(self, step: str, args: str, error: BaseException) -> None:
        self.decision: Decision | None = None
        self._chosen = threading.Event()
        self.title = w.HTML(
            f"<b>⚠ durable_nb: step <code>{html.escape(step + args)}</code> failed; "
            "the cell is waiting for you</b>"
        )
        self.retry = w.Button(description="Retry", button_style="success", icon="redo")
        self.value = w.Text(placeholder="a Python expression", description="Skip with:")
        self.skip = w.Button(description="Skip", button_style="warning", icon="forward")
        self.raise_ = w.Button(description="Raise", button_style="danger", icon="times")
        self.feedback = w.Output()
        self.box = w.VBox(
            [self.title, w.HTML(_error_html(error)),
             w.HBox([self.retry, self.value, self.skip, self.raise_]), self.feedback],
        )  # fmt: skip
        self.retry.on_click(lambda _: self._choose(Decision("retry")))
        self.raise_.on_click(lambda _: self._choose(Decision("raise")))
        self.skip.on_click(self._on_skip)
        # Routed before it is shown (in wait): a click cannot come before it is rendered.
        #: False when clicks could not reach this kernel while the cell waits.
        self.reachable = route_to_subshell(_comms(self.box))

    def _on_skip(self, _: Any) -> None:
        try:
            value = evaluate(self.value.value)
        except Exception as exc:
            self.feedback.append_stderr(f"cannot use that value: {describe(exc)}\n")
            return
        self._choose(Decision("skip", value))

    def _choose(self, decision: Decision) -> None:
        if self._chosen.is_set():
            return
        self.decision = decision
        self._close(f"✔ {decision.action} chosen; the cell goes on")
        self._chosen.set()

    def _close(self, message: str) -> None:
        for button in (self.retry, self.skip, self.raise_, self.value):
            button.disabled = True
        self.title.value = f"<b>{html.escape(message)}</b>"


class ResumePanel:
    """Shown when the journal's last cell died: Restore namespace / Resume cell / Start fresh."""

    def __init__(self, summary: str, actions: dict[str, Any]) -> None:
        self.output = w.Output()
        buttons = []
        for label, (style, action) in actions.items():
            button = w.Button(description=label, button_style=style, layout={"width": "auto"})
            button.on_click(self._runner(action))
            buttons.append(button)
        self.buttons = buttons
        self.box = w.VBox([w.HTML(summary), w.HBox(buttons), self.output])

    def show(self) -> None:
        display(self.box)

    def _runner(self, action: Any) -> Any:
        def run(_: Any) -> None:
            with self.output:
                if threading.current_thread() is not threading.main_thread():
                    # ipykernel 7.0-7.3 in JupyterLab: the click arrived on a subshell
                    # thread, and restoring or re-running cells there would race the shell.
                    print(
                        "durable_nb: this kernel delivered the click on another thread; "
                        "run %durable resume (or %durable restore) in a cell instead"
                    )
                    return
                for button in self.buttons:
                    button.disabled = True
                action()

        return run


class StatusView:
    """``%durable status`` as a widget that follows the kernel while cells run."""

    def __init__(self, render: Any) -> None:
        self._render = render
        self.html = w.HTML(render())
        self._last = 0.0
        self._timer: threading.Timer | None = None

    def show(self) -> None:
        display(self.html)

    def update(self, *_: Any, **__: Any) -> None:
        """Re-render, at most ten times a second (step events can be much faster)."""
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            self.html.value = self._render()
        elif self._timer is None:
            self._timer = threading.Timer(0.1, self._flush)
            self._timer.daemon = True
            self._timer.start()

    def _flush(self) -> None:
        self._timer = None
        self._last = time.monotonic()
        self.html.value = self._render()


class QuestionPrompt(_Waiting):
    """``dnb.ask``/``dnb.confirm`` in place: a button per choice (Yes / No), or a text box."""

    def __init__(self, prompt: str, choices: list | None, yes_no: bool, default: Any) -> None:
        self.decision: Decision | None = None
        self._chosen = threading.Event()
        self.title = w.HTML(f"<b>❓ {html.escape(prompt)}</b>")
        if yes_no:
            options: list[tuple[str, Any]] = [("Yes", True), ("No", False)]
        else:
            options = [(str(c), c) for c in choices or ()]
        self.buttons = []
        for n, (label, value) in enumerate(options):
            primary = (default is None and n == 0) or (default is not None and value == default)
            b = w.Button(description=label, button_style="primary" if primary else "",
                         tooltip=label, layout=w.Layout(width="auto"))  # fmt: skip
            b.on_click(lambda _, v=value: self._choose(Decision("answer", v)))
            self.buttons.append(b)
        self.text = None
        if not options:
            self.text = w.Text(value="" if default is None else str(default),
                               placeholder="your answer", continuous_update=False)  # fmt: skip
            ok = w.Button(description="Answer", button_style="primary")
            ok.on_click(lambda _: self._choose(Decision("answer", self.text.value)))
            self.text.on_submit(lambda _: self._choose(Decision("answer", self.text.value)))
            self.buttons = [ok]
        row = [self.text, *self.buttons] if self.text is not None else self.buttons
        self.box = w.VBox([self.title, w.HBox(row)])
        self.reachable = route_to_subshell(_comms(self.box))

    def _choose(self, decision: Decision) -> None:
        if self._chosen.is_set():
            return
        self.decision = decision
        self._close(f"✔ answered: {decision.value}")
        self._chosen.set()

    def _close(self, message: str) -> None:
        for widget in (*self.buttons, *([self.text] if self.text is not None else [])):
            widget.disabled = True
        self.title.value = f"{self.title.value} <span>{html.escape(message)}</span>"
