"""sweep: the safety net narrows to a time a cell, and still checks every saved variable."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from durable_nb.sweep import SWEEP_NAMES, SWEEP_SECONDS, Sweep


@given(n=st.integers(1, 200), costs=st.lists(st.floats(0, 10 * SWEEP_SECONDS), max_size=60))
def test_every_saved_name_is_checked_within_as_many_cells_as_there_are_names(n, costs):
    sweep = Sweep()
    saved = sorted(f"v{i}" for i in range(n))
    last = dict.fromkeys(saved, -1)
    for cell, cost in enumerate(costs + [0.0] * n):
        picked, whole = sweep.pick(saved)
        assert 1 <= len(picked) <= SWEEP_NAMES and whole == (len(picked) == n)
        for name in picked:
            last[name] = cell
        if cell >= n:  # any n cells in a row check every name at least once
            assert min(last.values()) > cell - n - 1
        sweep.took(cost)
        assert 1 <= min(sweep.window, sweep.names) <= SWEEP_NAMES


def test_slow_cells_narrow_the_window_and_quick_ones_widen_it_again():
    sweep = Sweep()
    saved = [f"v{i}" for i in range(100)]
    assert len(sweep.pick(saved)[0]) == SWEEP_NAMES
    for want in (16, 8, 4, 2, 1, 1):
        sweep.took(SWEEP_SECONDS * 3)
        assert len(sweep.pick(saved)[0]) == want
    sweep.took(SWEEP_SECONDS * 0.75)  # neither: as it is
    assert len(sweep.pick(saved)[0]) == 1
    for want in (2, 4, 8, 16, 32, 32):
        sweep.took(0.0)
        assert len(sweep.pick(saved)[0]) == want
