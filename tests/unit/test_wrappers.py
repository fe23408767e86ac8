"""wrappers.py: functools' cache and singledispatch wrappers of notebook functions, saved as
what makes them again, refused (recomputed) when they are not what functools made."""

from __future__ import annotations

import fnmatch
import functools
import gc
import importlib
import json
import sys
import weakref

import pytest
from test_functions import assert_same_function, round_trip  # (on the path)
from test_snapshot_props import Notebook, fresh_namespace, restore_anew  # (on the path)
from test_snapshot_props import shell as shell  # (the fixture)

from durable_nb import codec, graph, names, prints, unchanged

FIB = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)"
CACHES = ["functools.lru_cache", "functools.lru_cache(maxsize=3, typed=True)", "functools.cache"]


@pytest.mark.parametrize("deco", CACHES)
def test_a_notebook_function_with_an_empty_cache_comes_back_by_value(main, deco):
    ns = main(f"import functools\n@{deco}\n{FIB}")
    fn = ns["fib"]
    fn.note = ("kept",)
    enc, back = round_trip(fn)
    assert type(back) is names.CACHED and back is not fn and enc.codec == codec.PICKLE
    assert back.cache_parameters() == fn.cache_parameters() and back.note == ("kept",)
    assert back(20) == 6765 and back.cache_info().currsize > 0  # (its recursion: the live fib)
    assert_same_function(back.__wrapped__, fn.__wrapped__)
    _, held = round_trip([fn, functools.partial(fn, 5)])  # held by another value: by name
    assert held[0] is fn and held[1].func is fn and held[1]() == 5
    library = functools.cache(json.dumps)  # a library's: the pickler's own way (dill's)
    assert round_trip(library)[1]("x") == '"x"'  # (and its type is no ordinary one after)
    fn.cache_clear()
    assert round_trip(fn)[1] is not fn
    for callable_ in (functools.partial(pow, 2), ns["fib"].__wrapped__):  # no name of its own
        assert round_trip(functools.lru_cache(callable_))[1](3) in (8, 2)


def refused(fn, why: str) -> None:
    with pytest.raises(codec.Unserializable, match=why):
        codec.encode(fn, None, (fn,))


@pytest.mark.parametrize("result", ["{}", "uuid.uuid4().hex", "(n, 'x')"])
def test_a_cache_holding_results_is_refused(main, result):
    """Saved empty, a call would compute again what the cache had kept: another id, a dict
    without what a later cell set in it (``@cache def settings(): return {}``)."""
    ns = main(f"import functools, uuid\n@functools.cache\ndef made(n):\n    return {result}")
    made = ns["made"]
    round_trip(made)  # empty: saved
    made(1)
    refused(made, "its cache holds 1 result, which would come back empty")
    made.cache_clear()
    assert round_trip(made)[1] is not made


def test_what_functools_did_not_make_so_is_refused(main):
    ns = main(
        "import functools\ndef public(x):\n    return 'PUBLIC'\ndef impl(x):\n    return 'IMPL'\n"
        "fast = functools.update_wrapper(functools.lru_cache(impl), public)\n"
        "@functools.lru_cache(maxsize=None)\n@functools.lru_cache(maxsize=1, typed=True)\n"
        "def kind(x):\n    return type(x).__name__\n"
        "@functools.cache\ndef twice(n):\n    return 2 * n\n"
        "twice.cache_parameters = lambda: {'maxsize': 1, 'typed': False}\n"
        "@functools.cache\ndef moved(n):\n    return n\nmoved.__wrapped__ = public\n"
    )  # fmt: skip
    refused(ns["fast"], "its __wrapped__ is not the function its cache calls")
    refused(ns["moved"], "its __wrapped__ is not the function its cache calls")
    refused(ns["kind"], "a cache of a cache")
    refused(ns["twice"], "its cache_parameters is not functools' own")


def test_names_of_str_subclasses_run_none_of_their_code_and_still_restore(main):
    ns = main(
        "import functools\nclass S(str):\n    n = 0\n    def __eq__(self, o):\n        S.n += 1\n"
        "        return str.__eq__(self, o)\n    __hash__ = str.__hash__\n"
        "    def partition(self, sep):\n        S.n += 100\n"
        "        return str.partition(self, sep)\n    split = partition\n"
        "@functools.cache\ndef f(x):\n    return x\ndef g(x):\n    return -x\nclass B:\n    pass\n"
    )  # fmt: skip
    s = ns["S"]
    f, g, b = ns["f"], ns["g"], ns["B"]
    f.__module__, f.__qualname__ = s("__main__"), s("f")
    g.__qualname__, b.__module__ = s("g"), s("__main__")
    for value in (f, g, b, [f, g, b]):
        s.n = 0
        reach = graph.reach(value, ns)
        assert s.n == 0 and reach.refs >= ({"f", "g", "B"} if type(value) is list else set())
        enc = codec.encode(value, ns, (value,))  # (B by value is dill's: its own compares)
        assert s.n == 0 or value is b, value
        back = codec.decode(enc.codec, enc.stream, enc.buffers)
        if value in (f, g):
            assert back(1) == value(1)
            f.cache_clear()
    assert back[0](1) == 1 and back[1] is g and back[2] is b  # (bound: by their names)
    s.n = 0
    assert not unchanged.by_name(b) and not graph.own_module(s("json")) and s.n == 0


def test_a_singledispatch_function_comes_back_with_what_was_registered(main):
    ns = main(
        "import functools\nclass Node:\n    pass\n@functools.singledispatch\ndef show(x):\n"
        "    return 'obj'\n@show.register\ndef _(x: int):\n    return 'int'\n"
        "show.register(Node, lambda x: 'node')\nshow.note = 'kept'\n"
    )  # fmt: skip
    show = ns["show"]
    enc, back = round_trip(show)
    assert enc.codec == codec.PICKLE and back is not show and back.note == "kept"
    assert [back(1), back("a"), back(ns["Node"]()), back(True)] == ["int", "obj", "node", "int"]
    assert list(back.registry) == list(show.registry)
    assert_same_function(back.__wrapped__, show.__wrapped__)
    assert prints.Print(show, ns, (show,)).parts is None  # (pickled again when used)


def test_a_singledispatch_function_whose_registry_is_not_the_dispatching_one_is_refused(main):
    ns = main("import functools, types\n@functools.singledispatch\ndef show(x):\n    return 1\n")
    ns["show"].registry = __import__("types").MappingProxyType({object: ns["show"].__wrapped__})
    refused(ns["show"], "registry is not the one dispatching")
    ns = main("@functools.singledispatch\ndef other(x):\n    return 1\nother.__wrapped__ = len\n")
    refused(ns["other"], "whose __wrapped__ is not its default")


def test_a_singledispatch_function_for_a_class_redefined_since_is_refused(main):
    """Pickled by value in two payloads, the old class would come back as two classes: a
    restored instance of it would dispatch to the default, silently."""
    ns = main("import functools\nclass A:\n    pass\n@functools.singledispatch\ndef show(x):\n"
              "    return 'obj'\nshow.register(A, lambda x: 'A')\na1 = A()\n")  # fmt: skip
    codec.encode(ns["show"], ns, (ns["show"],))  # (A is bound: by its name)
    main("class A:\n    pass\n")
    with pytest.raises(
        codec.Unserializable, match="registered for a class not found again by its name"
    ):
        codec.encode(ns["show"], ns, (ns["show"],))


def test_cached_and_dispatching_functions_are_restored(shell, tmp_path):
    """A restore met ``KeyError``: a cache wrapper's own pickle is its name; a
    singledispatch function was made again by its cell, without later registrations (a
    call dispatched otherwise, silently), and the ``_`` they bind is never saved."""
    fresh_namespace(shell)
    nb = Notebook(shell, tmp_path)
    nb.run(f"import functools\n@functools.cache\n{FIB}\nlater = functools.partial(fib, 30)\n"
           "double = functools.lru_cache(maxsize=8)(lambda x: (x, x))\npair = (1, 1)\n"
           "@functools.singledispatch\ndef show(x):\n    return 'obj'")  # fmt: skip
    nb.run("@show.register\ndef _(x: int):\n    return 'int'\nhandlers = [_]")
    nb.run("y = fib(25)\nfib.cache_clear()")  # (a cache holding results is made again)
    nb.run("state = functools.cache(lambda: {})\nstate()['debug'] = True")  # made again
    expected = {**dict.fromkeys(["fib", "double", "later", "pair", "show", "handlers", "y"],
                                "saved"), "state": "recompute"}  # fmt: skip
    assert {n: nb.snaps.known[n].state for n in expected} == expected
    assert "its cache holds 1 result" in nb.snaps.known["state"].detail
    shell.user_ns.pop("_", None)  # IPython's, never saved (a new kernel's holds another value)
    restore_anew(shell, nb)  # (asserts nothing was skipped)
    ns = shell.user_ns
    assert type(ns["fib"]) is names.CACHED and ns["later"].func is ns["fib"]
    assert ns["later"]() == 832040 and ns["y"] == 75025 and ns["double"](2) == (2, 2)
    assert ns["double"].cache_parameters()["maxsize"] == 8 and ns["pair"] == (1, 1)
    assert [ns["show"](1), ns["show"]("a")] == ["int", "obj"] and ns["handlers"][0](1) == "int"
    assert ns["state"]() == {"debug": True}


def test_a_weakly_referenced_object_is_keyed_whatever_its_metaclass_says():
    """The type's weak reference slot is read in C: a metaclass attribute
    ``__weakrefoffset__ = 0`` had the walk take a weakly referenced object for lone."""
    meta = type("M", (type,), {"__weakrefoffset__": 0})
    cls = meta("C", (), {})
    for rows in ([cls() for _ in range(100)], [cls() if i % 2 else len for i in range(100)]):
        ref, held = weakref.ref(rows[5]), id(rows[5])  # (no other reference to it)
        found = graph.reach(rows, {}).keys
        assert held in found and ref() is rows[5]


def test_a_cache_with_no_notebook_name_holding_results_is_refused(main):
    """The pickler's (or dill's) own way saved it empty, silently (helper-72 F-D)."""
    ns = main("import functools, random\ndef mk(p, n):\n    return p + str(n)\n"
              "rid = functools.lru_cache(functools.partial(mk, 'id-'))\n"
              "rnd = functools.cache(random.random)\n"
              "@functools.cache\ndef f(n):\n    return n\n")  # fmt: skip
    ns["rid"](1), ns["rnd"](), ns["f"](1)
    del ns["f"].__qualname__
    for name in ("rid", "rnd", "f"):
        refused(ns[name], "its cache holds 1 result")
    fnmatch.fnmatch("a.py", "*.py")  # a library's own cache, found again by its name
    assert fnmatch._compile_pattern.cache_info().currsize > 0
    assert round_trip([fnmatch._compile_pattern])[1][0] is fnmatch._compile_pattern


def test_a_singledispatch_function_for_a_class_of_a_reloaded_module_is_refused(main, tmp_path):
    """After a reload, the old class is no longer found by its name: each payload would
    make (or load) another, and its instances would dispatch to the default (F-C)."""
    (tmp_path / "dnb_shapes.py").write_text("class Shape:\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        ns = main("import functools, importlib, dnb_shapes\n@functools.singledispatch\n"
                  "def show(x):\n    return 'obj'\n"
                  "show.register(dnb_shapes.Shape, lambda x: 'S')\n")  # fmt: skip
        codec.encode(ns["show"], ns, (ns["show"],))  # (found by its name: saved)
        importlib.reload(sys.modules["dnb_shapes"])
        refused(ns["show"], "registered for a class not found again by its name")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("dnb_shapes", None)


def test_names_read_no_notebook_code_for_an_instance_or_a_class_dict_key(main):
    ns = main("class S(str):\n    n = 0\n    def __eq__(self, o):\n        S.n += 1\n"
              "        return str.__eq__(self, o)\n    __hash__ = str.__hash__\n"
              "    def partition(self, sep):\n        S.n += 100\n"
              "        return str.partition(self, sep)\n"
              "class B:\n    pass\nB.__module__ = S('__main__')\nb = B()\n"
              "class K:\n    locals()[S('tag')] = 1\n")  # fmt: skip
    s = ns["S"]
    s.n = 0
    graph.reach([ns["b"]], ns)  # (its class's kind: read in C)
    assert names.of(ns["K"]) == (None, None) and s.n == 0


def test_a_static_types_names_are_read_from_its_c_name_not_its_dict(main):
    # A key that is no string planted in a C type's own dict (gc hands out the dict behind
    # the read-only view) has its __eq__ run by a lookup there; names never look there.
    ns = main("class Key:\n    calls = 0\n"
              "    def __hash__(self):\n        return hash('__module__')\n"
              "    def __eq__(self, other):\n        Key.calls += 1\n"
              "        return False\n")  # fmt: skip
    static = type(iter([]))  # (list_iterator: a type no other test reads)
    real = gc.get_referents(vars(static))[0]
    real[ns["Key"]()] = 1
    try:
        assert names.of(static) == ("builtins", "list_iterator")
        assert ns["Key"].calls == 0
    finally:
        del real[next(k for k in real if type(k) is ns["Key"])]
    assert all(type(k) is str for k in vars(static))
