"""``@dnb.step``: a journaled external call with retries, replayed after a restart.

A step's identity is (cell, name, argument fingerprint, occurrence) or an explicit key.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import reprlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import runtime
from .errors import DurableError, StepFailed, StepTimeout, describe

F = TypeVar("F", bound=Callable[..., Any])

# The step being executed in this thread or task (its identity), for step_id().
_CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("dnb_step", default=None)

_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxdict = 60, 60, 6, 6


@dataclass(frozen=True)
class RetryPolicy:
    """How a step retries: Temporal's RetryPolicy, but finite by default.

    Attempt ``n`` (from 1) that fails waits ``min(initial * backoff ** (n - 1),
    max_interval)`` seconds before the next, up to ``retries + 1`` attempts.
    """

    retries: int = 3
    """Retries after the first attempt; 0 means a single attempt."""
    initial: float = 1.0
    """Seconds to wait after the first failed attempt."""
    backoff: float = 2.0
    """Factor applied to the wait after each further failure."""
    max_interval: float = 100.0
    """Longest wait between attempts, in seconds (Temporal's default: 100 × initial)."""
    timeout: float | None = None
    """Longest time one attempt may take, in seconds; ``None`` for no limit."""
    non_retryable: tuple[type[BaseException], ...] = ()
    """Exception types raised at once, without retrying."""

    def __post_init__(self) -> None:
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be an integer ≥ 0, not {self.retries!r}")
        if self.initial < 0 or self.max_interval < 0:
            raise ValueError("initial and max_interval must be ≥ 0 seconds")
        if self.backoff < 1:
            raise ValueError(f"backoff must be ≥ 1, not {self.backoff!r}")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds or None, not {self.timeout!r}")
        nr = self.non_retryable
        nr = (nr,) if isinstance(nr, type) else tuple(nr)
        object.__setattr__(self, "non_retryable", nr)
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in nr):
            raise ValueError("non_retryable must be a tuple of exception types")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (from 1)."""
        return min(self.initial * self.backoff ** (attempt - 1), self.max_interval)


def step(
    fn: F | None = None,
    *,
    retries: int = RetryPolicy.retries,
    initial: float = RetryPolicy.initial,
    backoff: float = RetryPolicy.backoff,
    max_interval: float = RetryPolicy.max_interval,
    timeout: float | None = RetryPolicy.timeout,
    non_retryable: tuple[type[BaseException], ...] = (),
    key: str | Callable[..., Any] | None = None,
    name: str | None = None,
    on_failure: str | None = None,
) -> Any:
    """Make ``fn`` a durable step: journaled, retried, replayed when its cell re-runs.

    Use bare (``@dnb.step``) or with options (``@dnb.step(retries=5)``); works on
    plain and ``async def`` functions.

    Parameters
    ----------
    retries, initial, backoff, max_interval, timeout, non_retryable
        The :class:`RetryPolicy` (defaults: 3 retries, 1 s doubling up to 100 s,
        no timeout). A timed-out attempt raises :class:`StepTimeout` and is retried;
        a sync attempt that times out is abandoned in its thread, not stopped.
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
    policy = RetryPolicy(retries, initial, backoff, max_interval, timeout, non_retryable)
    if on_failure not in (None, "suspend", "raise"):
        raise ValueError(f"on_failure must be 'suspend' or 'raise', not {on_failure!r}")

    def wrap(f: F) -> F:
        return _Step(f, policy, key, name, on_failure).wrapper()  # type: ignore[return-value]

    return wrap(fn) if fn is not None else wrap


def step_id() -> str:
    """A stable idempotency key for the step being executed.

    The same across retries and after a restart, so a service that honours
    idempotency keys performs the call once even when the step runs again.
    """
    identity = _CURRENT.get()
    if identity is None:
        raise DurableError("dnb.step_id() is only available inside a @dnb.step function")
    return f"dnb-{identity}"


class _Step:
    """The machinery behind one decorated function."""

    def __init__(self, fn: Callable[..., Any], policy: RetryPolicy, key: Any, name: str | None,
                 on_failure: str | None = None):  # fmt: skip
        self.fn, self.policy, self.key, self.on_failure = fn, policy, key, on_failure
        qual = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
        self.name = name or qual
        self.internal = self.name.startswith("dnb.")

    def wrapper(self) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(self.fn):

            @functools.wraps(self.fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                call = _Call.begin(self, args, kwargs)
                if call.done:
                    return call.value
                return call.finish(await call.attempts_async())
        else:

            @functools.wraps(self.fn)
            def run(*args: Any, **kwargs: Any) -> Any:
                call = _Call.begin(self, args, kwargs)
                if call.done:
                    return call.value
                return call.finish(call.attempts_sync())

        wrapper = run_async if inspect.iscoroutinefunction(self.fn) else run
        wrapper.policy = self.policy  # type: ignore[attr-defined]
        wrapper.step_name = self.name  # type: ignore[attr-defined]
        wrapper._dnb_step = self  # type: ignore[attr-defined]  # for dnb.map
        return wrapper


class Attempts:
    """The retry loop of one step call, apart from any journal (workers run it too).

    ``log`` gets one entry per attempt; the final error is raised: :class:`StepFailed`
    when retries run out, a ``non_retryable`` error as is.
    """

    def __init__(self, name: str, policy: RetryPolicy, identity: str) -> None:
        self.name, self.policy, self.identity = name, policy, identity
        self.log: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        #: Called as ``notify(event, **details)`` at each attempt and backoff (status view).
        self.notify: Callable[..., None] | None = None

    def decided(self, decision: Any) -> bool:
        """Log a person's decision; True for skip, else a fresh retry budget (log goes on)."""
        self.log.append({"decision": decision.action, "at": time.time()})
        self.errors = []
        return decision.action == "skip"

    def _event(self, event: str, **details: Any) -> None:
        if self.notify is not None:
            self.notify(event, step=self.name, attempt=len(self.errors) + 1, **details)

    def run_sync(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        token = _CURRENT.set(self.identity)
        try:
            while True:
                t0 = time.time()
                self._event("attempt")
                try:
                    value = self._attempt_sync(fn, args, kwargs)
                except Exception as exc:
                    time.sleep(self._failed(exc, t0))
                else:
                    self.log.append({"started": t0, "seconds": time.time() - t0, "error": None})
                    return value
        finally:
            _CURRENT.reset(token)

    async def run_async(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        token = _CURRENT.set(self.identity)
        timeout = self.policy.timeout
        try:
            while True:
                t0 = time.time()
                self._event("attempt")
                try:
                    if timeout is None:
                        value = await fn(*args, **kwargs)
                    else:
                        try:
                            value = await asyncio.wait_for(fn(*args, **kwargs), timeout)
                        except TimeoutError:
                            raise StepTimeout(self.name, timeout) from None
                except Exception as exc:
                    await asyncio.sleep(self._failed(exc, t0))
                else:
                    self.log.append({"started": t0, "seconds": time.time() - t0, "error": None})
                    return value
        finally:
            _CURRENT.reset(token)

    def _attempt_sync(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        timeout = self.policy.timeout
        if timeout is None:
            return fn(*args, **kwargs)
        # A thread is the only portable way to stop waiting for a blocking call;
        # the call itself cannot be killed and is left to finish in the background.
        box: dict[str, Any] = {}
        done = threading.Event()
        ctx = contextvars.copy_context()

        def target() -> None:
            try:
                box["value"] = ctx.run(fn, *args, **kwargs)
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=target, name=f"dnb-step-{self.name}", daemon=True).start()
        if not done.wait(timeout):
            raise StepTimeout(self.name, timeout)
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _failed(self, exc: Exception, t0: float) -> float:
        """Note a failed attempt; return the wait before the next, or raise the final error."""
        self.errors.append(exc)
        self.log.append({"started": t0, "seconds": time.time() - t0, "error": describe(exc)})
        if isinstance(exc, self.policy.non_retryable):
            raise exc
        if len(self.errors) > self.policy.retries:
            raise StepFailed(self.name, self.errors) from exc
        delay = self.policy.delay(len(self.errors))
        self._event("backoff", delay=delay, error=describe(exc))
        return delay


class _Call:
    """One call of a step: identity, replay, attempts, journaling."""

    def __init__(self, step: _Step, args: tuple, kwargs: dict) -> None:
        self.step, self.args, self.kwargs = step, args, kwargs
        self.done, self.value, self.nested = False, None, False
        self.rt: runtime.Runtime | None = None
        self.identity = uuid.uuid4().hex  # un-journaled calls still get a step_id
        self.occurrence, self.key = 0, None
        self.started = time.time()

    @classmethod
    def begin(cls, step: _Step, args: tuple, kwargs: dict) -> _Call:
        call = cls(step, args, kwargs)
        if _CURRENT.get() is not None:  # a step inside a step is part of the outer one
            call.nested = True
            return call
        rt = call.rt = runtime.current()
        if rt is not None and rt.enabled:
            key = step.key(*args, **kwargs) if callable(step.key) else step.key
            call.key = None if key is None else str(key)
            call.identity, call.occurrence = rt.identity(step.name, args, kwargs, call.key)
            value = rt.replay(call.identity, step.name)
            if value is not runtime.MISS:
                call.done, call.value = True, value
                if not step.internal:
                    rt.tally("replayed")
        call.attempts = Attempts(step.name, step.policy, call.identity)
        if rt is not None and not step.internal:
            call.attempts.notify = rt.notify
        return call

    # -- attempts -------------------------------------------------------------

    def attempts_sync(self) -> Any:
        if self.nested:
            return self.step.fn(*self.args, **self.kwargs)
        while True:
            try:
                return self.attempts.run_sync(self.step.fn, self.args, self.kwargs)
            except StepFailed as exc:
                self._journal_error(exc)
                prompt = self._suspension(exc)
                decision = prompt() if prompt is not None else None
                if decision is None or decision.action == "raise":
                    raise
            except Exception as exc:
                self._journal_error(exc)
                raise
            if self.attempts.decided(decision):
                return decision.value

    async def attempts_async(self) -> Any:
        if self.nested:
            return await self.step.fn(*self.args, **self.kwargs)
        while True:
            try:
                return await self.attempts.run_async(self.step.fn, self.args, self.kwargs)
            except StepFailed as exc:
                self._journal_error(exc)
                prompt = self._suspension(exc, asynchronous=True)
                decision = await prompt() if prompt is not None else None
                if decision is None or decision.action == "raise":
                    raise
            except Exception as exc:
                self._journal_error(exc)
                raise
            if self.attempts.decided(decision):
                return decision.value

    def _suspension(self, error: StepFailed, asynchronous: bool = False) -> Any:
        """A callable awaiting the person's decision, or None when the step must raise."""
        rt = self.rt
        if rt is None or self.step.internal or (self.step.on_failure or rt.on_failure) == "raise":
            return None
        return rt.ask(self.step.name, self._args(), error, asynchronous)

    # -- journaling -----------------------------------------------------------

    def _args(self) -> str:
        args = ", ".join([_repr.repr(a) for a in self.args]
                         + [f"{k}={_repr.repr(v)}" for k, v in self.kwargs.items()])  # fmt: skip
        return f"({args})"

    def _row(self, status: str, **extra: Any) -> dict[str, Any]:
        return dict(identity=self.identity, name=self.step.name, args=self._args(),
                    occurrence=self.occurrence, key=self.key, status=status,
                    attempts=len(self.attempts.log),
                    attempt_errors=json.dumps(self.attempts.log),
                    started=self.started, ended=time.time(), **extra)  # fmt: skip

    def _journal_error(self, exc: BaseException, sync: bool = True) -> None:
        rt = self.rt
        if rt is None:
            return
        if not self.step.internal:
            rt.tally("failed")
        rt.record(self._row("error", error=describe(exc)), sync)

    def finish(self, value: Any, sync: bool = True) -> Any:
        """Journal the result (durable now, or at the next ``rt.sync()``); return it."""
        rt = self.rt
        if rt is None or self.nested:
            return value
        if not self.step.internal:
            rt.tally("ran")
        kind, inline, blob = rt.store(self.step.name, value)
        status = "ok" if kind is not None else "unsaved"
        rt.record(self._row(status, kind=kind, result=inline, blob=blob), sync)
        if self.attempts.notify is not None:
            rt.notify("done", step=self.step.name)
        return value
