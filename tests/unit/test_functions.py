"""functions: notebook functions saved by value with the C pickler (marshal), not dill.

A restored function must be the function: same code, defaults, closure, attributes,
globals (``__main__``'s), and the same answers; identity inside a payload survives
(shared cells, recursion); code of another Python is refused, never run.
"""

from __future__ import annotations

import functools
import marshal
import sys
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_nb import codec, functions
from durable_nb.errors import ForeignBytecode, describe


def main_dict() -> dict:
    """``__main__``'s namespace now (a test runner's worker may swap ``__main__``)."""
    return vars(sys.modules["__main__"])


data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


def round_trip(value, ns=None):
    ns = main_dict() if ns is None else ns
    enc = codec.encode(value, ns, (value,))
    return enc, codec.decode(enc.codec, enc.stream, enc.buffers)


def assert_same_function(back, fn):
    assert type(back) is types.FunctionType and back is not fn
    assert back.__code__ == fn.__code__ and back.__globals__ is main_dict()
    for attr in ("__name__", "__qualname__", "__module__", "__doc__", "__defaults__",
                 "__kwdefaults__", "__annotations__", "__dict__"):  # fmt: skip
        assert getattr(back, attr) == getattr(fn, attr), attr
    cells = [c.cell_contents for c in fn.__closure__ or ()]
    assert [c.cell_contents for c in back.__closure__ or ()] == cells


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(default=data, kwdefault=data, captured=data, attribute=data, doc=st.none() | st.text(),
       annotated=st.booleans())  # fmt: skip
def test_a_function_comes_back_whole_without_dill(main, default, kwdefault, captured,
                                                  attribute, doc, annotated):  # fmt: skip
    ns = main(
        "def _factory(captured):\n"
        f"    def f(a, b=None, *rest, k=None, **more){' -> list' if annotated else ''}:\n"
        "        return [a, b, rest, k, more, captured, _global]\n"
        "    return f\n"
        "_global = 'from main'\n"
    )
    fn = ns["_factory"](captured)
    fn.__defaults__, fn.__kwdefaults__, fn.__doc__ = (default,), {"k": kwdefault}, doc
    fn.attribute = attribute
    enc, back = round_trip(fn)
    assert enc.codec == codec.PICKLE  # not dill: the C pickler, ~30× less
    assert_same_function(back, fn)
    assert back(1) == fn(1) and back(1, 2, 3, k=4, z=5) == fn(1, 2, 3, k=4, z=5)
    ns["_global"] = "rebound"  # globals are the notebook's, not a copy
    assert back(1)[-1] == "rebound"


SHAPES = {
    "lambda": "value = lambda x, y=2: x * y",
    "generator": "def value(n):\n    yield from range(n)",
    "async": "async def value():\n    return 7",
    "nested": "def _outer(z):\n    def inner(x):\n        return x + z\n    return inner\n"
              "value = _outer(5)",
    "recursive closure": "def _outer():\n    def fact(n):\n"
                         "        return 1 if n < 2 else n * fact(n - 1)\n"
                         "    return fact\nvalue = _outer()",
    "never bound cell": "def _outer():\n    def f():\n        return later\n    return f\n"
                        "    later = 1\nvalue = _outer()",
    "wrapped": "import functools\ndef _plain(x):\n    return x\n"
               "@functools.wraps(_plain)\ndef value(x):\n    return _plain(x) + 1",
    "default holding it": "def value(seen=[]):\n    return len(seen)\n"
                          "value.__defaults__[0].append(value)",
}  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_of_function_round_trips(main, shape):
    fn = main(SHAPES[shape])["value"]
    enc, back = round_trip(fn)
    assert enc.codec == codec.PICKLE
    assert back.__code__ == fn.__code__ and back.__globals__ is main_dict()
    if shape == "generator":
        assert list(back(4)) == list(fn(4))
    elif shape == "async":
        coro = back()
        with pytest.raises(StopIteration) as done:
            coro.send(None)
        assert done.value.value == 7
    elif shape == "recursive closure":
        assert back(5) == 120 and back.__closure__[0].cell_contents is back
    elif shape == "never bound cell":
        with pytest.raises(NameError):
            back()
    elif shape == "wrapped":
        assert back(1) == 2 and back.__wrapped__ is main_dict()["_plain"]  # bound: by name
    elif shape == "default holding it":
        assert back.__defaults__[0][0] is back  # itself, not a copy
    else:
        assert back(3) == fn(3)


def test_functions_sharing_a_cell_still_share_it(main):
    ns = main(
        "def _counter():\n    n = 0\n    def add():\n        nonlocal n\n        n += 1\n"
        "        return n\n    def get():\n        return n\n    return add, get\n"
    )
    add, get = ns["_counter"]()
    add()
    _, (add2, get2) = round_trip((add, get))
    assert add2.__closure__[0] is get2.__closure__[0]
    add2()
    assert get2() == 2 and get() == 1  # its own cell, shared by both, not the live one


def test_what_is_not_the_notebooks_goes_to_dill_as_before(main):
    other: dict = {"__name__": "__main__"}
    exec("def f(x):\n    return x\n", other)  # its globals are not __main__'s
    assert functions.reduce(other["f"], codec._plain) is None
    enc, back = round_trip(other["f"], other)
    assert enc.codec == codec.DILL and back(3) == 3
    ns = main("class Meta(type):\n    pass\nclass Local(metaclass=Meta):\n"
              "    def m(self):\n        return 1")  # fmt: skip
    enc, back = round_trip(ns["Local"])
    assert enc.codec == codec.DILL  # a class of a metaclass of its own, its methods: dill's
    assert back().m() == 1 and type(back).__name__ == "Meta"


def test_code_of_another_python_is_refused_not_run(main):
    fn = main("def value():\n    return 1")["value"]
    enc = codec.encode(fn, main_dict(), (fn,))
    assert enc.stream.count(functions.MAGIC) == 1
    other = bytes([functions.MAGIC[0] ^ 1]) + functions.MAGIC[1:]
    with pytest.raises(ForeignBytecode) as caught:
        codec.decode(enc.codec, enc.stream.replace(functions.MAGIC, other), [])
    said = describe(caught.value)
    assert other.hex() in said and "re-run the cell" in said


def test_saved_code_that_is_no_code_object_is_refused():
    with pytest.raises(TypeError, match="damaged"):
        functions.load_code(functions.MAGIC, marshal.dumps(None))
    with pytest.raises(TypeError, match="not a code object"):
        functions.make(None, "f", None)


def test_functions_of_one_factory_share_their_code(main):
    ns = main("def _factory(i):\n    def f():\n        return i\n    return f\n")
    fns = [ns["_factory"](i) for i in range(50)]
    enc, back = round_trip(fns)
    assert enc.codec == codec.PICKLE and enc.stream.count(functions.MAGIC) == 1
    assert len({id(f.__code__) for f in back}) == 1 and [f() for f in back] == list(range(50))


def test_the_same_function_pickles_to_the_same_bytes(main):
    # marshal's back-references depend on who else holds a constant: version 2 has none.
    fn = main("def value():\n    return ('a', 'constant', 1.5)")["value"]
    first = codec.encode(fn, main_dict(), (fn,)).stream
    held = [fn.__code__.co_consts, *fn.__code__.co_consts]
    assert codec.encode(fn, main_dict(), (fn,)).stream == first and held


def test_notebook_pickling_code_a_function_holds_runs_once(main):
    # The C pass would run the __getstate__, then fail at the module, and dill would run
    # it again: such a function is dill's from the start (helper-51 F2).
    ns = main(
        "import os\nclass Tracked:\n    calls = 0\n    def __getstate__(self):\n"
        "        Tracked.calls += 1\n        return {}\n"
        "def _factory(state, mod):\n    def f():\n        return state, mod\n    return f\n"
        "class Plain:\n    pass\n"
    )
    fn = ns["_factory"](ns["Tracked"](), ns["os"])
    enc = codec.encode(fn, ns, (fn,))
    assert enc.codec == codec.DILL and ns["Tracked"].calls == 1
    fn = ns["_factory"](ns["Plain"](), [1, {"a": (2,)}])  # plain: the C pickler's
    assert codec.encode(fn, ns, (fn,)).codec == codec.PICKLE
    assert codec.encode(ns["_factory"](ns["Tracked"](), 1), ns).codec == codec.DILL


def test_a_bound_method_of_a_notebook_function_keeps_partial_args(main):
    fn = main("def value(a, b):\n    return a - b")["value"]
    part = functools.partial(fn, 10)
    _, back = round_trip([part, fn])
    assert back[0](3) == 7 and back[0].func is back[1]  # one function, by value once


def test_a_function_reaching_itself_through_its_closure_is_saved_by_dill(main):
    # Not simple (an array beside it): dill's, whose save_function defers the cell that
    # reaches the function itself; a reduce there recursed forever (helper-53 N1).
    ns = main(
        "import numpy as np\ndef _make(table):\n    def solve(n):\n"
        "        return int(table[n]) if n < 3 else solve(n - 1) + 1\n    return solve\n"
    )
    solver = ns["_make"](np.arange(5))
    enc, back = round_trip(solver)
    assert enc.codec == codec.DILL and back(4) == solver(4) == 4
