"""``@dnb.step``: a journaled external call with retries, replayed after a restart.

A step's identity is (cell, name, argument fingerprint, occurrence) or an explicit key.
"""

from __future__ import annotations

import functools
import inspect
import json
import reprlib
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from . import runtime
from .errors import DurableError, StepFailed, describe
from .retry import Attempts, RetryPolicy, current_step

__all__ = ["Step", "StepCall", "step", "step_id", "step_of"]

F = TypeVar("F", bound=Callable[..., Any])

_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxdict = 60, 60, 6, 6


def step(
    fn: F | None = None,
    *,
    retries: int = RetryPolicy.retries,
    initial: float = RetryPolicy.initial,
    backoff: float = RetryPolicy.backoff,
    max_interval: float = RetryPolicy.max_interval,
    timeout: float | None = RetryPolicy.timeout,
    non_retryable: tuple[type[BaseException], ...] = (),
    allow_overlap: bool = False,
    key: str | Callable[..., Any] | None = None,
    name: str | None = None,
    on_failure: str | None = None,
) -> Any:
    """Make ``fn`` a durable step: journaled, retried, replayed when its cell re-runs.

    Use bare (``@dnb.step``) or with options (``@dnb.step(retries=5)``); works on
    plain and ``async def`` functions.

    Parameters
    ----------
    retries, initial, backoff, max_interval, timeout, non_retryable, allow_overlap
        The :class:`RetryPolicy` (defaults: 3 retries, 1 s doubling up to 100 s,
        no timeout). An attempt that times out raises :class:`StepTimeout`. An
        ``async def`` attempt is cancelled and retried. A plain function's attempt
        cannot be stopped and goes on in its thread, so it is not retried: the
        StepTimeout is raised at once, unless ``allow_overlap=True`` says that a
        retry running beside the abandoned attempt is harmless.
    key : str or callable, optional
        An explicit identity, notebook-wide: a string, or a function of the
        call's arguments returning one. Calls with the same key replay the
        same result wherever they are made.
    name : str, optional
        The step's name in the journal; defaults to the function's qualified name.
    on_failure : {"suspend", "raise"}, optional
        When retries run out in an interactive kernel, ``suspend`` (the default, set
        per notebook by ``%durable on_failure``) waits in place for Retry / Skip with
        value / Raise; ``raise`` raises at once. Headless runs always raise.

    Returns
    -------
    The wrapped function. When retries run out it raises :class:`StepFailed`
    (``.errors`` holds each attempt's error); a ``non_retryable`` error is raised as is.
    """
    policy = RetryPolicy(retries, initial, backoff, max_interval, timeout, non_retryable,
                         allow_overlap)  # fmt: skip
    if on_failure not in (None, "suspend", "raise"):
        raise ValueError(f"on_failure must be 'suspend' or 'raise', not {on_failure!r}")

    def wrap(f: F) -> F:
        return Step(f, policy, key, name, on_failure).wrapper()  # type: ignore[return-value]

    return wrap(fn) if fn is not None else wrap


def step_id() -> str:
    """A stable idempotency key for the step being executed.

    The same across retries and after a restart, so a service that honours
    idempotency keys performs the call once even when the step runs again.
    """
    identity = current_step()
    if identity is None:
        raise DurableError("dnb.step_id() is only available inside a @dnb.step function")
    return f"dnb-{identity}"


def step_of(fn: Any) -> Step | None:
    """The :class:`Step` behind a ``@dnb.step`` function, or None for anything else."""
    step = getattr(fn, "_dnb_step", None)
    return step if isinstance(step, Step) else None


class Step:
    """The machinery behind one decorated function: its body, policy, key and name."""

    def __init__(self, fn: Callable[..., Any], policy: RetryPolicy, key: Any, name: str | None,
                 on_failure: str | None = None):  # fmt: skip
        self.fn, self.policy, self.key, self.on_failure = fn, policy, key, on_failure
        qual = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
        self.name = name or qual
        #: durable_nb's own steps (the clock): never counted, never suspended.
        self.internal = self.name.startswith("dnb.")

    def key_of(self, args: tuple, kwargs: dict) -> str | None:
        """The explicit identity of a call with these arguments, or None."""
        key = self.key(*args, **kwargs) if callable(self.key) else self.key
        return None if key is None else str(key)

    def wrapper(self) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(self.fn):

            @functools.wraps(self.fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                __tracebackhide__ = True  # IPython shows the person's frames
                call = StepCall.begin(self, args, kwargs)
                if call.done:
                    return call.value
                return call.finish(await call.run_async())

            wrapper = run_async
        else:

            @functools.wraps(self.fn)
            def run(*args: Any, **kwargs: Any) -> Any:
                __tracebackhide__ = True  # IPython shows the person's frames
                call = StepCall.begin(self, args, kwargs)
                if call.done:
                    return call.value
                return call.finish(call.run_sync())

            wrapper = run
        wrapper.policy = self.policy  # type: ignore[attr-defined]
        wrapper.step_name = self.name  # type: ignore[attr-defined]
        wrapper._dnb_step = self  # type: ignore[attr-defined]  # for step_of()
        return wrapper


class StepCall:
    """One call of a step: identity, replay, attempts, asking the person, journaling.

    ``dnb.map`` makes one per item with the constructor (identity computed for all
    items at once), runs its attempts elsewhere, and hands the outcome back to
    :meth:`finish` or :meth:`fail`; a single call goes through :meth:`begin` and
    :meth:`run_sync` / :meth:`run_async`.

    Parameters
    ----------
    step : Step
    args, kwargs
        The call's arguments.
    rt : Runtime, optional
        Where it is journaled and whom to ask; None for none.
    identity : str, optional
        Its identity (``rt.identity``); a random one when not journaled.
    occurrence : int
        How many same calls this cell made before it.
    key : str, optional
        Its explicit key, if the step has one.
    nested : bool
        A call made inside another step: part of that one, run once and not journaled.
    """

    def __init__(self, step: Step, args: tuple, kwargs: dict, rt: runtime.Runtime | None = None,
                 identity: str | None = None, occurrence: int = 0, key: str | None = None,
                 nested: bool = False) -> None:  # fmt: skip
        self.step, self.args, self.kwargs, self.rt = step, args, kwargs, rt
        # Un-journaled calls still get an identity, for dnb.step_id().
        self.identity = identity if identity is not None else uuid.uuid4().hex
        self.occurrence, self.key, self.nested = occurrence, key, nested
        #: True when :meth:`begin` found the result in the journal (then in ``value``).
        self.done, self.value = False, None
        #: True once a final error was counted as failed (a later success takes it back).
        self.failed = False
        self.started = time.time()
        self.attempts: Attempts
        self.restart()

    @classmethod
    def begin(cls, step: Step, args: tuple, kwargs: dict) -> StepCall:
        """A call made in this thread: identified and, when the journal has it, replayed."""
        if current_step() is not None:  # a step inside a step is part of the outer one
            return cls(step, args, kwargs, nested=True)
        rt = runtime.current()
        if rt is None or not rt.enabled:
            call = cls(step, args, kwargs, rt)
        else:
            key = step.key_of(args, kwargs)
            identity, occurrence = rt.identity(step.name, args, kwargs, key)
            call = cls(step, args, kwargs, rt, identity, occurrence, key)
            value = rt.replay(identity, step.name)
            if value is not runtime.MISS:
                call.done, call.value = True, value
                if not step.internal:
                    rt.tally("replayed")
        if rt is not None and not step.internal:  # the status view follows this call
            call.attempts.notify = rt.notify
        return call

    def restart(self) -> Attempts:
        """A fresh retry budget (the attempts' log starts over): set and returned."""
        self.attempts = Attempts(self.step.name, self.step.policy, self.identity)
        return self.attempts

    # -- running here ---------------------------------------------------------------

    def run_sync(self) -> Any:
        """Run the attempts in this thread; when they run out, ask the person or raise."""
        __tracebackhide__ = True  # IPython shows the person's frames
        if self.nested:
            return self.step.fn(*self.args, **self.kwargs)
        while True:
            try:
                return self.attempts.run_sync(self.step.fn, self.args, self.kwargs)
            except Exception as exc:
                error, prompt = exc, self._after(exc, asynchronous=False)
            if self._decided(prompt(), error):
                return self.value

    async def run_async(self) -> Any:
        """:meth:`run_sync` for an ``async def`` step."""
        __tracebackhide__ = True  # IPython shows the person's frames
        if self.nested:
            return await self.step.fn(*self.args, **self.kwargs)
        while True:
            try:
                return await self.attempts.run_async(self.step.fn, self.args, self.kwargs)
            except Exception as exc:
                error, prompt = exc, self._after(exc, asynchronous=True)
            if self._decided(await prompt(), error):
                return self.value

    def _after(self, error: Exception, asynchronous: bool) -> Callable[[], Any]:
        """Journal a final error; return what awaits the person's decision, or raise it."""
        __tracebackhide__ = True  # IPython shows the person's frames
        self.fail(error)
        prompt = self.ask(error, asynchronous) if isinstance(error, StepFailed) else None
        if prompt is None:
            raise error
        return prompt

    def _decided(self, decision: Any, error: Exception) -> bool:
        """True for Skip (its value in ``value``), False for Retry; Raise raises ``error``."""
        __tracebackhide__ = True  # IPython shows the person's frames
        if decision is None or decision.action == "raise":
            raise error
        if self.attempts.decided(decision):
            self.value = decision.value
            return True
        return False

    def ask(self, error: BaseException, asynchronous: bool = False) -> Callable[[], Any] | None:
        """What awaits the person's decision on ``error``, or None when the step must raise.

        ``on_failure="raise"`` (the step's, else the notebook's) and durable_nb's own
        steps never ask; otherwise the runtime's asker decides how (``rt.ask``).
        """
        rt = self.rt
        if rt is None or self.step.internal:
            return None
        if (self.step.on_failure or rt.on_failure) == "raise":
            return None
        return rt.ask(self.step.name, self.shown_args(), error, asynchronous)

    # -- journaling -------------------------------------------------------------------

    def shown_args(self) -> str:
        """The arguments as the person sees them: ``(1, 'a', x=[...])``, shortened."""
        args = ", ".join([_repr.repr(a) for a in self.args]
                         + [f"{k}={_repr.repr(v)}" for k, v in self.kwargs.items()])  # fmt: skip
        return f"({args})"

    def _row(self, status: str, **extra: Any) -> dict[str, Any]:
        return dict(identity=self.identity, name=self.step.name, args=self.shown_args(),
                    occurrence=self.occurrence, key=self.key, status=status,
                    attempts=len(self.attempts.log),
                    attempt_errors=json.dumps(self.attempts.log),
                    started=self.started, ended=time.time(), **extra)  # fmt: skip

    def fail(self, error: BaseException, sync: bool = True) -> None:
        """Journal ``error`` as the call's final outcome (durable now, or at ``rt.sync()``)."""
        rt = self.rt
        if rt is None or self.nested:
            return
        if not self.step.internal:
            rt.tally("failed")
            self.failed = True
        rt.record(self._row("error", error=describe(error)), sync)

    def finish(self, value: Any, sync: bool = True) -> Any:
        """Journal the result (durable now, or at the next ``rt.sync()``); return it."""
        rt = self.rt
        if rt is None or self.nested:
            return value
        if not self.step.internal:
            rt.tally("ran")
            if self.failed:
                rt.tally("failed", -1)
        kind, inline, blob = rt.store(self.step.name, value)
        status = "ok" if kind is not None else "unsaved"
        rt.record(self._row(status, kind=kind, result=inline, blob=blob), sync)
        if self.attempts.notify is not None:
            rt.notify("done", step=self.step.name)
        return value
