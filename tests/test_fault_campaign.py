"""The fault campaign of bench/faults.py, short: a few trials of each kind.

Each kind runs real kernels against a real fault (SIGKILL, a damaged log, database
or blob file, a full disk, a read-only folder, a second kernel) and counts from the
steps' own effect files. Every count that must be zero is asserted zero. Kinds that
fail on today's code are strict xfails naming their finding of issue 12: when the fix
lands, the xfail turns red and must be removed.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
from conftest import ROOT

_spec = importlib.util.spec_from_file_location("faults", ROOT / "bench" / "faults.py")
faults = sys.modules["faults"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(faults)

pytestmark = pytest.mark.kernel

#: Trials per kind: the kinds with variants run each variant once.
TRIALS = {"kill-fold": 3, "full-disk": 2}  # their variants; bench/faults.py runs more

FAILING: dict[str, str] = {}


def _param(kind: str) -> object:
    if kind in FAILING:
        # Only a count may fail it: an error of the harness itself is not hidden.
        xfail = pytest.mark.xfail(strict=True, raises=AssertionError, reason=FAILING[kind])
        return pytest.param(kind, marks=xfail)
    return kind


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The kernels that open journals anew and the journals built once, shared by the kinds
    a test worker runs (as by the trials of one kind): a kernel start per kind fewer."""
    shared = faults.Shared(tmp_path_factory.mktemp("faults-shared"))
    yield shared
    shared.discard()


@pytest.mark.parametrize("kind", [_param(k) for k in faults.KINDS])
def test_fault_kind(kind, tmp_path, shared):
    tally = faults.run_kind(kind, TRIALS.get(kind, 1), seed=12, base=tmp_path, shared=shared)
    if tally.skipped:  # a full disk and a read-only folder need root (a small tmpfs)
        pytest.skip(tally.skipped)
    assert tally.trials == TRIALS.get(kind, 1)
    assert tally.violations(kind) == {}, "\n".join(tally.notes)
