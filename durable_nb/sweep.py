"""The safety net: which saved variables are checked again after a cell.

A change made outside any cell (a thread, a widget's callback run between cells) to a
variable no later cell names is seen only if something looks. While the namespace's
saved payloads are small (:data:`SWEEP_BYTES`), saved variables are checked again after
each cell: all of them, or :attr:`Sweep.names` a cell, in turn.

Bytes are a poor measure of what a check costs: a dataclass of 5 KB has a print of ~230
parts, read in ~0.3 ms; a list of 1,000 small instances is pickled and walked again. So
the sweep also keeps to a time (:data:`SWEEP_SECONDS` a cell): when a cell's snapshot took
longer with the sweep, fewer variables are checked a cell (half, down to one), in turn;
when it took under half of it, more again (twice, up to :attr:`Sweep.names`). Every saved
variable is still checked, within a few cells instead of the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Below this many bytes of saved payloads, the sweep runs.
SWEEP_BYTES = 64 << 10
#: At most this many saved variables are checked a cell (all of 1,000 small ones: 21 ms).
SWEEP_NAMES = 32
#: What the snapshot of a cell with a sweep may take (s) before the sweep narrows.
SWEEP_SECONDS = 0.4e-3


class Sweep:
    """Which saved variables to check after a cell, in turn, within a time a cell.

    ``bytes``, ``names`` and ``seconds`` may be set (tests: ``seconds = math.inf`` keeps
    every cell's window at ``names``); ``clock`` gives the time (s).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.bytes, self.names, self.seconds = SWEEP_BYTES, SWEEP_NAMES, SWEEP_SECONDS
        self.clock = clock
        self.window = 1 << 62  # how many a cell, past ``names``: not narrowed yet
        self._at = 0  # where the next window starts, in the sorted names

    def runs(self, saved_bytes: int) -> bool:
        """Whether a sweep runs, with this many bytes of payloads saved."""
        return saved_bytes < self.bytes

    def pick(self, saved: list[str]) -> tuple[list[str], bool]:
        """The names (sorted) to check this cell, and whether that is all of them."""
        window = min(self.window, self.names)
        if len(saved) <= window:
            return saved, True
        if window < 1:  # (names = 0: none)
            return [], False
        at = self._at % len(saved)
        self._at = at + window
        return (saved + saved)[at : at + window], False

    def took(self, seconds: float) -> None:
        """A cell's snapshot with a sweep took ``seconds``: narrow or widen the window."""
        if seconds > self.seconds:
            self.window = max(1, min(self.window, self.names) // 2)
        elif seconds < self.seconds / 2:
            self.window = min(self.names, self.window * 2)
