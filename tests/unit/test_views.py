"""NumPy views come back as views of the array saved with them (views.py).

NumPy pickles a view as a copy: ``v = a[2:5]`` came back apart from ``a``, and ``a[3] = 0``
no longer showed in ``v``, silently.
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_snapshot_props import SLOW, Notebook, fresh_namespace, restore_anew  # (on the path)
from test_snapshot_props import shell as shell  # (the fixture)

from durable_nb import codec, views

pytestmark = pytest.mark.unit

DTYPES = ("int64", "float32", "uint8", "complex128")


#: Basic indexes of one axis (each a view, never a copy; none empty on 2 or more items).
AXIS = (":", "::-1", "1:", "::2", ":-1", "1::2", "::-2", "-2:")


@st.composite
def slicing(draw, ndim: int) -> str:
    """A basic index of an ``ndim`` array (a view, never a copy), as written in a cell."""
    view = f"[{', '.join(draw(st.sampled_from(AXIS)) for _ in range(ndim))}]"
    return view + draw(st.sampled_from(["", ".T", "[..., None]"]))


@st.composite
def plans(draw):
    shape = draw(st.lists(st.integers(2, 5), min_size=1, max_size=3))
    order = draw(st.sampled_from("CF"))
    views = draw(st.lists(slicing(len(shape)), min_size=1, max_size=3))
    copy = draw(st.booleans())  # ``a`` owns its memory, or is itself a view (reshape)
    frozen = draw(st.lists(st.booleans(), min_size=len(views), max_size=len(views)))
    return shape, draw(st.sampled_from(DTYPES)), order, views, copy, frozen


@settings(max_examples=10, deadline=None, suppress_health_check=SLOW)
@given(plan=plans())
def test_a_view_comes_back_looking_into_its_array(shell, plan):
    """Restore after restore (review68 H3: the restored array sits on the loader's buffer),
    and whether ``a`` owns its memory or is a reshaped view itself (review68 H2)."""
    shape, dtype, order, views, copy, frozen = plan
    made = f"np.arange({int(np.prod(shape))}).astype('{dtype}').reshape({shape}, order='{order}')"
    lines = ["import numpy as np", f"a = {made}" + (f".copy(order='{order}')" if copy else "")]
    for i, (index, ro) in enumerate(zip(views, frozen, strict=True)):
        lines.append(f"v{i} = a{index}")
        if ro:
            lines.append(f"v{i}.flags.writeable = False")
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run("\n".join(lines))
        ns = shell.user_ns
        before = [(ns[f"v{i}"].copy(), ns[f"v{i}"].flags.writeable) for i in range(len(views))]
        for again in (False, True):
            if again:  # the restored namespace saved anew (the group changed), restored
                nb = Notebook(shell, Path(folder))
                nb.snaps.restore()
                nb.run("a += 0")
            restore_anew(shell, nb)
            _looks_into(shell.user_ns, views, before)


def _looks_into(ns: dict, views: list[str], before: list) -> None:
    a = ns["a"]
    for i, (index, (was, writeable)) in enumerate(zip(views, before, strict=True)):
        v = ns[f"v{i}"]
        assert np.array_equal(v, was) and v.flags.writeable == writeable
        assert v.size == 0 or np.shares_memory(v, a), index
    saved = a.copy()
    a += 1  # in place: every view sees it, as it did before the restore
    for i, index in enumerate(views):
        assert np.array_equal(ns[f"v{i}"], eval(f"a{index}")), index
    a[...] = saved


def test_arrays_held_in_one_container_come_back_as_numpy_gives_them():
    """Views are made again only of a variable's array, so the answer never depends on the
    order a value is pickled in (review68 M1): one list holding an array and its view
    gives NumPy's copies, in either order."""
    a = np.arange(10.0)
    for box in ([a, a[2:5]], [a[2:5], a]):
        enc = codec.encode(box)  # (the buffers read, as a restore does, not the live ones)
        back = codec.decode(enc.codec, enc.stream, [bytearray(b) for b in enc.buffers])
        assert not np.shares_memory(back[0], back[1])
        assert [list(x) for x in back] == [list(x) for x in box]


def test_a_window_over_a_variable_is_saved_as_a_view_not_its_copies():
    """review68 M2: ``sliding_window_view`` (``as_strided``) of a 32 KB array pickled as
    NumPy does was 24 MB, and came back apart from it."""
    from numpy.lib.stride_tricks import sliding_window_view

    a = np.arange(4000.0)
    w = sliding_window_view(a, 1000)
    enc = codec.encode((a, w), {}, (a, w))
    assert sum(b.nbytes for b in enc.buffers) + len(enc.stream) < 2 * a.nbytes
    back = codec.decode(enc.codec, enc.stream, [bytearray(b) for b in enc.buffers])
    back[0][1500] = -1
    assert back[1][1000, 500] == -1 and np.array_equal(back[1][0], a[:1000])


def test_a_view_of_an_array_not_saved_with_it_is_a_copy():
    """Its array is no variable's: pickled as NumPy does (its own bytes, not the array's)."""
    big = np.zeros(100_000)
    v = big[:10]
    enc = codec.encode(v)
    assert len(enc.stream) + sum(b.nbytes for b in enc.buffers) < 1_000
    back = codec.decode(enc.codec, enc.stream, enc.buffers)
    assert np.array_equal(back, v) and (back.base is None or back.base.nbytes <= 80)


def test_a_view_of_objects_is_a_copy():
    """An object array cannot be made over a buffer: both saved, apart."""
    a = np.array([[1], "x", None], dtype=object)
    enc = codec.encode((a, a[1:]), {}, (a, a[1:]))
    back = codec.decode(enc.codec, enc.stream, enc.buffers)
    assert list(back[1]) == list(a[1:]) and not np.shares_memory(back[0], back[1])


@settings(max_examples=6, deadline=None, suppress_health_check=SLOW)
@given(
    items=st.dictionaries(st.text("abc", max_size=2), st.integers(), max_size=4),
    kinds=st.lists(st.sampled_from(["keys", "values", "items"]), min_size=1, max_size=3),
    boxed=st.booleans(),
    made=st.sampled_from(
        ["{}", "collections.OrderedDict({})", "collections.defaultdict(list, {})"]
    ),
)
@example(items={"a": 1}, kinds=["keys", "items"], boxed=False, made="collections.OrderedDict({})")
def test_a_dict_view_comes_back_showing_its_dict(shell, items, kinds, boxed, made):
    """Before, a view was saved apart from its dict, as a view of a copy: ``d['new'] = 1``
    no longer showed in ``ks`` (an OrderedDict's views too: review68 M3)."""
    lines = ["import collections", "d = " + made.format(repr(items))]
    lines += [f"w{i} = d.{kind}()" for i, kind in enumerate(kinds)]
    if boxed:  # in a container of another variable
        lines.append(f"box = [{', '.join(f'w{i}' for i in range(len(kinds)))}]")
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run("\n".join(lines))
        restore_anew(shell, nb)
    ns = shell.user_ns
    ns["d"]["new"] = 1
    for i, kind in enumerate(kinds):
        assert list(ns[f"w{i}"]) == list(getattr(ns["d"], kind)())
        assert type(ns[f"w{i}"]) is type(getattr(ns["d"], kind)())
        if boxed:
            assert ns["box"][i] is ns[f"w{i}"]


def test_a_dict_view_is_pickled_by_the_c_pickler_with_its_dict():
    """Not by dill (~1 ms more, and a view of a copy when its dict is not in the pickle)."""
    d, od = {"a": 1, "b": 2}, collections.OrderedDict(a=1, b=2)
    for value in ((d, d.keys(), d.items()), d.values(), (od, od.keys(), od.items())):
        enc = codec.encode(value)
        assert enc.codec == codec.PICKLE
        back = codec.decode(enc.codec, enc.stream, enc.buffers)
        if type(value) is tuple:
            back[0]["c"] = 3
            assert list(back[1]) == ["a", "b", "c"] and len(back[2]) == 3
            assert [type(x) for x in back] == [type(x) for x in value]
        else:
            assert list(back) == [1, 2]


def test_a_view_through_a_notebook_subclass_follows_its_array(shell):
    """review69 H1: a view whose base is an array of a notebook's ndarray subclass ended the
    walk's chain there: saved apart from ``s``, it kept an old value after ``s[3] = -1``."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run("import numpy as np\nclass Sub(np.ndarray):\n    pass\n"
               "s = np.arange(10.0).view(Sub)\nv = s[2:5].view(np.ndarray)")  # fmt: skip
        nb.run("s[3] = -1")
        assert nb.snaps.known["v"].value_id == nb.snaps.known["s"].value_id  # one payload
        restore_anew(shell, nb)
    assert list(shell.user_ns["v"]) == [2.0, -1.0, 4.0]


def test_of_two_equal_blocks_the_writeable_one_is_the_block():
    """review69 L1: a view over a read-only block cannot be written, whatever the names."""
    for first in (True, False):
        a = np.arange(10.0)
        b = a.view()
        a.flags.writeable = False
        members = (a, b) if first else (b, a)
        enc = codec.encode(members, {}, members)
        back = codec.decode(enc.codec, enc.stream, [bytearray(x) for x in enc.buffers])
        out = dict(zip(("a", "b") if first else ("b", "a"), back, strict=True))
        assert out["b"].flags.writeable and not out["a"].flags.writeable
        assert np.shares_memory(out["a"], out["b"])


def test_a_view_of_objects_is_never_made_over_memory():
    """review69 L2: an object dtype over an array's bytes (a crafted payload) would crash
    the kernel when read; refused."""
    with pytest.raises(ValueError, match="objects"):
        views.view(np.arange(4), 0, (2,), (8,), np.dtype(object), True)
    with pytest.raises(ValueError, match="objects"):
        views.view(np.empty(4, dtype=object), 0, (2,), (8,), np.dtype("int64"), True)
