"""The widgets: the suspension prompt of a failed step, questions, the resume panel, status.

Callbacks may run off the main thread (a subshell); they only hand decisions over.
"""

from __future__ import annotations

import asyncio
import getpass
import html
import os
import re
import reprlib
import threading
import time
import traceback
import uuid
import warnings
from typing import Any

import ipywidgets as w
from IPython.display import display, update_display

from ._ipykernel import busy, kernel, route_to_subshell
from .errors import describe
from .suspend import Decision, evaluate

_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _bundle(plain: str, rich: str, widget: Any = None) -> dict[str, Any]:
    """A display's data: ``widget``'s view (when given) over a static text/plain and
    text/html fallback, which is all that remains once the widget is settled."""
    data: dict[str, Any] = {"text/plain": plain, "text/html": rich}
    if widget is not None:
        data[_WIDGET_VIEW] = {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}
    return data


def _comms(widget: Any) -> list[Any]:
    """The comms of ``widget`` and of every widget inside it."""
    out, stack = [], [widget]
    while stack:
        node = stack.pop()
        if getattr(node, "comm", None) is not None:
            out.append(node.comm)
        stack.extend(getattr(node, "children", ()))
    return out


def _where(filename: str) -> str:
    """``Cell In[3]`` for a cell's temporary file (as IPython shows it), else the name."""
    try:
        from IPython import get_ipython

        number = get_ipython().compile._filename_map.get(filename)
    except Exception:
        number = None
    return f"Cell In[{number}]" if number is not None else filename


def _frames(error: BaseException, frames: int = 4) -> str:
    """The last ``frames`` frames of ``error``'s traceback outside durable_nb."""
    here = os.path.dirname(__file__)  # durable_nb's own frames say nothing to the user
    stack = [
        f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(here)
    ]
    return "".join(
        f"{_where(f.filename)}, line {f.lineno}, in {f.name}\n"
        + (f"    {f.line}\n" if f.line else "")
        for f in stack[-frames:]
    )


def _attempts(error: BaseException) -> list[BaseException]:
    return list(getattr(error, "errors", None) or [error])


def _error_html(error: BaseException) -> str:
    errors = _attempts(error)
    last = errors[-1]
    return (
        f"<div><b>{html.escape(type(last).__name__)}</b>: {html.escape(str(last))}</div>"
        f"<pre style='font-size:11px;max-height:12em;overflow:auto;margin:2px 0'>"
        f"{html.escape(_frames(last))}</pre>"
    )


def _details_html(error: BaseException, status: str) -> str:
    """The "Details" toggle: every attempt's error and what the status view would show."""
    rows = "".join(
        f"<li>attempt {i}: {html.escape(describe(e))}</li>"
        for i, e in enumerate(_attempts(error), 1)
    )
    return (
        "<details><summary style='cursor:pointer'>Details</summary>"
        f"<ul style='margin:2px 0'>{rows}</ul>"
        f"<pre style='font-size:11px;margin:2px 0'>{html.escape(status)}</pre></details>"
    )


# One primary action (Retry) and quieter others, as JupyterLab's own dialogs do; the
# colours pass WCAG AA (4.5:1) against their text.
_PRIMARY = {"button_color": "#1565c0", "text_color": "white"}
_BUTTON = {"width": "auto", "flex": "0 0 auto", "margin": "2px 4px 2px 0"}


def _button(label: str, icon: str, primary: bool = False) -> w.Button:
    button = w.Button(description=label, icon=icon, tooltip=label, layout=_BUTTON)
    if primary:
        for key, value in _PRIMARY.items():
            setattr(button.style, key, value)
    return button


class _Waiting:
    """A prompt the cell waits on: shown with a display id and a static fallback.

    Subclasses set ``box``, ``decision``, ``_chosen`` and ``_display_id`` and give
    :meth:`bundle` (what is displayed; ``final``: the static story alone) and
    :meth:`_close` (``head``, ``tail``: what happened). While it waits the kernel reads
    busy; once decided, the widget is replaced by the story (a saved notebook keeps it).
    """

    box: Any
    decision: Decision | None
    _chosen: threading.Event
    _display_id: str

    def bundle(self, final: bool) -> dict[str, Any]:
        raise NotImplementedError

    def _close(self, head: str, tail: str) -> None:
        raise NotImplementedError

    def _show(self) -> None:
        display(self.bundle(final=False), raw=True, display_id=self._display_id)

    def _settle(self) -> None:
        """Replace the widget by the static story (a saved notebook keeps it)."""
        try:
            update_display(self.bundle(final=True), raw=True, display_id=self._display_id)
            self.box.close()
        except Exception:
            pass

    def wait(self) -> Decision:
        """Show the prompt; block the calling thread until a button is pressed.

        An interrupt at any point after it is shown closes it and propagates.
        """
        __tracebackhide__ = True
        with busy(kernel()):
            try:
                self._show()
                while not self._chosen.wait(0.1):
                    pass
            except KeyboardInterrupt:
                self._close(*_INTERRUPTED)
                raise
            finally:
                self._settle()
        return self.decision  # type: ignore[return-value]

    async def wait_async(self) -> Decision:
        """Like :meth:`wait`, without blocking the event loop of an async cell."""
        __tracebackhide__ = True
        with busy(kernel()):
            try:
                self._show()
                while not self._chosen.is_set():
                    await asyncio.sleep(0.1)
            except (KeyboardInterrupt, asyncio.CancelledError):
                self._close(*_INTERRUPTED)
                raise
            finally:
                self._settle()
        return self.decision  # type: ignore[return-value]


class SuspensionPrompt(_Waiting):
    """Retry / Skip with value / Raise, shown where a step failed; the cell waits on it.

    It is shown with a display id and a static fallback (text/plain and text/html); once
    the person decides, the display is replaced by the static story of what happened, so
    a saved notebook reopened without a kernel still tells it.
    """

    def __init__(self, step: str, args: str, error: BaseException, details: Any = None) -> None:
        self.decision: Decision | None = None
        self._chosen = threading.Event()
        self.call = step + args
        self.error = error
        n = len(_attempts(error))
        last = describe(_attempts(error)[-1])
        self.failure = f"step {self.call} failed after {n} attempt{'s' * (n != 1)}: {last}"
        self.title = w.HTML(
            "<div style='white-space:nowrap;overflow:hidden;text-overflow:ellipsis' "
            f"title='{html.escape(self.failure)}'>⚠ <b>The cell is waiting for you</b>: "
            f"durable_nb: step <code>{html.escape(self.call)}</code> failed after {n} "
            f"attempt{'s' * (n != 1)}</div>"
        )
        self.retry = _button("Retry", "redo", primary=True)
        self.value = w.Text(
            placeholder="a Python expression, e.g. None",
            description="Skip, returning:",
            style={"description_width": "initial"},
            layout={"width": "auto", "flex": "1 1 16em", "min_width": "16em"},
        )
        self.skip = _button("Skip", "forward")
        self.raise_ = _button("Raise", "times")
        self.hint = w.HTML(
            "<div style='font-size:12px;line-height:1.4'>Retry runs the step again. "
            "Skip does not run it: the value typed "
            "(evaluated in the notebook) becomes the step's return value and the cell goes "
            "on. Raise stops the cell here with the error.</div>"
        )
        self.feedback = w.Output()
        try:
            status = details() if details is not None else ""
        except Exception:  # the details must never cost the prompt
            status = ""
        self.details = w.HTML(_details_html(error, status))
        self.box = w.VBox(
            [self.title, w.HTML(_error_html(error)),
             w.HBox([self.retry, self.value, self.skip, self.raise_],
                    layout={"flex_flow": "row wrap", "align_items": "center"}),
             self.hint, self.feedback, self.details],
        )  # fmt: skip
        self.retry.on_click(lambda _: self._choose(Decision("retry")))
        self.raise_.on_click(lambda _: self._choose(Decision("raise")))
        self.skip.on_click(self._on_skip)
        with warnings.catch_warnings():  # on_submit is the only way to hear Enter alone
            warnings.simplefilter("ignore", DeprecationWarning)
            self.value.on_submit(self._on_skip)
        self._display_id = f"durable-nb-{uuid.uuid4().hex}"
        self.outcome = ""
        # Routed before it is shown (in wait): a click cannot come before it is rendered.
        #: False when clicks could not reach this kernel while the cell waits.
        self.reachable = route_to_subshell(_comms(self.box))

    def _on_skip(self, _: Any) -> None:
        try:
            value = evaluate(self.value.value)
        except Exception as exc:
            self.feedback.clear_output()
            self.feedback.append_stderr(f"cannot use that value: {describe(exc)}\n")
            return
        self.feedback.clear_output()
        self._choose(Decision("skip", value))

    def _choose(self, decision: Decision) -> None:
        if self._chosen.is_set():
            return
        self.decision = decision
        self._close(*_OUTCOME[decision.action](decision))
        self._chosen.set()

    def _close(self, head: str, tail: str) -> None:
        for button in (self.retry, self.skip, self.raise_, self.value):
            button.disabled = True
        self.outcome = f"{head} {_who()} at {time.strftime('%H:%M')}: {tail}"
        self.title.value = f"<b>{html.escape(self.outcome)}</b>"

    def bundle(self, final: bool) -> dict[str, Any]:
        """What is displayed: the widget with a static fallback, or (``final``) the story."""
        story = f"durable_nb: {self.failure}"
        if self.outcome:
            story += f" — {self.outcome}"
        else:
            story += " — the cell is waiting for a decision (Retry, Skip or Raise)"
        rich = f"<div>⚠ {html.escape(story)}{_error_html(self.error)}</div>"
        return _bundle(story, rich, None if final else self.box)


_OUTCOME = {
    "retry": lambda d: ("↻ Retry chosen", "the step runs again and the cell goes on"),
    "skip": lambda d: (
        f"⏭ Skipped with {reprlib.repr(d.value)}",
        "the step returns that value and the cell goes on",
    ),
    "raise": lambda d: ("✖ Raise chosen", "the cell stops here with the error"),
}
_INTERRUPTED = ("✖ Interrupted", "the cell was interrupted and stopped")


def _who() -> str:
    """Who decided, as far as the kernel knows (``by alice``)."""
    try:
        return f"by {getpass.getuser()}"
    except Exception:
        return "decided"


class ResumePanel:
    """Shown when the journal's last cell died: Restore namespace / Resume cell / Start fresh.

    ``summary`` is plain text; ``actions`` maps a label to ``(primary, action)``, or to
    ``(primary, action, False)`` for an action that leaves the choice open (Show lost
    outputs). Like the suspension prompt, the panel is replaced by a static line once a
    choosing button is pressed; what actions print goes to an Output widget below it.
    """

    def __init__(self, summary: str, actions: dict[str, Any]) -> None:
        self.summary = summary
        self.output = w.Output()
        buttons = []
        for label, (primary, action, *final) in actions.items():
            button = _button(label, "", primary=primary)
            button.on_click(self._runner(label, action, final != [False]))
            buttons.append(button)
        self.buttons = buttons
        self.panel = w.VBox(
            [w.HTML(f"<b>⚠ durable_nb: {html.escape(summary)}.</b>"),
             w.HBox(buttons, layout={"flex_flow": "row wrap"})]
        )  # fmt: skip
        self.box = self.panel
        self._display_id = f"durable-nb-{uuid.uuid4().hex}"
        self.outcome = ""

    def bundle(self, final: bool) -> dict[str, Any]:
        """The panel with a static fallback, or (``final``) the static line alone."""
        story = f"durable_nb: {self.summary}." + (f" {self.outcome}" if self.outcome else "")
        return _bundle(story, f"<b>⚠ {html.escape(story)}</b>", None if final else self.box)

    def show(self) -> None:
        display(self.bundle(final=False), raw=True, display_id=self._display_id)
        display(self.output)

    def _runner(self, label: str, action: Any, final: bool = True) -> Any:
        def run(button: Any) -> None:
            with self.output:
                if threading.current_thread() is not threading.main_thread():
                    # ipykernel 7.0-7.3 in JupyterLab: the click arrived on a subshell
                    # thread, and restoring or re-running cells there would race the shell.
                    print(
                        "durable_nb: this kernel delivered the click on another thread; "
                        "run %durable resume (or %durable restore) in a cell instead"
                    )
                    return
                if not final:  # once is enough; the other choices stay open
                    button.disabled = True
                    action()
                    return
                for each in self.buttons:
                    each.disabled = True
                self.outcome = f"{label} chosen {_who()} at {time.strftime('%H:%M')}."
                try:  # the static line replaces the panel (a saved notebook keeps it)
                    update_display(self.bundle(final=True), raw=True, display_id=self._display_id)
                    self.panel.close()
                except Exception:
                    pass
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
        """Display it, with the first rendering as a static fallback (nbconvert, GitHub)."""
        shown = self.html.value
        display(_bundle(html.unescape(re.sub(r"<[^>]+>", "", shown)), shown, self.html), raw=True)

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
        self.prompt = prompt
        self.outcome = ""
        self._display_id = f"durable-nb-{uuid.uuid4().hex}"
        self.title = w.HTML(f"<b>❓ {html.escape(prompt)}</b>")
        if yes_no:
            options: list[tuple[str, Any]] = [("Yes", True), ("No", False)]
        else:
            options = [(str(c), c) for c in choices or ()]
        self.buttons = []
        for n, (label, value) in enumerate(options):
            primary = (default is None and n == 0) or (default is not None and value == default)
            b = _button(label, "", primary=primary)
            b.on_click(lambda _, v=value: self._choose(Decision("answer", v)))
            self.buttons.append(b)
        self.text = None
        if not options:
            self.text = w.Text(value="" if default is None else str(default),
                               placeholder="your answer", continuous_update=False)  # fmt: skip
            ok = _button("Answer", "", primary=True)
            ok.on_click(lambda _: self._choose(Decision("answer", self.text.value)))
            with warnings.catch_warnings():  # on_submit is the only way to hear Enter alone
                warnings.simplefilter("ignore", DeprecationWarning)
                self.text.on_submit(lambda _: self._choose(Decision("answer", self.text.value)))
            self.buttons = [ok]
        row = [self.text, *self.buttons] if self.text is not None else self.buttons
        self.box = w.VBox([self.title, w.HBox(row, layout={"flex_flow": "row wrap"})])
        self.reachable = route_to_subshell(_comms(self.box))

    def _choose(self, decision: Decision) -> None:
        if self._chosen.is_set():
            return
        self.decision = decision
        self._close(f"✔ answered {reprlib.repr(decision.value)}", "the cell goes on")
        self._chosen.set()

    def _close(self, head: str, tail: str) -> None:
        for widget in (*self.buttons, *([self.text] if self.text is not None else [])):
            widget.disabled = True
        self.outcome = f"{head} {_who()} at {time.strftime('%H:%M')}: {tail}"
        self.title.value = (
            f"<b>❓ {html.escape(self.prompt)}</b> <span>{html.escape(self.outcome)}</span>"
        )

    def bundle(self, final: bool) -> dict[str, Any]:
        story = f"durable_nb: {self.prompt} — " + (self.outcome or "waiting for an answer")
        return _bundle(story, f"<b>{html.escape(story)}</b>", None if final else self.box)
