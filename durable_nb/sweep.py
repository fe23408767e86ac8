"""The safety net: which saved variables are checked again after a cell.

A change made outside any cell (a thread, a widget's callback run between cells) to a
variable no later cell names is seen only if something looks. While the namespace's
saved payloads are small (:data:`SWEEP_BYTES`), saved variables are checked again after
each cell: all of them, or :attr:`Sweep.names` a cell, in turn.

Bytes are a poor measure of what a check costs: a dataclass of 5 KB has a print of ~230
parts, read in ~0.3 ms; a list of 1,000 small instances is pickled and walked again. So the
sweep also keeps to a time, its own checks only (what the cell itself changed is saved
anyway): a share of the wall time since its last checks (:data:`SWEEP_SHARE`: the cells run
since and the pauses between them, :meth:`Sweep.since`), at least :data:`SWEEP_SECONDS` and
at most :data:`SWEEP_MOST` (:meth:`Sweep.allowed`). Cells run one after another (Run All)
get ~0.05 ms each; a cell run after a person's pause of a second or more gets 2 ms, as does
one of 0.2 s (a share of the cell's run time alone, 2.5% and at least 0.1 ms, cost a quick
widget cell ~4% and gave a cell run by hand no more). When its checks took longer, fewer
variables are checked a cell (half, down to one), in turn; when they took under half of it,
more again (twice, up to :attr:`Sweep.names`); and the next cells check none, as many as
keep the sweep to its time on average (at most :data:`SWEEP_REST` in a row): even one
variable may take longer (a dataclass's print, ~0.3 ms). Those checked longest ago go
first: every saved variable is still checked, within as many checking cells as there are
saved variables, however many are made or dropped meanwhile. A cell whose widgets a check
of every saved variable would spare walking (:class:`sharing.Settled`) checks them all when
their last checks took less than those walks (uncharged: it saves time).
"""

from __future__ import annotations

import contextlib
import heapq
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Set

#: Below this many bytes of saved payloads, the sweep runs.
SWEEP_BYTES = 64 << 10
#: At most this many saved variables are checked a cell (all of 1,000 small ones: 21 ms).
SWEEP_NAMES = 32
#: What the sweep's own checks may take a cell (s) before it narrows, at least: the pickles
#: and walks of the names only it picked (what the cell itself changed is not counted).
SWEEP_SECONDS = 0.05e-3
#: Past that, this share of the wall time since its last checks (idle time counts)...
SWEEP_SHARE = 0.01
#: ...up to this (s): a cell of a minute need not wait on a sweep of everything.
SWEEP_MOST = 2e-3
#: What walking a widget is taken to cost until one is timed (s).
_WIDGET_WALK = 0.125e-3
#: At most this many cells in a row check nothing after one check took too long.
SWEEP_REST = 8
_UNTIMED = contextlib.nullcontext()


class Sweep:
    """Which saved variables to check after a cell, in turn, within a time a cell.

    ``bytes``, ``names`` and ``seconds`` may be set (tests: ``seconds = math.inf`` keeps
    every cell's window at ``names``); ``clock`` gives the time (s).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.bytes, self.names, self.seconds = SWEEP_BYTES, SWEEP_NAMES, SWEEP_SECONDS
        self.clock = clock
        self.window = 1 << 62  # how many a cell, past ``names``: not narrowed yet
        self._cell = 0  # cells picked for so far
        self._checked: dict[str, int] = {}  # name -> the cell it was last checked (or seen)
        self._rest = 0  # cells left that check nothing
        self._swept = False  # whether the last cell picked for checked any
        self.only: frozenset[str] = frozenset()  # this cell's names checked for it alone
        self.spent = 0.0  # what checking them took (:meth:`charge`)
        self._cost: dict[str, float] = {}  # name -> what its last check took (s)
        self._now: dict[str, float] = {}  # the same, this cell (:meth:`took`)
        #: What walking a value that holds the kernel (a widget) took, on average (s).
        self.kernel_walk = _WIDGET_WALK
        self._since = time.monotonic()  # when its checks were last taken (:meth:`since`)

    def runs(self, saved_bytes: int) -> bool:
        """Whether a sweep runs, with this many bytes of payloads saved."""
        return saved_bytes < self.bytes

    def pick(self, saved: list[str], touched: Set[str] = frozenset(),
             spare: Callable[[], float] | None = None) -> tuple[list[str], bool]:  # fmt: skip
        """The names to check this cell, and whether that is all of them: the window's
        worth of those checked longest ago. A name met first counts as checked now (it
        was just saved), so names made every cell never crowd out the others (a
        position in the sorted names did: helper-52 F4). ``touched``: names the cell
        itself has checked anyway (not charged to the sweep). ``spare()``: what checking
        all would spare (walking the new widgets: see :data:`sharing.Settled`), asked only
        when the window leaves some out; when the others' last checks took less, all of
        them are checked (not charged)."""
        self._cell += 1
        self.only, self.spent = frozenset(), 0.0
        now, before = self._cell, self._checked
        # A name gone is forgotten: made again, it is a new variable, just saved (kept, its
        # old turn put it before names that waited less, past their bound).
        self._checked = checked = {n: before.get(n, now) for n in saved}
        self._cost = {n: c for n, c in self._cost.items() if n in checked}
        self._swept = False
        window = min(self.window, self.names)
        if self._rest > 0:
            self._rest -= 1
            picked: list[str] = []
        elif len(saved) <= window:
            picked = saved
        elif window < 1:  # (names = 0: none)
            picked = []
        else:
            picked = heapq.nsmallest(window, saved, key=lambda n: (checked[n], n))
        for name in picked:
            checked[name] = now
        self._swept = bool(picked)
        self.only = frozenset(picked).difference(touched)
        whole = len(picked) == len(saved)
        if not whole and spare is not None and len(saved) <= self.names:
            others = set(saved).difference(picked)
            if sum(self._cost.get(n, self.seconds / 4) for n in others) < spare():
                for name in others:
                    checked[name] = now
                picked, whole = saved, True
        return sorted(picked), whole

    def charge(self, names: Iterable[str], seconds: float) -> None:
        """Checking ``names`` took ``seconds``: the sweep's when they are its alone (and
        each name's share is remembered: :meth:`pick`'s ``spare``)."""
        names = tuple(names)
        for name in names:
            self._now[name] = self._now.get(name, 0.0) + seconds / len(names)
        if self.only and self.only.issuperset(names):
            self.spent += seconds

    def charge_each(self, seconds: Mapping[str, float],
                    kernel: Mapping[str, str] | None = None) -> None:  # fmt: skip
        """:meth:`charge` each name its time; ``kernel``: name -> the kernel object its value
        holds, if any (what walking such a value takes: :attr:`kernel_walk`)."""
        for name, took in seconds.items():
            self.charge((name,), took)
            if kernel and kernel.get(name):
                self.kernel_walk = 0.75 * self.kernel_walk + 0.25 * took

    def timing(self, names: Iterable[str]) -> contextlib.AbstractContextManager:
        """:meth:`charge` ``names`` the time the block takes; nothing timed (every group
        of every cell passes here) when they are not the sweep's alone."""
        if not (self.only and self.only.issuperset(names)):
            return _UNTIMED
        return self._timed(names)

    @contextlib.contextmanager
    def _timed(self, names: Iterable[str]) -> Iterator[None]:
        began = self.clock()
        try:
            yield
        finally:
            self.charge(names, self.clock() - began)

    def since(self) -> float:
        """The wall time (s) since the sweep's last checks (or since it was made): the cells
        run since and the pauses between them, which :meth:`allowed` takes a share of."""
        return time.monotonic() - self._since

    def allowed(self, cell: float = 0.0) -> float:
        """What the sweep's checks may take after ``cell`` seconds (:meth:`since`): a share
        of it, within :attr:`seconds` (at least) and :data:`SWEEP_MOST`."""
        return max(self.seconds, min(SWEEP_MOST, SWEEP_SHARE * cell))

    def took(self, seconds: float, cell: float = 0.0) -> None:
        """The sweep's checks took ``seconds``, ``cell`` seconds after its last (:meth:`since`):
        narrow or widen the window, and rest a few cells when they took longer than
        :meth:`allowed` (nothing if none was checked since the last call)."""
        self._cost.update(self._now)
        self._now = {}
        swept, self._swept = self._swept, False
        if not swept:
            return
        self._since = time.monotonic()  # (a pause during resting cells counts: helper-100 F4)
        allowed = self.allowed(cell)
        if seconds > allowed:  # over its time: as many cells rest (on average, kept)
            over = math.ceil(seconds / max(allowed, 1e-9)) - 1
            self._rest = min(SWEEP_REST, over)
            self.window = max(1, min(self.window, self.names) // 2)
        elif seconds < allowed / 2:
            self.window = min(self.names, self.window * 2)
