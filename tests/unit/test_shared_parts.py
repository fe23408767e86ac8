"""Step arguments that share their parts: a graph whose nodes hold their dependencies.

Walked once per path, such a value took time exponential in its depth (a migration plan
of 40 steps, each depending on the two before it: ~10**8 walks). Past
``fingerprints.AGAIN`` walks of parts met before, it is fingerprinted again with each
shared part hashed once; a value sharing fewer keeps the identity it always had.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import unittest.mock

import pytest
import test_identity  # (tests/unit is on the path)
import xxhash
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import durable_nb as dnb
from durable_nb import fingerprints, runtime, shapes
from durable_nb.runtime import Runtime

pytestmark = pytest.mark.unit
rt = test_identity.rt  # the fixture: a Runtime with its journal in tmp_path


@pytest.fixture(autouse=True)
def _sooner():
    """The second way after a tenth of the walking (the same ways, ten times sooner)."""
    with unittest.mock.patch.object(fingerprints, "AGAIN", fingerprints.AGAIN // 10):
        yield


#: (:func:`_sooner` holds for every example alike: nothing to reset between them)
_FIXTURE = [HealthCheck.function_scoped_fixture]


class Task:
    def __init__(self, name, deps):
        self.name, self.deps = name, deps


class Slotted:  # slots and a __dict__: told by its __dict__ and its pickle
    __slots__ = ("__dict__", "deps", "name")

    def __init__(self, name, deps):
        self.name, self.deps, self.note = name, deps, "n"


class Failed(Exception):  # a C base's state (args) beside its attributes
    def __init__(self, name, deps=()):  # (a copy makes it from its args)
        super().__init__(name)
        self.deps = deps


Node = collections.namedtuple("Node", "name deps")


@dataclasses.dataclass(frozen=True, slots=True)
class Frozen:
    name: str
    deps: frozenset


MAKERS = {
    "instances": Task,
    "lists": lambda name, deps: [name, *deps],
    "dicts": lambda name, deps: {"name": name, "deps": deps},
    "slotted": Slotted,
    "exceptions": Failed,
    # told by their pickle, their sets by the sets' fingerprints (each walked apart)
    "namedtuples of frozensets": lambda name, deps: Node(name, frozenset(deps)),
    "frozen slotted": lambda name, deps: Frozen(name, frozenset(deps)),
}


def plan(make, depth, leaf="step-0"):
    """Each step depending on the two before it: ~1.6**depth ways down to the first."""
    steps = [make(leaf, []), make("step-1", [])]
    for i in range(2, depth):
        steps.append(make(f"step-{i}", [steps[-1], steps[-2]]))
    return steps[-1]


def plain(value):
    """What ``fingerprint`` gives a value in one walk, counting nothing."""
    h = xxhash.xxh3_128()
    fingerprints.feed(h, (value,), {})
    return h.hexdigest()


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_plan_whose_steps_share_their_dependencies_is_identified(kind):
    # 60 deep: ~10**12 ways down, each walked before (the test never ended)
    make = MAKERS[kind]
    top = plan(make, 60)
    fp = fingerprints.fingerprint(top)
    assert fp == fingerprints.fingerprint(top) == fingerprints.fingerprint(plan(make, 60))
    assert fp == fingerprints.fingerprint(copy.deepcopy(top))  # (a restore keeps sharing)
    assert fp != fingerprints.fingerprint(plan(make, 60, leaf="step-0b"))  # its first step
    assert fp != fingerprints.fingerprint(plan(make, 59))


def test_a_value_sharing_few_parts_keeps_its_identity():
    config = {"region": "eu", "zones": ["a", "b"]}
    # Each reference after the first walks the config (its size: 1 + 2 items) and its
    # zones (1 + 2) again: 6 a reference.
    few = [config] * (fingerprints.AGAIN // 6)
    assert fingerprints.fingerprint(few) == plain(few)
    many = [config] * (fingerprints.AGAIN // 6 + 2)
    assert fingerprints.fingerprint(many) != plain(many)  # each part hashed once
    assert fingerprints.fingerprint(many) == fingerprints.fingerprint(copy.deepcopy(many))
    other = copy.deepcopy(many)
    other[0]["zones"].append("c")  # (all references are to the one config)
    assert fingerprints.fingerprint(other) != fingerprints.fingerprint(many)


def test_a_map_over_items_sharing_many_parts_gives_each_the_identity_of_its_call():
    top = plan(Task, 40)
    args = shapes.Shape((shapes.HOLE,), {})
    assert args(top) == fingerprints.fingerprint((top,), {})
    call = shapes.Shape(3, "cell-key", "step", shapes.HOLE, shapes.HOLE)
    assert call(top, 7) == fingerprints.fingerprint(3, "cell-key", "step", top, 7)
    assert call("small", 7) == fingerprints.fingerprint(3, "cell-key", "step", "small", 7)


def _in_cell(rt, fn):
    rt.begin_cell(None, "migrate")
    try:
        return fn()
    finally:
        rt.end_cell("ok", None)


def test_after_a_restart_a_step_given_a_plan_replays(rt, tmp_path):
    @dnb.step(retries=0)
    def migrate(last):
        return f"migrated up to {last.name}"

    plans = [plan(Task, 45), plan(Task, 45, leaf="other")]
    first = _in_cell(rt, lambda: [migrate(p) for p in plans])
    rt.close()
    again = Runtime(str(tmp_path / "notebook.py"))  # the kernel restarted
    runtime.install(again)
    try:
        ran = again.totals["ran"]
        later = _in_cell(again, lambda: [migrate(copy.deepcopy(p)) for p in plans])
        assert (again.totals["ran"], again.totals["replayed"]) == (ran, 2)
    finally:
        runtime.install(rt)
        again.close()
    assert later == first


# -- random graphs: sharing and cycles, each part hashed once --------------------------


@st.composite
def graphs(draw):
    """A graph of lists, dicts and instances: each node holds a name, some of the nodes made
    before it (sharing) and maybe one made after it (a cycle)."""
    n = draw(st.integers(2, 9))
    kinds = draw(st.lists(st.sampled_from(["list", "dict", "task"]), min_size=n, max_size=n))
    edges = [draw(st.lists(st.integers(0, max(i - 1, 0)), max_size=3)) if i else []
             for i in range(n)]  # fmt: skip
    back = [draw(st.none() | st.integers(i, n - 1)) for i in range(n)]
    names = draw(st.lists(st.text("ab", max_size=2), min_size=n, max_size=n))
    return kinds, edges, back, names


def build(kinds, edges, back, names):
    nodes = []
    for kind, name in zip(kinds, names, strict=True):
        nodes.append([name] if kind == "list" else {"name": name} if kind == "dict"
                     else Task(name, []))  # fmt: skip
    for i, node in enumerate(nodes):
        held = [nodes[j] for j in edges[i]] + ([nodes[back[i]]] if back[i] is not None else [])
        if isinstance(node, list):
            node.extend(held)
        elif isinstance(node, dict):
            node["deps"] = held
        else:
            node.deps = held
    return nodes[-1]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(graphs(), st.sampled_from([0, 1, 3, fingerprints.AGAIN]))
def test_each_part_hashed_once_tells_graphs_as_a_walk_does(graph, again):
    # With AGAIN small, every graph that shares a part goes the second way.
    with unittest.mock.patch.object(fingerprints, "AGAIN", again):
        _tells_graphs(graph)


def _tells_graphs(graph):
    value = build(*graph)
    fp = fingerprints.fingerprint(value)
    assert fp == fingerprints.fingerprint(value) == fingerprints.fingerprint(build(*graph))
    assert fp == fingerprints.fingerprint(copy.deepcopy(value))
    kinds, edges, back, names = graph
    renamed = build(kinds, edges, back, [*names[:-1], names[-1] + "x"])
    assert fingerprints.fingerprint(renamed) != fp
    if any(edges) or any(b is not None for b in back):
        first = build(kinds, edges, back, [names[0] + "x", *names[1:]])
        reached = _reaches(edges, back, len(kinds) - 1, 0)
        assert (fingerprints.fingerprint(first) != fp) == reached


def _reaches(edges, back, start, goal):
    todo, seen = [start], {start}
    while todo:
        i = todo.pop()
        if i == goal:
            return True
        for j in edges[i] + ([back[i]] if back[i] is not None else []):
            if j not in seen:
                seen.add(j)
                todo.append(j)
    return False


def once(value):
    """What the second way gives ``value`` (each part hashed once), whatever it shares."""
    h = xxhash.xxh3_128()
    fingerprints.feed_top(h, (value,), once=True)
    return h.hexdigest()


@st.composite
def small_graphs(draw):
    """Graphs of few nodes and names, so that equal ones come up, built apart or shared."""
    n = draw(st.integers(1, 4))
    kinds = draw(st.lists(st.sampled_from(["list", "task"]), min_size=n, max_size=n))
    edges = [draw(st.lists(st.integers(0, max(i - 1, 0)), max_size=2)) if i else []
             for i in range(n)]  # fmt: skip
    back = [draw(st.none() | st.integers(0, n - 1)) for i in range(n)]
    names = draw(st.lists(st.sampled_from(["a", "b"]), min_size=n, max_size=n))
    return kinds, edges, back, names


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(small_graphs(), small_graphs())
@example(  # P under A leads back to A, 2 levels up; the same P under the top leads to A
    (["list"] * 3, [[], [0], [0, 1]], [1, None, None], ["a", "p", "t"]),
    # ...where this P2, under the top, leads to the top itself, 2 levels up: kept with its
    # cycle, P's hash under A would have made the two one call
    (["list"] * 4, [[], [0], [], [0, 2]], [1, None, 3, None], ["a", "p", "p", "t"]),
)
@example(  # helper-87: A <-> B, both under the top; Y <-> Z, with Y and W -> Y under the top
    (["list"] * 3, [[], [0], [0, 1]], [1, None, None], ["a", "b", "t"]),
    (["list"] * 4, [[], [0], [0], [0, 2]], [1, None, None, None], ["a", "b", "b", "t"]),
)
def test_each_part_hashed_once_tells_two_graphs_apart_as_one_walk_does(g1, g2):
    # The walk (exponential, but these are small) tells graphs apart by what a walk down
    # them meets, cycles by how many levels up they lead: the second way must agree, a
    # part's hash kept only when no cycle in it leads above it (else it depends on the
    # way down, and two graphs would be one call).
    a, b = build(*g1), build(*g2)
    assert (once(a) == once(b)) == (plain(a) == plain(b))


class Ring:
    pass


def _ring_in_a_set():
    """A frozenset of an instance and a tuple holding each other: which of the two the
    set gives first follows its iteration order (ids, the hash seed)."""
    node = Ring()
    held = (node,)
    node.held = held
    return frozenset({node, held})


def test_a_cycle_in_a_value_sharing_many_parts_has_one_identity_whichever_way_it_is_entered():
    # helper-87: a part on a cycle was kept with its hash as entered first, and the other
    # member of the cycle reused it: one value had two identities, by the set's order.
    ballast = plan(MAKERS["lists"], 30)
    assert len({fingerprints.fingerprint(_ring_in_a_set(), ballast) for _ in range(30)}) == 1


@pytest.mark.parametrize("kind", ["dict", "defaultdict", "Counter", "frozenset"])
def test_a_plan_of_subclasses_of_unordered_bases_is_identified(kind):
    class Sub(collections.Counter if kind == "Counter" else collections.defaultdict
              if kind == "defaultdict" else dict if kind == "dict" else frozenset):  # fmt: skip
        pass

    def make(name, deps):
        if kind == "frozenset":
            return Sub([name, *deps])
        made = Sub(int) if kind == "defaultdict" else Sub()
        made.update({"name": name, **{f"d{i}": d for i, d in enumerate(deps)}})
        return made

    top = plan(make, 60)  # (its parts' sizes are what the count weighs)
    assert fingerprints.fingerprint(top) == fingerprints.fingerprint(plan(make, 60))
    assert fingerprints.fingerprint(top) != fingerprints.fingerprint(plan(make, 60, "x"))


def test_a_value_too_deep_for_the_second_way_is_walked_as_before():
    # The second way takes ~2 frames a level: nested 600 deep and sharing many parts, one
    # walk as before (the first version gave it an identity of its own, never replayed).
    deep = []
    for _ in range(600):
        deep = [deep]
    config = {"region": "eu", "zones": ["a", "b"]}
    value = [deep, [config] * (fingerprints.AGAIN // 6 + 2)]
    assert fingerprints.fingerprint(value) == plain(value) == fingerprints.fingerprint(value)


def test_a_plan_whose_steps_carry_data_goes_the_second_way_at_once():
    # helper-87: counting parts met again, not their size, walked a plan 40 deep carrying
    # 10,000 floats a step ~50,000 times before the second way (22 s); sizes weigh now.
    top = plan(lambda name, deps: Task(name, [[float(i) for i in range(10_000)], *deps]), 40)
    again = fingerprints._again
    met = []

    def counted(seen, size):
        met.append(size)
        again(seen, size)

    with unittest.mock.patch.object(fingerprints, "_again", counted):
        fp = fingerprints.fingerprint(top)
    assert len(met) < 1000, len(met)  # the first floats met again weigh 10,001
    assert fp == fingerprints.fingerprint(copy.deepcopy(top))


def test_a_shape_counts_what_its_parts_and_fills_share_as_fingerprint_does():
    # Each fill alone shares few parts, together many (helper-87: each fill was counted
    # apart, the parts not at all, and the identities differed from fingerprint's).
    config = {"region": "eu", "zones": ["a", "b"]}
    half = [config] * (fingerprints.AGAIN // 6 // 2 + 2)
    two = shapes.Shape(shapes.HOLE, shapes.HOLE)
    walked = xxhash.xxh3_128()
    fingerprints.feed(walked, (half, half), {})  # (one walk: what it would be, not shared)
    assert two(half, half) == fingerprints.fingerprint(half, half) != walked.hexdigest()
    held = shapes.Shape(half, shapes.HOLE)
    assert held(half) == fingerprints.fingerprint(half, half)


class Plan:
    pass


def _plan_with_a_way_back(n):
    """Steps each holding the two before and the plan that holds them all: every part
    leads back up, so the second way keeps no part's hash (helper-88)."""
    whole, steps = Plan(), [None, None]
    for i in range(n):
        steps.append(Task(f"step-{i}", [steps[-1], steps[-2], whole]))
    whole.steps = steps[2:]
    return whole


def test_a_plan_whose_steps_point_back_to_it_is_given_up_in_time_and_said(capsys):
    with unittest.mock.patch.object(fingerprints, "MOST_SECONDS", 0.2):
        one = fingerprints.fingerprint(_plan_with_a_way_back(40))  # (never ended before)
        other = fingerprints.fingerprint(_plan_with_a_way_back(40))
    assert one != other  # an identity of its own each time: never replayed
    said = capsys.readouterr().err
    assert "cannot be fingerprinted" in said and "key=" in said, said


def test_a_shape_whose_parts_alone_share_too_much_is_fingerprint_of_them_filled():
    # helper-89: the parts' walk cut short left no hole to fill (ValueError out of the
    # call), and the filled parts were rebuilt, so what they shared was no longer shared.
    config = {"region": "eu", "zones": ["a", "b"]}
    many = [config] * (fingerprints.AGAIN // 6 + 2)
    held = shapes.Shape([many], shapes.HOLE)
    assert held(many) == fingerprints.fingerprint([many], many)
    assert held("small") == fingerprints.fingerprint([many], "small")
    half = [config] * (fingerprints.AGAIN // 6 // 2 + 2)
    assert shapes.Shape([half], shapes.HOLE)(half) == fingerprints.fingerprint([half], half)
