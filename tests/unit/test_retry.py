"""RetryPolicy and the attempts of one call, without a kernel or a journal.

Effects are counted for real: lines a step appends to a file, like the kernel tests do.
"""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path

import pytest

from durable_nb import StepFailed, StepTimeout
from durable_nb.retry import Attempts, RetryPolicy, current_step

pytestmark = pytest.mark.unit


def _bump(path: Path) -> int:
    with path.open("a") as f:
        f.write("x\n")
    return len(path.read_text().splitlines())


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


# -- RetryPolicy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retries": -1},
        {"retries": 1.5},
        {"retries": True},
        {"initial": -1},
        {"initial": "1"},
        {"initial": math.nan},
        {"max_interval": -0.5},
        {"backoff": 0.5},
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": "5"},
        {"non_retryable": (ValueError, int)},
        {"non_retryable": ("ValueError",)},
        {"allow_overlap": True},  # without a timeout it means nothing
        {"timeout": 1, "allow_overlap": "yes"},
    ],
)
def test_policy_refuses_bad_values(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_policy_defaults_and_normalization():
    p = RetryPolicy()
    assert (p.retries, p.initial, p.backoff, p.max_interval) == (3, 1.0, 2.0, 100.0)
    assert p.timeout is None and p.non_retryable == () and p.allow_overlap is False
    assert RetryPolicy(non_retryable=KeyError).non_retryable == (KeyError,)
    assert RetryPolicy(non_retryable=[KeyError, OSError]).non_retryable == (KeyError, OSError)
    assert RetryPolicy(timeout=2, allow_overlap=True).allow_overlap


def test_policy_delays_grow_and_are_capped():
    p = RetryPolicy(initial=1, backoff=2, max_interval=5)
    assert [p.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    assert RetryPolicy(initial=0.5, backoff=1).delay(7) == 0.5


# -- the attempts core: sync and async drivers ------------------------------------------

FAST = {"initial": 0.0, "backoff": 1.0}


def test_sync_attempts_retry_until_success(tmp_path):
    effects = tmp_path / "effects"
    events = []

    def flaky(x):
        if _bump(effects) < 3:
            raise ConnectionError("down")
        return x * 2

    a = Attempts("flaky", RetryPolicy(retries=3, **FAST), "id-1")
    a.notify = lambda event, **d: events.append((event, d["attempt"]))
    assert a.run_sync(flaky, (21,), {}) == 42
    assert _lines(effects) == 3
    assert [e["error"] for e in a.log] == ["ConnectionError: down"] * 2 + [None]
    assert events == [("attempt", 1), ("backoff", 2), ("attempt", 2), ("backoff", 3),
                      ("attempt", 3)]  # fmt: skip


def test_async_attempts_retry_until_success(tmp_path):
    effects = tmp_path / "effects"

    async def flaky(x):
        await asyncio.sleep(0)
        if _bump(effects) < 2:
            raise ConnectionError("down")
        return x + 1

    a = Attempts("flaky", RetryPolicy(retries=1, **FAST), "id-1")
    assert asyncio.run(a.run_async(flaky, (1,), {})) == 2
    assert _lines(effects) == 2 and len(a.log) == 2


@pytest.mark.parametrize("asynchronous", [False, True])
def test_step_failed_carries_every_attempts_error(tmp_path, asynchronous):
    effects = tmp_path / "effects"

    def broken():
        n = _bump(effects)
        raise ConnectionError(f"attempt {n}")

    async def broken_async():
        broken()

    a = Attempts("broken", RetryPolicy(retries=2, **FAST), "id-1")
    with pytest.raises(StepFailed) as info:
        if asynchronous:
            asyncio.run(a.run_async(broken_async, (), {}))
        else:
            a.run_sync(broken, (), {})
    err = info.value
    assert [str(e) for e in err.errors] == ["attempt 1", "attempt 2", "attempt 3"]
    assert err.__cause__ is err.errors[-1] and err.step == "broken"
    assert _lines(effects) == 3 and len(a.log) == 3


@pytest.mark.parametrize("asynchronous", [False, True])
def test_non_retryable_error_is_raised_as_is_at_once(tmp_path, asynchronous):
    effects = tmp_path / "effects"

    def invalid():
        _bump(effects)
        raise ValueError("bad input")

    async def invalid_async():
        invalid()

    a = Attempts("invalid", RetryPolicy(retries=5, non_retryable=(ValueError,), **FAST), "i")
    with pytest.raises(ValueError, match="bad input"):
        if asynchronous:
            asyncio.run(a.run_async(invalid_async, (), {}))
        else:
            a.run_sync(invalid, (), {})
    assert _lines(effects) == 1


def test_current_step_is_the_identity_inside_the_attempt():
    seen = []
    a = Attempts("who", RetryPolicy(), "the-identity")
    a.run_sync(lambda: seen.append(current_step()), (), {})
    asyncio.run(Attempts("who", RetryPolicy(), "async-identity").run_async(_current, (seen,), {}))
    assert seen == ["the-identity", "async-identity"]
    assert current_step() is None


async def _current(seen):
    seen.append(current_step())


# -- timeouts -------------------------------------------------------------------------


@pytest.fixture
def release():
    """An event the stuck attempts wait for; set at the end so their threads finish."""
    event = threading.Event()
    yield event
    event.set()


def test_sync_timeout_is_not_retried_while_the_attempt_may_still_run(tmp_path, release):
    effects = tmp_path / "effects"

    def stuck():
        _bump(effects)
        release.wait(60)

    a = Attempts("stuck", RetryPolicy(retries=3, timeout=0.05, **FAST), "id-1")
    with pytest.raises(StepTimeout, match="allow_overlap=True") as info:
        a.run_sync(stuck, (), {})
    assert not isinstance(info.value, StepFailed)
    assert _lines(effects) == 1  # a retry would have appended before the error
    assert len(a.log) == 1 and a.log[0]["error"].startswith("StepTimeout")


def test_sync_timeout_with_allow_overlap_is_retried(tmp_path, release):
    effects = tmp_path / "effects"

    def stuck():
        _bump(effects)
        release.wait(60)

    policy = RetryPolicy(retries=1, timeout=0.05, allow_overlap=True, **FAST)
    a = Attempts("stuck", policy, "id-1")
    with pytest.raises(StepFailed) as info:
        a.run_sync(stuck, (), {})
    assert [type(e) for e in info.value.errors] == [StepTimeout, StepTimeout]
    assert _lines(effects) == 2  # two attempts, running at once


def test_sync_timeout_passes_errors_and_values_through(tmp_path):
    a = Attempts("quick", RetryPolicy(retries=0, timeout=30), "id-1")
    assert a.run_sync(lambda x: x, ("on time",), {}) == "on time"
    with pytest.raises(StepFailed) as info:
        Attempts("bad", RetryPolicy(retries=0, timeout=30), "id-2").run_sync(lambda: 1 / 0, (), {})
    assert isinstance(info.value.errors[0], ZeroDivisionError)


def test_async_timeout_cancels_the_attempt_and_retries(tmp_path):
    started, finished = tmp_path / "started", tmp_path / "finished"

    async def stuck():
        _bump(started)
        await asyncio.sleep(60)
        _bump(finished)

    a = Attempts("stuck", RetryPolicy(retries=1, timeout=0.05, **FAST), "id-1")
    with pytest.raises(StepFailed) as info:
        asyncio.run(a.run_async(stuck, (), {}))
    assert [type(e) for e in info.value.errors] == [StepTimeout, StepTimeout]
    assert _lines(started) == 2 and _lines(finished) == 0  # cancelled, never abandoned
