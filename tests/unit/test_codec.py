"""codec: step results round-trip, argument fingerprints are stable, namespace values encode."""

from __future__ import annotations

import copy
import io
import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_nb import codec, fingerprints

# Values a step may return or take: JSON data, and the Python types JSON would change.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(1 << 200), max_value=1 << 200)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(max_size=64)
    | st.complex_numbers(allow_nan=False)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=5)
        | st.dictionaries(st.integers(), inner, max_size=3)
        | st.frozensets(st.integers() | st.text(max_size=8), max_size=5)
    ),
    max_leaves=20,
)


def same(a, b) -> bool:
    """Equal, with the same types all the way down (1 == 1.0 == True is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


@given(values)
def test_dumps_loads_round_trip_keeps_types(value):
    kind, payload = codec.dumps(value)
    assert kind in (codec.JSON, codec.PICKLE)
    assert same(codec.loads(kind, payload), value)


@given(values)
def test_json_only_when_json_gives_back_the_same_value(value):
    kind, _ = codec.dumps(value)
    assert (kind == codec.JSON) == codec._json_exact(value, 0)


def test_plain_data_is_json_and_readable_as_such():
    kind, payload = codec.dumps({"ok": [1, 2.5, None, "é"]})
    assert kind == codec.JSON and payload.decode() == '{"ok":[1,2.5,null,"é"]}'
    assert codec.dumps((1, 2))[0] == codec.PICKLE  # a tuple would come back a list
    assert codec.dumps({1: 2})[0] == codec.PICKLE  # an int key would come back a str
    assert codec.dumps(float("inf"))[0] == codec.PICKLE


def test_loads_builds_a_fresh_object_each_time():
    kind, payload = codec.dumps({"a": [1]})
    first, second = codec.loads(kind, payload), codec.loads(kind, payload)
    assert first == second and first is not second and first["a"] is not second["a"]


def test_dill_takes_what_pickle_cannot():
    kind, payload = codec.dumps(lambda x: x + 1)
    assert kind == codec.DILL and codec.loads(kind, payload)(1) == 2


def test_unknown_codec_is_refused():
    with pytest.raises(ValueError, match="unknown codec"):
        codec.loads("yaml", b"")


# -- fingerprints -------------------------------------------------------------------------


@given(values)
def test_fingerprint_is_equal_for_equal_values(value):
    fp = fingerprints.fingerprint
    assert fp(value) == fp(copy.deepcopy(value)) == fp(pickle.loads(pickle.dumps(value)))


@given(values, values)
def test_fingerprint_differs_for_different_values(a, b):
    if not same(a, b):
        assert fingerprints.fingerprint(a) != fingerprints.fingerprint(b)


@given(st.lists(st.text(max_size=6), unique=True, max_size=8), st.randoms())
def test_fingerprint_ignores_set_and_dict_order(keys, rnd):
    shuffled = list(keys)
    rnd.shuffle(shuffled)
    assert fingerprints.fingerprint(set(keys)) == fingerprints.fingerprint(set(shuffled))
    assert fingerprints.fingerprint(dict.fromkeys(keys, 0)) == fingerprints.fingerprint(
        dict.fromkeys(shuffled, 0)
    )


#: Fingerprints are step identities stored in journals: changing the byte layout makes
#: every journal replay nothing. These values pin it (and, since this process hashes
#: strings with a random seed, they also pin that sets and dicts hash in canonical order).
GOLDEN = [
    ((), "d854a06b1a613b44a1142560e0cc354d"),
    ((1, "a", None), "83d6c52c525e5b5c4b4d5a1d8101c27e"),
    (({"b": [1.5, True], "a": {"x", "y"}},), "ac24a649873ebe570993fc0ce7529252"),
    ((1 << 100, b"\x00\xff", 2j), "2e906808d38cc72378d610a4f0fb30d9"),
]


@pytest.mark.parametrize(("parts", "digest"), GOLDEN, ids=[d[:12] for _, d in GOLDEN])
def test_fingerprint_byte_layout_is_stable(parts, digest):
    assert fingerprints.fingerprint(*parts) == digest


def test_fingerprint_of_arrays_hashes_their_content():
    a = np.arange(1000, dtype=np.int64)
    assert fingerprints.fingerprint(a) == fingerprints.fingerprint(a.copy())
    b = a.copy()
    b[500] = -1
    assert fingerprints.fingerprint(a) != fingerprints.fingerprint(b)


class Node:
    def __init__(self, **attrs):
        self.__dict__.update(attrs)


def test_fingerprint_of_instances_hashes_attributes_and_survives_cycles():
    a, b = Node(tags={"x", "y"}, n=1), Node(tags={"y", "x"}, n=1)
    assert fingerprints.fingerprint(a) == fingerprints.fingerprint(b)
    assert fingerprints.fingerprint(a) != fingerprints.fingerprint(Node(tags={"x"}, n=1))
    loop: list = [1]
    loop.append(loop)
    assert fingerprints.fingerprint(loop) == fingerprints.fingerprint(loop)


def test_fingerprint_of_functions_is_their_name_and_of_unpicklables_their_type():
    assert fingerprints.fingerprint(len) == fingerprints.fingerprint(len)
    assert fingerprints.fingerprint(same) != fingerprints.fingerprint(Node)
    with io.StringIO() as f, io.StringIO() as g:  # unpicklable: the type identifies it
        assert fingerprints.fingerprint(f) == fingerprints.fingerprint(g)


# -- namespace values: encode / decode ------------------------------------------------


def test_encode_keeps_array_buffers_out_of_band():
    a = np.arange(1 << 16, dtype=np.float64)
    enc = codec.encode({"a": a})
    assert enc.codec == codec.PICKLE and len(enc.buffers) == 1
    assert enc.buffers[0].nbytes == a.nbytes and len(enc.stream) < 1000
    back = codec.decode(enc.codec, enc.stream, enc.buffers)
    assert np.array_equal(back["a"], a)


def test_encode_refuses_open_files():
    with open(__file__) as f, pytest.raises(codec.Unserializable, match="open file"):
        codec.encode([f])


def test_warm_up_saves_a_function_by_value_and_leaves_main_as_it_was():
    # The kernel's opening thread calls it, beside the person's namespace: it must not
    # add to __main__, and it imports dill (what the first function's save would).
    import subprocess
    import sys

    code = (
        "import sys; from durable_nb import codec; before = 'dill' in sys.modules; "
        "main = sys.modules['__main__']; names = set(vars(main)) | {'names'}; "
        "codec.warm_up(); print(before, 'dill' in sys.modules, set(vars(main)) == names)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"], out
