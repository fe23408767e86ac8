"""sweep: the safety net narrows to a time a cell, and still checks every saved variable."""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st

from durable_nb.sweep import SWEEP_MOST, SWEEP_NAMES, SWEEP_REST, SWEEP_SECONDS, SWEEP_SHARE, Sweep


@given(n=st.integers(1, 100), costs=st.lists(st.floats(0, 10 * SWEEP_SECONDS), max_size=60))
def test_every_saved_name_is_checked_within_as_many_cells_as_there_are_names(n, costs):
    """Counting the cells that check any: slow checks make the next few check none (at
    most SWEEP_REST in a row)."""
    sweep = Sweep()
    saved = sorted(f"v{i}" for i in range(n))
    last = dict.fromkeys(saved, -1)
    checking, resting = 0, 0
    for cost in costs + [0.0] * (n * (SWEEP_REST + 1)):
        picked, whole = sweep.pick(saved)
        if not picked:
            resting += 1
            assert resting <= SWEEP_REST and not whole
            continue
        resting = 0
        assert 1 <= len(picked) <= SWEEP_NAMES and whole == (len(picked) == n)
        # Any n + 1 checking cells in a row check every name at least once: between two
        # checks of a name (the first counted from -1), at most n cells; so after the last.
        for name in picked:
            assert checking - last[name] <= n + 1
            last[name] = checking
        checking += 1
        sweep.took(cost)
        assert 1 <= min(sweep.window, sweep.names) <= SWEEP_NAMES
    assert checking >= n  # the quick cells at the end check again
    assert min(last.values()) >= checking - 1 - n


CELL = st.tuples(
    st.floats(0, 10 * SWEEP_SECONDS),  # what the cell's snapshot took
    st.lists(st.text("abmz", min_size=1, max_size=3), max_size=4),  # names it made
    st.integers(0, 3),  # how many it dropped (the first in order)
)


@given(first=st.integers(1, 40), cells=st.lists(CELL, max_size=50))
@example(
    first=1,
    cells=[(0.004, [], 0)] * 2 + [(0.004, ["a", "aa"], 0), (0.004, [], 2), (0.004, ["a", "aa"], 0)],
)  # a name made again kept its old turn
def test_names_made_and_dropped_every_cell_never_crowd_out_the_others(first, cells):
    """helper-52 F4: a position in the sorted names let new names sorting before it (a
    temporary made every cell) keep the same few names checked, others never. A name
    waits at most as many cells as there were names when it was last checked (or made):
    names made meanwhile queue behind it."""
    sweep = Sweep()
    present = {f"m{i:02}" for i in range(first)}
    waited: dict[str, int] = {}
    limit: dict[str, int] = {}
    for cost, made, dropped in cells + [(SWEEP_SECONDS * 3, [], 0)] * 300:
        picked, _ = sweep.pick(sorted(present))
        for name in present if picked or not present else ():  # (a resting cell: none)
            if name in picked or name not in limit:  # checked, or met first
                waited[name], limit[name] = 0, len(present)
            else:
                waited[name] += 1
                assert waited[name] <= limit[name], (name, waited[name], limit[name])
        sweep.took(cost)
        for name in sorted(present)[:dropped]:
            present.discard(name)
            waited.pop(name, None), limit.pop(name, None)  # (made while resting: never met)
        present.update(made)


def test_a_temporary_made_every_cell_leaves_no_name_unchecked():
    sweep = Sweep()
    sweep.window = 1
    present = ["data", "model", "params", "results"]
    seen = set()
    for i in range(40):
        present = sorted([*present, f"a{i:03}"])  # sorts before all of them
        seen.update(sweep.pick(present)[0])
    assert {"data", "model", "params", "results"} <= seen


def test_slow_cells_narrow_the_window_and_quick_ones_widen_it_again():
    sweep = Sweep()
    saved = [f"v{i}" for i in range(100)]
    assert len(sweep.pick(saved)[0]) == SWEEP_NAMES
    for want in (16, 8, 4, 2, 1, 1):
        sweep.took(SWEEP_SECONDS * 2.5)  # over its time: half as many, and two cells rest
        assert sweep.pick(saved) == ([], False) and sweep.pick(saved) == ([], False)
        sweep.took(SWEEP_SECONDS * 50)  # (a resting cell's time says nothing)
        assert len(sweep.pick(saved)[0]) == want
    sweep.took(SWEEP_SECONDS * 50)  # at most SWEEP_REST in a row
    assert [len(sweep.pick(saved)[0]) for _ in range(SWEEP_REST + 1)] == [0] * SWEEP_REST + [1]
    sweep.took(SWEEP_SECONDS * 0.75)  # neither: as it is
    assert len(sweep.pick(saved)[0]) == 1
    for want in (2, 4, 8, 16, 32, 32):
        sweep.took(0.0)
        assert len(sweep.pick(saved)[0]) == want


@given(cell=st.floats(0, 3600), checks=st.floats(0, 4 * SWEEP_MOST))
def test_the_sweep_may_take_a_share_of_the_cells_own_time(cell, checks):
    """After a short cell the net takes little (a 5 ms cell: ~0.1 ms); after a long one
    more, up to SWEEP_MOST; it narrows and rests only past what that cell allowed."""
    sweep = Sweep()
    allowed = sweep.allowed(cell)
    assert allowed == max(SWEEP_SECONDS, min(SWEEP_MOST, SWEEP_SHARE * cell))
    assert SWEEP_SECONDS <= allowed <= SWEEP_MOST
    saved = [f"v{i}" for i in range(100)]
    sweep.window = 8
    assert len(sweep.pick(saved)[0]) == 8
    sweep.took(checks, cell)
    after = sweep.pick(saved)[0]
    if checks > allowed:  # over: half as many, after as many cells of rest as it overran
        assert after == [] or math.ceil(checks / allowed) - 1 == 0
        while not after:
            after = sweep.pick(saved)[0]
        assert len(after) == 4
    else:  # within: as many, or twice as many when it took under half
        assert len(after) == (16 if checks < allowed / 2 else 8)


def test_a_long_cell_lets_the_sweep_check_what_a_short_one_would_not():
    """The same checks narrow the window after a 1 ms cell and widen it after a 1 s one."""
    saved = [f"v{i}" for i in range(100)]
    windows = []
    for cell in (1e-3, 1.0):
        sweep = Sweep()
        sweep.window = 8
        sweep.pick(saved)
        sweep.took(0.5e-3, cell)
        windows.append(sweep.window)
    assert windows == [4, 16]


def test_only_the_sweeps_own_checks_are_charged():
    """A cell costly of its own (what it changed, saved anyway) does not narrow the sweep
    nor make it rest: only the names it alone picked count (helper-55 S1)."""
    sweep = Sweep()
    saved = [f"v{i}" for i in range(40)]
    for _ in range(20):
        picked, _ = sweep.pick(saved, touched={"v0", "w"})
        sweep.charge(("w",), 5e-3)  # the cell's own variable
        sweep.charge(("v0",), 5e-3)  # picked, but the cell named it anyway
        sweep.charge(("w", picked[-1]), 5e-3)  # a group with the cell's own: not the sweep's
        sweep.charge_each({picked[-1]: SWEEP_SECONDS / 100})
        assert sweep.spent == SWEEP_SECONDS / 100
        sweep.took(sweep.spent)
    assert sweep.window == SWEEP_NAMES and sweep.pick(saved)[0]


def test_a_cell_that_picked_nothing_changes_nothing():
    """A cell that never asked (one using get_ipython() checks every variable itself):
    its time is no sweep's (helper-55 S2)."""
    sweep = Sweep()
    sweep.pick(["a", "b", "c"])
    sweep.took(0.0)
    window = sweep.window
    for _ in range(6):
        sweep.took(5e-3)
    assert (sweep.window, sweep.pick(["a", "b", "c"])[0]) == (window, ["a", "b", "c"])


@given(
    n=st.integers(2, 40),
    costs=st.lists(st.floats(0, 4 * SWEEP_SECONDS), min_size=40, max_size=40),
    spare=st.floats(0, 40 * SWEEP_SECONDS),
    rest=st.integers(0, 3),
)
def test_all_are_checked_when_that_costs_less_than_what_it_spares(n, costs, spare, rest):
    """A cell making widgets (whose walks a check of every saved variable spares) checks
    them all when their last checks took less than ``spare``; those it adds are not
    charged to the sweep, so its window stays as its own checks set it."""
    sweep = Sweep()
    saved = sorted(f"v{i}" for i in range(n))
    sweep.pick(saved)
    for name, cost in zip(saved, costs, strict=False):
        sweep.charge((name,), cost)  # what each check took (its last)
    sweep.took(0.0)
    sweep.window, sweep._rest = 1, rest
    window, resting = sweep.window, sweep._rest > 0
    picked, whole = sweep.pick(saved, spare=lambda: spare)
    own = [] if resting else sorted(sweep.only)
    others = [v for v in saved if v not in own]
    cheap = n <= SWEEP_NAMES and sum(costs[saved.index(v)] for v in others) < spare
    assert whole == cheap and picked == (saved if cheap else own)
    assert len(own) == (0 if resting else window)
    sweep.took(0.0)
    assert sweep.window == (1 if resting or not own else 2)  # quick: its own checks only


def test_the_time_is_a_share_of_the_wall_time_since_the_last_checks(monkeypatch):
    """``since``: the cells run since the sweep's last checks and the pauses between them,
    resting cells' too (helper-100 F4: each save asked it anew, so a person's pause during
    resting cells was lost and the next check got the floor)."""
    now = [100.0]
    monkeypatch.setattr("durable_nb.sweep.time.monotonic", lambda: now[0])
    sweep = Sweep()
    saved = [f"v{i}" for i in range(6)]
    sweep.pick(saved)
    sweep.took(10 * SWEEP_SECONDS, sweep.since())  # over its time: the next cells rest
    assert sweep._rest > 0
    while not sweep.pick(saved)[0]:  # resting cells, a second apart
        now[0] += 1.0
        sweep.took(0.0, sweep.since())
    assert sweep.since() >= 1.0 and sweep.allowed(sweep.since()) == SWEEP_MOST
    sweep.took(0.0, sweep.since())  # checked: counted from now on
    now[0] += 0.002
    assert math.isclose(sweep.since(), 0.002) and sweep.allowed(sweep.since()) == SWEEP_SECONDS
