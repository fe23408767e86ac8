"""Identities: a ``dnb.map`` item is the same step call as ``fn(item)`` made in a loop.

A plain Runtime with its journal in ``tmp_path`` (no kernel): what a script gets.
"""

from __future__ import annotations

import dataclasses

import pytest

import durable_nb as dnb
from durable_nb import fingerprints, runtime
from durable_nb.runtime import Runtime

pytestmark = pytest.mark.unit


@dataclasses.dataclass
class Point:
    x: int
    tags: set


VALUES = [0, -1, 2**5000, "node-1", "", b"raw", 1.5, None, True, (1, "a"), [1, [2, 3]],
          {"b": 1, "a": {2, 3}}, frozenset({"x"}), Point(1, {"a", "b"}), len, Point]  # fmt: skip


# ids by type and position: a set's repr changes with the hash seed, and pytest -n 2 needs
# the same test ids in every worker.
@pytest.mark.parametrize(
    "value", VALUES, ids=[f"{i}-{type(v).__name__}" for i, v in enumerate(VALUES)]
)
def test_shape_equals_fingerprint_with_the_holes_filled(value):
    args = fingerprints.Shape((fingerprints.HOLE,), {})
    assert args(value) == fingerprints.fingerprint((value,), {})
    call = fingerprints.Shape(3, "cell-key", "step", fingerprints.HOLE, fingerprints.HOLE)
    assert call(value, 7) == fingerprints.fingerprint(3, "cell-key", "step", value, 7)


def test_shape_checks_the_number_of_fills():
    with pytest.raises(ValueError):
        fingerprints.Shape(fingerprints.HOLE, fingerprints.HOLE)("only one")


@pytest.fixture
def rt(tmp_path, monkeypatch):
    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path))
    rt = Runtime(str(tmp_path / "notebook.py"))
    assert rt.journaling, rt.problem
    runtime.install(rt)
    yield rt
    runtime.install(None)
    rt.close()


ITEMS = [1, 2, 2, "a", (1, 2), {"k": [1]}, 2, Point(0, set())]


def _in_cell(rt, source, fn):
    rt.begin_cell(None, source)
    try:
        return fn()
    finally:
        rt.end_cell("ok", None)


@pytest.mark.parametrize("epoch", [0, 1])
def test_identities_equal_identity_call_by_call(rt, epoch):
    if epoch:
        rt.fresh()
    many = _in_cell(rt, "cell", lambda: rt.identities("step", ITEMS))
    one = _in_cell(rt, "cell", lambda: [rt.identity("step", (i,), {}, None) for i in ITEMS])
    assert many == one
    assert [n for _, n in many] == [0, 0, 1, 0, 0, 0, 2, 0]  # repeats count up


def test_identities_with_keys_and_in_strict_replay(rt):
    keys = ["k1", None, "k1", None, None, None, None, None]
    many = _in_cell(rt, "cell", lambda: rt.identities("step", ITEMS, keys))
    one = _in_cell(rt, "cell", lambda: [rt.identity("step", (i,), {}, k)
                                        for i, k in zip(ITEMS, keys, strict=True)])  # fmt: skip
    assert many == one and many[0] == many[2]
    rt.set_strict(True)
    try:
        assert _in_cell(rt, "cell", lambda: rt.identities("step", ITEMS)) == _in_cell(
            rt, "cell", lambda: [rt.identity("step", (i,), {}, None) for i in ITEMS]
        )
    finally:
        rt.set_strict(False)


def test_a_map_replays_the_calls_a_loop_made_and_back(rt, tmp_path):
    runs = []

    @dnb.step(retries=0)
    def double(x):
        runs.append(x)
        return x * 2

    items = [1, 2, 2, 3]
    loop = _in_cell(rt, "cell A", lambda: [double(i) for i in items])
    mapped = _in_cell(rt, "cell A", lambda: dnb.map(double, items, progress=False))
    assert mapped == loop == [2, 4, 4, 6]
    assert runs == items  # the map ran nothing: every item replayed

    runs.clear()
    mapped = _in_cell(rt, "cell B", lambda: dnb.map(double, items, progress=False))
    loop = _in_cell(rt, "cell B", lambda: [double(i) for i in items])
    assert mapped == loop and runs == items  # the loop ran nothing
