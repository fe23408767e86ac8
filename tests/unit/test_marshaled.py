"""marshaled.py: variables of builtin data only are saved by marshal (2-7x faster than
pickle for rows and strings). What comes back must equal what was saved, with the same
objects one (shared, cycles); anything marshal would write as another type (a buffer as
``bytes``) is never marshaled, and a payload holding one is refused, not loaded."""

from __future__ import annotations

import gc
import marshal
import pickle
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_plain_reach import _hashable  # (on the path)
from test_snapshot_props import (
    Notebook,
    describe,
    fresh_namespace,
    restore_anew,
)

from durable_nb import codec, errors, graph, marshaled

pytestmark = pytest.mark.unit

atoms = st.one_of(st.integers(), st.text(max_size=4), st.booleans(), st.none(),
                  st.floats(allow_nan=False), st.complex_numbers(allow_nan=False))  # fmt: skip
KINDS = ("list", "dict", "tuple", "intdict", "tuplekeys")


@st.composite
def data(draw):
    """A builtin-data value from a pool whose nodes hold earlier ones (objects shared),
    sometimes holding itself (a cycle)."""
    pool: list = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(KINDS))
        items = draw(st.lists(st.one_of(atoms, st.sampled_from(pool) if pool else atoms),
                              max_size=5))  # fmt: skip
        made = _make(kind, items)
        if type(made) is list and draw(st.booleans()):
            made.append(made)
        pool.append(made)
    return [*pool[-3:], "text"]  # a list starting with containers: walked, then marshaled


def _make(kind: str, items: list):
    if kind == "tuplekeys":  # keys the walk enters (not strings): tuples of what is hashable
        return {(i, x): i for i, x in enumerate(items) if _hashable(x)}
    if kind in ("dict", "intdict"):
        return {(f"k{i}" if kind == "dict" else i): x for i, x in enumerate(items)}
    return {"list": list, "tuple": tuple}[kind](items)


def shape(value) -> list:
    """``value`` described with each object's identity as the order it is first met in."""
    return describe({"v": value}, ["v"])


@settings(max_examples=30, deadline=None)
@given(value=data())
def test_marshaled_values_come_back_equal_with_the_same_objects_one(value):
    gc.collect()  # (garbage of Hypothesis's holding objects of it would go between walks)
    enc, reached = codec.encode_reach(value, {})
    again = graph.reach(value, {}).keys
    assert enc is not None and enc.codec == marshaled.MARSHAL
    assert reached.keys == again
    back = codec.decode(enc.codec, enc.stream, [])
    assert shape(back) == shape(value)


@pytest.mark.parametrize("value", [
    [b"raw", "text"], ["text", bytearray(b"x")], ["text", memoryview(b"x")],
    [{"a": 1}, {"b": sys.intern("k")}, __import__("collections").OrderedDict(a=1)],
    ["text", __import__("array").array("i", [1])], [[1], __import__("decimal").Decimal(1)],
    ["text", True.__class__.__mro__], [{"k": [1]}, pickle.PickleBuffer(b"x")],
    ["text", {1, 2}], [{"k": frozenset({"a"})}],  # sets (helper-73 H1, H2)
])  # fmt: skip
def test_what_marshal_would_write_as_another_type_is_pickled(value):
    """bytes (a buffer would look the same), buffers, subclasses, sets, other types."""
    enc, _ = codec.encode_reach(value, {})
    assert enc is None or enc.codec != marshaled.MARSHAL


def test_numbers_are_pickled_and_read_from_the_memo_without_a_walk():
    for value in ([1, 2.5, None] * 1000, {i: i for i in range(100)}, [], {}):
        enc, reached = codec.encode_reach(value, {})
        assert enc is not None and enc.codec == codec.PICKLE
        assert enc.reached is reached  # the memo's answer: no walk
    for value in (["a", 1], [[1]], {"k": 1}, {1: "v"}, ({1},), [(1, 2)] * 3):
        assert marshaled.wordy(value)


def test_nested_past_marshals_depth_is_pickled():
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # pickle's limit, over marshal's 2,000
    try:
        deep: list = []
        for _ in range(2_500):
            deep = [deep, "x"]
        enc, _ = codec.encode_reach(deep, {})
        assert enc is not None and enc.codec == codec.PICKLE
        assert codec.decode(enc.codec, enc.stream, []) == deep
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("held", [bytearray(b"buf"), b"bytes", compile("1", "<x>", "eval")])
def test_a_payload_holding_what_it_was_not_saved_with_is_refused(held):
    """A buffer marshal wrote as bytes (a thread put it in after the walk), bytes, code."""
    stream = marshal.dumps([{"k": "v"}, ("t", [held])], marshaled.VERSION)
    with pytest.raises(errors.PayloadRefused, match="a thread changed it"):
        codec.decode(marshaled.MARSHAL, stream, [])


def test_an_unknown_codec_is_refused():
    with pytest.raises(ValueError, match="unknown codec"):
        codec.decode("yaml", pickle.dumps([1]), [])


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


def test_rows_restore_equal_with_their_keys_shared(shell):
    """A table saved by marshal comes back equal, its rows' keys one string each (pickle's
    memo kept them so too; a copy a row would cost ~10 MB per 50k rows)."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run("rows = [{'id': i, 'name': f'n{i}', 'tags': ['a', 'b']} for i in range(300)]")
        nb.run("rows.append({'id': -1, 'name': 'x', 'tags': []})")
        journal = nb.rt.journal
        codecs = {p.codec for p in journal.payloads(journal.payload_ids()).values()}
        live = describe(shell.user_ns, ["rows"])
        restore_anew(shell, nb)
        assert describe(shell.user_ns, ["rows"]) == live
        rows = shell.user_ns["rows"]
        assert all(a is b for a, b in zip(rows[0], rows[1], strict=True))
    assert marshaled.MARSHAL in codecs


def restored_after_a_race(shell, monkeypatch, cells: list[str], name: str, change) -> dict:
    """Run ``cells``; in the last, a thread's turn right after the walk of ``name``
    (``change(value)``), before its write; then the restore's report, as a new kernel's."""
    fresh_namespace(shell)
    reach, armed = graph.reach, []

    def racing(value, ns, **kw):
        got = reach(value, ns, **kw)
        if armed and value is shell.user_ns.get(name):
            armed.clear()
            change(value)
        return got

    monkeypatch.setattr(graph, "reach", racing)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        for code in cells[:-1]:
            nb.run(code)
        armed.append(1)
        nb.run(cells[-1])
        assert not armed
        monkeypatch.setattr(graph, "reach", reach)
        nb.close()
        fresh_namespace(shell)
        nb = Notebook(shell, Path(folder))
        report = nb.snaps.restore()
        nb.close()
    return report.skipped


def test_a_buffer_a_thread_puts_in_after_the_walk_is_refused_at_the_restore(shell, monkeypatch):
    """A thread's turn between the walk and marshal's write: the bytearray it put in is
    written as bytes. The restore refuses that payload (the variable is said skipped),
    never gives bytes for the bytearray."""
    cells = ["rows = [{'id': 1}, {'id': 2}]", "rows.append({'id': 3})"]
    skipped = restored_after_a_race(shell, monkeypatch, cells, "rows",
                                    lambda rows: rows.append(bytearray(b"late")))  # fmt: skip
    assert "a thread changed it" in skipped.get("rows", "")
    assert "rows" not in shell.user_ns


def test_nested_frozensets_are_pickled_at_once():
    """helper-73 H2: marshal writes a set's members twice at each level (2^depth)."""
    x = frozenset({"leaf"})
    for _ in range(30):
        x = frozenset({x, "n"})
    enc, _ = codec.encode_reach([x, "text"], {})
    assert enc is not None and enc.codec == codec.PICKLE


def test_marshal_runs_no_collection_that_could_change_what_it_writes(monkeypatch):
    """helper-73 H1: a collection inside marshal (its set sorting allocates) could run a
    finalizer, or give a thread its turn, that changes the list being written (read freed
    memory). The collector is off while it writes: none runs inside. Watched is marshal's
    own call, in this thread: write's allocations around it may collect, and so may
    another thread (a gc.collect runs while the collector is off)."""
    payload = ["text", set(map(str, range(20_000)))]  # (a set: what a thread may add)
    inside, collections, me = [False], [], threading.get_ident()
    real = marshal.dumps

    def dumps(*args):
        inside[0] = True
        try:
            return real(*args)
        finally:
            inside[0] = False

    def watch(phase, info):
        if phase == "start" and inside[0] and threading.get_ident() == me:
            collections.append(info["generation"])

    monkeypatch.setattr(marshal, "dumps", dumps)
    gc.callbacks.append(watch)
    try:
        stream = marshaled.write(payload)
    finally:
        gc.callbacks.remove(watch)
    assert collections == []
    assert marshal.loads(stream) == payload


class _Equal(type):
    def __eq__(cls, other):
        return True

    __hash__ = type.__hash__


class _Odd(metaclass=_Equal):
    pass


def test_a_metaclass_saying_equal_hides_no_type_of_a_level():
    """helper-73 M2: a level of strings and _Odd instances is not taken for strings alone."""
    shared = [1, 2]
    value = ["a", *[_Odd() for _ in range(60)], "z"]
    value[1].data = shared
    reached = graph.reach(value, {"shared": shared}, typed=True)
    assert _Odd in reached.types and id(shared) in reached.keys
