"""Journaled clock, uuid, random and sleep: the same values when a cell replays.

Each is a tiny step, so its value is recorded once and replayed after a restart.
"""

from __future__ import annotations

import random as _random
import time
import uuid as _uuid
from datetime import UTC, datetime

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
    once the sleep has ended, re-running does not wait at all.
    """
    remaining = _deadline(float(seconds)) - time.time()
    if remaining > 0:
        time.sleep(remaining)
