"""How a step retries: :class:`RetryPolicy`, and the attempts of one call under it.

No journal here: the kernel runs attempts for ``@dnb.step``, workers for ``dnb.map`` items.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import StepFailed, StepTimeout, describe

# The identity of the step being executed in this thread or task (for dnb.step_id()).
_CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("dnb_step", default=None)


def current_step() -> str | None:
    """The identity of the step running in this thread or task, or None outside steps."""
    return _CURRENT.get()


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
    """Longest time one attempt may take, in seconds; ``None`` for no limit.

    An ``async def`` attempt that times out is cancelled and retried. A plain
    function's attempt cannot be stopped: it goes on in its thread, so by default
    it is not retried (see ``allow_overlap``).
    """
    non_retryable: tuple[type[BaseException], ...] = ()
    """Exception types raised at once, without retrying."""
    allow_overlap: bool = False
    """Retry a plain (sync) function's timed-out attempt although it may still be running.

    Off by default: the retry would start while the abandoned attempt goes on, so one
    side-effecting call could run twice at once. Turn it on only when that is harmless
    (a read, or a call made idempotent with ``dnb.step_id()``).
    """

    def __post_init__(self) -> None:
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise ValueError(f"retries must be an integer ≥ 0, not {self.retries!r}")
        for field in ("initial", "backoff", "max_interval", "timeout"):
            value = getattr(self, field)
            if field == "timeout" and value is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
                raise ValueError(f"{field} must be a number, not {value!r}")
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
        if not isinstance(self.allow_overlap, bool):
            raise ValueError(f"allow_overlap must be True or False, not {self.allow_overlap!r}")
        if self.allow_overlap and self.timeout is None:
            raise ValueError("allow_overlap only applies to timed-out attempts: set timeout= too")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (from 1)."""
        return min(self.initial * self.backoff ** (attempt - 1), self.max_interval)


class Attempts:
    """The attempts of one step call: one core, a sync and an async driver.

    The core (:meth:`_start`, :meth:`_failed`, :meth:`_succeeded`) decides everything:
    the log, the events, when to wait and how long, the final error. The drivers only
    call the function and sleep, in their own way. ``log`` gets one entry per attempt;
    the final error is raised: :class:`StepFailed` when retries run out, a
    ``non_retryable`` error as is, and a sync attempt's :class:`StepTimeout` as is
    unless the policy allows overlap.
    """

    def __init__(self, name: str, policy: RetryPolicy, identity: str) -> None:
        self.name, self.policy, self.identity = name, policy, identity
        self.log: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        #: Called as ``notify(event, **details)`` at each attempt and backoff (status view).
        self.notify: Callable[..., None] | None = None
        self._abandoned = False  # the attempt that just failed may still be running

    def decided(self, decision: Any) -> bool:
        """Log a person's decision; True for skip, else a fresh retry budget (log goes on)."""
        self.log.append({"decision": decision.action, "at": time.time()})
        self.errors = []
        return decision.action == "skip"

    # -- the drivers ------------------------------------------------------------

    def run_sync(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        """Run ``fn(*args, **kwargs)`` in this thread until an attempt succeeds."""
        __tracebackhide__ = True  # IPython shows the person's frames
        token = _CURRENT.set(self.identity)
        try:
            while True:
                t0 = self._start()
                try:
                    value = self._call_sync(fn, args, kwargs)
                except Exception as exc:
                    time.sleep(self._failed(exc, t0))
                else:
                    return self._succeeded(value, t0)
        finally:
            _CURRENT.reset(token)

    async def run_async(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        """Await ``fn(*args, **kwargs)`` until an attempt succeeds."""
        __tracebackhide__ = True  # IPython shows the person's frames
        token = _CURRENT.set(self.identity)
        try:
            while True:
                t0 = self._start()
                try:
                    value = await self._call_async(fn, args, kwargs)
                except Exception as exc:
                    await asyncio.sleep(self._failed(exc, t0))
                else:
                    return self._succeeded(value, t0)
        finally:
            _CURRENT.reset(token)

    def _call_sync(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        __tracebackhide__ = True  # IPython shows the person's frames
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
            self._abandoned = True
            if self.policy.allow_overlap:
                raise StepTimeout(self.name, timeout)
            raise StepTimeout(
                self.name, timeout,
                f"step {self.name!r} attempt exceeded its timeout of {timeout:g} s and may "
                "still be running, so it is not retried (the retry would run beside it). "
                "Raise timeout= if the call is legitimately slow, or pass allow_overlap=True "
                "to the step if running it twice at once is harmless.",
            )  # fmt: skip
        if "error" in box:
            raise box["error"]
        return box["value"]

    async def _call_async(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        __tracebackhide__ = True  # IPython shows the person's frames
        timeout = self.policy.timeout
        if timeout is None:
            return await fn(*args, **kwargs)
        try:  # a timed-out coroutine is cancelled (and awaited): it cannot overlap a retry
            return await asyncio.wait_for(fn(*args, **kwargs), timeout)
        except TimeoutError:
            raise StepTimeout(self.name, timeout) from None

    # -- the core -----------------------------------------------------------------

    def _start(self) -> float:
        """An attempt begins: tell the listeners; return its start time."""
        t0 = time.time()
        self._abandoned = False
        self._event("attempt")
        return t0

    def _succeeded(self, value: Any, t0: float) -> Any:
        self.log.append({"started": t0, "seconds": time.time() - t0, "error": None})
        return value

    def _failed(self, exc: Exception, t0: float) -> float:
        """Note a failed attempt; return the wait before the next, or raise the final error."""
        __tracebackhide__ = True  # IPython shows the person's frames
        self.errors.append(exc)
        self.log.append({"started": t0, "seconds": time.time() - t0, "error": describe(exc)})
        if isinstance(exc, self.policy.non_retryable):
            raise exc
        if self._abandoned and not self.policy.allow_overlap:
            raise exc
        if len(self.errors) > self.policy.retries:
            raise StepFailed(self.name, self.errors) from exc
        delay = self.policy.delay(len(self.errors))
        self._event("backoff", delay=delay, error=describe(exc))
        return delay

    def _event(self, event: str, **details: Any) -> None:
        if self.notify is not None:
            self.notify(event, step=self.name, attempt=len(self.errors) + 1, **details)
