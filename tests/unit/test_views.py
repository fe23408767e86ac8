"""NumPy views come back as views of the array saved with them (views.py).

NumPy pickles a view as a copy: ``v = a[2:5]`` came back apart from ``a``, and ``a[3] = 0``
no longer showed in ``v``, silently.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_snapshot_props import SLOW, Notebook, fresh_namespace, restore_anew  # (on the path)
from test_snapshot_props import shell as shell  # (the fixture)

from durable_nb import codec

pytestmark = pytest.mark.unit

DTYPES = ("int64", "float32", "uint8", "complex128")


@st.composite
def slicing(draw, ndim: int) -> str:
    """A basic index of an ``ndim`` array (a view, never a copy), as written in a cell."""
    parts = []
    for _ in range(ndim):
        start, stop = draw(st.integers(-4, 4)), draw(st.integers(-4, 4))
        step = draw(st.sampled_from([1, 2, -1, -2]))
        parts.append(f"{start}:{stop}:{step}")
    view = f"[{', '.join(parts)}]"
    return view + draw(st.sampled_from(["", ".T", "[..., None]"]))


@st.composite
def plans(draw):
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    order = draw(st.sampled_from("CF"))
    views = draw(st.lists(slicing(len(shape)), min_size=1, max_size=3))
    holder = draw(st.sampled_from(["var", "dict", "list"]))
    frozen = draw(st.lists(st.booleans(), min_size=len(views), max_size=len(views)))
    return shape, draw(st.sampled_from(DTYPES)), order, views, holder, frozen


@settings(max_examples=10, deadline=None, suppress_health_check=SLOW)
@given(plan=plans())
def test_a_view_comes_back_looking_into_its_array(shell, plan):
    shape, dtype, order, views, holder, frozen = plan
    lines = ["import numpy as np",
             f"a = np.arange({int(np.prod(shape))}).astype('{dtype}').reshape({shape}, "
             f"order='{order}').copy(order='{order}')"]  # fmt: skip
    for i, (index, ro) in enumerate(zip(views, frozen, strict=True)):
        lines.append(f"v{i} = a{index}")
        if ro:
            lines.append(f"v{i}.flags.writeable = False")
    if holder != "var":  # the array and its views in one variable
        names = ", ".join(f"v{i}" for i in range(len(views)))
        lines.append(f"box = {{'a': a, 'views': [{names}]}}" if holder == "dict"
                     else f"box = [a, {names}]")  # fmt: skip
        lines.append(f"del a, {names}")
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run("\n".join(lines))
        ns = shell.user_ns
        live = _parts(ns, holder, len(views))
        before = [(v.copy(), v.flags.writeable) for v in live[1]]
        restore_anew(shell, nb)
    a, back = _parts(shell.user_ns, holder, len(views))
    for v, index, (was, writeable) in zip(back, views, before, strict=True):
        assert np.array_equal(v, was) and v.flags.writeable == writeable
        assert v.size == 0 or np.shares_memory(v, a), index
    a += 1  # in place: every view sees it, as it did before the restore
    for v, index in zip(back, views, strict=True):
        assert np.array_equal(v, eval(f"a{index}")), index


def _parts(ns: dict, holder: str, n: int) -> tuple:
    if holder == "var":
        return ns["a"], [ns[f"v{i}"] for i in range(n)]
    box = ns["box"]
    return (box["a"], box["views"]) if holder == "dict" else (box[0], box[1:])


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
)
def test_a_dict_view_comes_back_showing_its_dict(shell, items, kinds, boxed):
    """Before, a view was saved apart from its dict, as a view of a copy: ``d['new'] = 1``
    no longer showed in ``ks``."""
    lines = [f"d = {items!r}"]
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
        if boxed:
            assert ns["box"][i] is ns[f"w{i}"]


def test_a_dict_view_is_pickled_by_the_c_pickler_with_its_dict():
    """Not by dill (~1 ms more, and a view of a copy when its dict is not in the pickle)."""
    d = {"a": 1, "b": 2}
    for value in ((d, d.keys(), d.items()), d.values()):
        enc = codec.encode(value)
        assert enc.codec == codec.PICKLE
        back = codec.decode(enc.codec, enc.stream, enc.buffers)
        if type(value) is tuple:
            back[0]["c"] = 3
            assert list(back[1]) == ["a", "b", "c"] and len(back[2]) == 3
        else:
            assert list(back) == [1, 2]
