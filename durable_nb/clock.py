"""Journaled clock, uuid, random, sleep and waits: the same values when a cell replays.

Each is a tiny step, so its value is recorded once and replayed after a restart.
"""

from __future__ import annotations

import math
import random as _random
import time
import uuid as _uuid
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import count
from typing import Any

from . import runtime
from .errors import StepFailed, WaitTimeout
from .steps import step

_now = step(time.time, name="dnb.now", retries=0)
_uuid4 = step(lambda: str(_uuid.uuid4()), name="dnb.uuid4", retries=0)
_random_float = step(_random.random, name="dnb.random", retries=0)
_deadline = step(lambda seconds: time.time() + seconds, name="dnb.sleep", retries=0)


def now() -> datetime:
    """The current time (UTC, timezone-aware), recorded; a replay returns the same."""
    return datetime.fromtimestamp(_now(), UTC)


def uuid4() -> _uuid.UUID:
    """A random UUID, recorded; a replay returns the same."""
    return _uuid.UUID(_uuid4())


def random() -> float:
    """A random float in [0, 1), recorded; a replay returns the same."""
    return _random_float()


def sleep(seconds: float) -> None:
    """Sleep durably: the wake-up time is recorded when the sleep starts.

    If the kernel dies mid-sleep, re-running the cell waits only what is left;
    once the sleep has ended, re-running does not wait at all. The recorded deadline is
    an unsigned JSON result (a journal from someone else may hold any number): it never
    makes the call wait longer than ``seconds``.
    """
    seconds = float(seconds)
    recorded = _deadline(seconds)
    try:
        deadline = float(recorded) if type(recorded) in (int, float) else math.nan
    except OverflowError:  # an int too big for a float
        deadline = math.nan
    if not math.isfinite(deadline):
        deadline = time.time() + seconds
    remaining = min(deadline - time.time(), seconds)
    if remaining > 0:
        time.sleep(remaining)


def wait_until(check: Callable[[], Any], *, every: float = 60.0, timeout: float | None = None,
               key: str | None = None) -> Any:  # fmt: skip
    """Call ``check`` every ``every`` seconds until it returns a truthy value; return that.

    Each call of ``check`` is a step (journaled, retried with the default policy), and
    the start of the wait is recorded, so after a crash re-running the cell replays the
    checks already made and waits on from where it was; a finished wait replays its
    result at once. The live status view shows the wait.

    Parameters
    ----------
    check : callable
        Called with no arguments; its result is journaled, so it must be serializable.
    every : float
        Seconds between the starts of two checks.
    timeout : float, optional
        Give up with :class:`~durable_nb.errors.WaitTimeout` this many seconds after the
        wait first started (a durable deadline: a restart does not extend it).
    key : str, optional
        A notebook-wide identity for the wait, as a step's ``key=``.
    """
    if not (math.isfinite(every) and every > 0) or (
        timeout is not None and not (math.isfinite(timeout) and timeout > 0)
    ):
        raise ValueError("every and timeout must be finite numbers of seconds > 0")
    what = getattr(check, "__qualname__", None) or type(check).__name__
    start = step(lambda: time.time(), name="dnb.wait_until", retries=0,
                 key=None if key is None else f"{key}:start")  # fmt: skip
    # A check that keeps failing is "not yet" until the deadline: few, short retries.
    poll = step(lambda n: {"value": check(), "at": time.time()}, name=f"dnb.wait_until.{what}",
                retries=2, initial=min(1.0, every / 4), max_interval=every,
                key=None if key is None else (lambda n: f"{key}:{n}"))  # fmt: skip
    # The recorded start may come from someone else's journal (JSON needs no signature):
    # a start that is not a time in the past is taken as now.
    began = _past(start())
    deadline = None if timeout is None else began + timeout
    rt = runtime.current()
    last_error = None
    for n in count():
        try:
            outcome = poll(n)
        except StepFailed as exc:  # the service is not up yet: not true, try again
            outcome, last_error = {"value": None, "at": time.time()}, exc
        value = outcome.get("value") if isinstance(outcome, dict) else None
        if value:
            if rt is not None:
                rt.notify("done", step=what)
            return value
        now = time.time()
        if deadline is not None and now >= deadline:
            raise WaitTimeout(what, timeout, n + 1) from last_error
        # The next check is ``every`` after this one ran: a replayed check (made before a
        # crash) ran long ago, so the checks still to make start at once, one per period.
        ran_at = _past(outcome.get("at") if isinstance(outcome, dict) else None)
        next_at = min(ran_at + every, deadline if deadline is not None else math.inf)
        if rt is not None:
            left = None if deadline is None else deadline - now
            rt.notify("wait", step=what, attempt=n + 1, next_at=next_at, left=left)
        time.sleep(max(0.0, min(next_at - time.time(), every)))


def _past(recorded: Any) -> float:
    """A recorded time if it is a finite time not in the future, else now."""
    now = time.time()
    try:
        value = float(recorded)
    except (TypeError, ValueError, OverflowError):
        return now
    return value if math.isfinite(value) and value <= now else now
