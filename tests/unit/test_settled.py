"""What is proven unchanged is not walked or pickled for being named (``sharing.Settled``).

``unchanged.by_name`` (what pickles as its name) is checked against every public
attribute of many library modules (its claim: the pickle is the name, and the walk finds
no data of the notebook's in it); a value ``unchanged.Same`` vouches for, named, or after
a cell that may change anything, against a real journal and a restore (identity with a
variable that takes it in); ``graph._glance`` (a traitlets link's widgets, looked at)
against the walk it shortcuts.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import pickle
import sys
import tempfile
import types
from pathlib import Path

import ipywidgets as widgets
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_snapshot_props import (
    Notebook,
    describe,
    fresh_namespace,
    restore_anew,
    restored,
    user_names,
)  # (tests/unit: on the path)
from test_snapshot_props import shell as shell  # (the fixture)

from durable_nb import graph
from durable_nb.unchanged import by_name

pytestmark = pytest.mark.unit

LIBRARIES = ("json", "os.path", "math", "collections", "functools", "itertools", "operator",
             "datetime", "re", "time", "random", "statistics", "textwrap", "dataclasses",
             "typing", "pathlib", "asyncio", "IPython.display", "ipywidgets", "numpy",
             "pandas")  # fmt: skip


def _immutable_parts(fn: types.FunctionType) -> set[int]:
    """The ids of a function's defaults and what they hold (tuples of atoms, its keyword
    dict): what the walk keys in a function ``by_name`` accepted, none of it shared."""
    out, items = set(), [fn.__defaults__, fn.__kwdefaults__]
    while items:
        o = items.pop()
        if o is not None and id(o) not in out:
            out.add(id(o))
            items.extend(o.values() if type(o) is dict else o if type(o) is tuple else ())
    return out


def test_what_by_name_accepts_pickles_as_its_name_and_holds_no_data():
    accepted = 0
    for module in LIBRARIES:
        mod = importlib.import_module(module)
        for attr in dir(mod):
            try:
                value = getattr(mod, attr)
            except Exception:
                continue
            if not by_name(value):
                continue
            accepted += 1
            if type(value) is types.ModuleType:  # recorded as its name, imported again
                assert sys.modules[value.__name__] is value
                continue
            assert pickle.loads(pickle.dumps(value)) is value, (module, attr)
            ns: dict = {}
            reach = graph.reach(value, ns)
            assert not reach.names and not reach.kernel, (module, attr)
            data = reach.keys - {id(ns), id(sys.modules), id(vars(builtins))}
            if type(value) is types.FunctionType:
                data -= _immutable_parts(value)
            assert not data, (module, attr)
    assert accepted > 500  # (the claim was checked on many, not a few)


def _notebook_function():
    def inner():
        return 1

    return inner


class _Meta(type):
    @property
    def __module__(cls):  # the notebook's code: by_name must not run it
        raise RuntimeError("ran")


def test_by_name_refuses_what_holds_data_or_is_not_found_by_its_name(monkeypatch):
    rows: list = []
    refused = [
        rows.append,  # a builtin bound to data
        _notebook_function(),  # a closure, made elsewhere
        lambda: 1,
        pickle.loads.__call__,  # a method-wrapper
        _Meta("Hostile", (), {}),  # a class of the notebook's (its module read safely)
        type("Made", (json.JSONEncoder,), {"__module__": "__main__"}),
        json.JSONEncoder(),  # an instance
        types.ModuleType("json"),  # not the module ``json`` imports
    ]
    for value in refused:
        assert not by_name(value), value
    dumps = json.dumps
    held = dumps.__kwdefaults__  # a variable holds its keyword defaults: a change shows
    assert not by_name(dumps)
    del held
    assert by_name(dumps)
    monkeypatch.setattr(json, "dumps", lambda *a, **k: "")  # no longer found by its name
    assert not by_name(dumps)
    notebook = {"acc": []}  # the notebook's code posing as json's: what it changes is walked
    exec("def hook():\n    acc.append(1)", notebook)
    hook = notebook["hook"]
    hook.__module__, hook.__qualname__ = "json", "hook"
    monkeypatch.setattr(json, "hook", hook, raising=False)
    assert not by_name(hook)


def test_a_library_function_a_cell_names_is_not_walked_until_rebound(shell):
    """``display(x)`` each cell: ``display`` is saved by name once, then neither walked nor
    pickled; a library function whose keyword defaults a variable holds is walked, so a
    change made through it is saved; rebound, a name is saved again; restore equals."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run("from IPython.display import display\nimport json\nfrom json import dumps")
        assert {"display", "dumps"} <= nb.snaps.known.keys()
        for _ in range(3):
            nb.run("x = [1]\ndisplay\ndumps")
            assert not {"display", "dumps"} & nb.snaps._found.keys.keys()
        nb.run("kw = dumps.__kwdefaults__")  # now the keyword defaults are a variable's
        nb.run("dumps.__kwdefaults__['indent'] = 2")
        assert {"dumps", "kw"} <= nb.snaps._found.keys.keys()
        nb.run("display = 'rebound'")
        assert nb.snaps.known["display"].state == "saved" and "display" in nb.snaps._found.keys
        live, back = restored(shell, nb)
    json.dumps.__kwdefaults__["indent"] = None
    assert back == live and dict(back)["kw"][2] == dict(live)["kw"][2]


WIDGETS = st.sampled_from(["slider", "label", "plain", "number"])


@st.composite
def nested(draw, depth: int = 0):
    """A value of dicts, lists and tuples around widgets and plain objects."""
    leaf = draw(WIDGETS)
    if depth >= 3 or draw(st.booleans()):
        return {"slider": widgets.IntSlider, "label": widgets.Label,
                "plain": types.SimpleNamespace, "number": int}[leaf]()  # fmt: skip
    parts = draw(st.lists(nested(depth + 1), max_size=3))
    return draw(st.sampled_from([list, tuple, lambda p: dict(enumerate(p))]))(parts)


@settings(max_examples=40, deadline=None)
@given(value=nested())
def test_a_glance_sees_a_kernel_object_only_where_the_walk_does(value):
    seen = graph._glance([value], set())
    walked = graph.reach([value], {}).kernel
    assert not seen or walked
    link = widgets.link((widgets.IntSlider(), "value"), (widgets.IntSlider(), "value"))
    assert graph._kernel_held(link, {}) and graph._glance(graph.gc.get_referents(link), set())


def test_a_list_proven_unchanged_is_not_walked_yet_keeps_its_identity(shell):
    """A saved list of names that still holds the very objects is not walked when a cell
    or a function it calls names it, nor after ``exec``; changed, or taken into another
    variable, it is walked (and saved with that one: ``y[0] is tabs`` after a restore)."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run("tabs = ['P0', 'P1']\nn = len(tabs)")
        assert nb.snaps.known["tabs"].same is not None
        nb.run("m = len(tabs)")
        assert "tabs" not in nb.snaps._found.keys and "m" in nb.snaps._found.keys
        nb.run("exec('k = 1')")
        assert "tabs" not in nb.snaps._found.keys and "k" in nb.snaps._found.keys
        nb.run("def count():\n    return len(tabs)")
        nb.run("c = count()")  # a function naming it: what it names is looked at, not walked
        assert "tabs" not in nb.snaps._found.keys and "count" in nb.snaps._found.keys
        nb.run("exec('tabs.append(\"P2\")')")  # changed where no cell names it
        assert "tabs" in nb.snaps._found.keys
        nb.run("m = len(tabs)")
        nb.run("y = [tabs]")
        assert {"tabs", "y"} <= nb.snaps._found.keys.keys()
        live, back = restored(shell, nb)
    assert back == live
    names = [name for name, *_ in back]
    assert dict(back)["tabs"][2] == ["'P0'", "'P1'", "'P2'"] and {"y", "tabs"} <= set(names)


def test_after_a_cell_that_may_change_anything_a_widget_is_looked_at_not_walked(shell):
    """``exec`` or ``get_ipython`` re-checks every variable, so a widget (or the shell
    itself) still holding the kernel is not walked: a list it holds is saved anyway."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run("import ipywidgets\nip = get_ipython()\ndata = [1]\n"
               "w = ipywidgets.IntSlider()\nw.held = data")  # fmt: skip
        assert nb.snaps.known["w"].state == nb.snaps.known["ip"].state == "recompute"
        nb.run("exec('w.held.append(2)')")
        assert not {"w", "ip"} & nb.snaps._found.keys.keys() and "data" in nb.snaps._found.keys
        nb.run("w = ipywidgets.IntSlider()")  # a new one is looked at too
        assert "w" in nb.snaps._found.kernel
        live, back = restored(shell, nb)
    assert back == live and dict(back)["data"][2] == ["1", "2"]


def test_a_keywords_name_does_not_check_the_variable_of_that_name(shell):
    """``dict(options=1)`` beside a variable ``options`` whose check costs (a payload over
    16 KB, a widget, a walk and pickle that took long) neither walks nor pickles it; one
    that costs little is checked (reading the syntax tree would cost more). Every way a
    cell still names or changes it checks it: as a keyword's value, an item, a tuple
    target (a new object, which may take the old one's address), a function called with
    that keyword that changes it; the restore equals the live namespace."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run("import ipywidgets\noptions = [[i] for i in range(3000)]\n"
               "w = ipywidgets.IntSlider()\ndef poke(**kw):\n    options[2].append(7)")  # fmt: skip
        assert nb.snaps.known["options"].nbytes >= 16 << 10
        nb.run("n = [1]\nd = dict(options=1, w=2, n=3)")
        assert not {"options", "w"} & nb.snaps._found.keys.keys() and "d" in nb.snaps._found.keys
        nb.snaps.known["n"].took = 0.0  # its check costs less than reading the syntax tree
        nb.run("d = dict(n=1)")
        assert "n" in nb.snaps._found.keys and nb.snaps.known["n"].took > 0  # (kept)
        nb.snaps.known["n"].took = 1.0  # (its last walk and pickle, s): more
        nb.run("d = dict(n=1)")
        assert "n" not in nb.snaps._found.keys
        for cell in ("e = dict(options=options)", "f = dict(options=1)\noptions[0].append(9)",
                     "a, options = 1, [[i] for i in range(3000)]", "poke(options=1)"):  # fmt: skip
            nb.run(cell)
            assert "options" in nb.snaps._found.keys, cell
        nb.run("del w")  # (recomputed by its cell: the poke would not be redone)
        live, back = restored(shell, nb)
    assert back == live and shell.user_ns["options"][2] == [2, 7]  # (restored: poke's)


@pytest.mark.parametrize(
    "cell",
    [
        "bump(options=1)",  # its code finds the variable by the keyword's name
        "bump(**{'options': 1})",
        ";print (\na, options = 0, None\na, options = 0, [[-i] for i in range(3000)]",
        ">>> ;print (\na, options = 0, [[-i] for i in range(3000)]",  # (a prompt first)
        "bump.__globals__['options'][2].append(7)  # café (the syntax tree's path)",
        "import sys\nsys._getframe(0).f_globals['options'][2].append(7)  # café",
        "import inspect\ninspect.currentframe().f_locals['options'][2].append(7)",
    ],
)
def test_a_variable_reached_by_name_or_behind_an_escape_is_checked(shell, cell):
    """helper-97: a function reading its ``__globals__`` by the keyword's name changes the
    variable no code names (``__globals__``, ``f_globals``, ``_getframe``, ``__main__``
    re-check every variable, as ``globals`` does); an IPython escape's bracket (``;print (``
    runs ``print("(")``) is no bracket: the tuple targets after it rebind the variable,
    maybe to an object at the old one's address. The restore equals the live namespace."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder))
        nb.run("options = [[i] for i in range(3000)]\ndef bump(**kw):\n"
               "    g = bump.__globals__\n    for k in kw:\n        g[k][2].append(7)")  # fmt: skip
        nb.run(cell)
        assert "options" in nb.snaps._found.keys
        live, back = restored(shell, nb)
    assert back == live


def test_a_sweep_narrowed_still_checks_all_when_that_spares_walking_new_widgets(shell):
    """Slow cells narrowed the sweep to one variable a cell; a cell making widgets checks
    every saved variable instead (their checks cost less than walking the widgets), so the
    widgets are looked at, not walked, and what a widget took in and changed is saved."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run("import ipywidgets\nrows = [[1], [2]]\nboxes = [{'a': [1]}]\nkeep = rows")
        nb.run("n = 1")
        nb.snaps.sweep.window = 1  # as after slow cells
        nb.snaps.sweep.kernel_walk = 1.0  # a walk takes long: checking all is cheaper
        nb.run("w = ipywidgets.IntSlider()\nw.held = keep\nw.held.append([3])")
        assert "w" in nb.snaps._found.kernel and "w" not in nb.snaps._found.seconds
        assert {"rows", "boxes"} <= nb.snaps._found.keys.keys()
        nb.snaps.sweep.window, nb.snaps.sweep.kernel_walk = 1, 0.0  # walking is cheaper
        nb.run("v = ipywidgets.IntSlider()")
        assert "v" in nb.snaps._found.seconds  # walked
        nb.run("del w, v")  # (a restore would re-run their cells: the append again)
        live, back = restored(shell, nb)
    assert back == live and len(dict(back)["keep"][2]) == 3  # [1], [2], [3] (keep is rows)


def test_what_a_proven_container_holds_besides_atoms_keeps_its_identity(shell):
    """A list of tuples is walked when named (a walk keys an object with one holder only
    as that holder is walked): ``first = rows[0][1]`` keeps ``first is rows[0][1]``."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run("rows = [(i, (i * 0.5, -i * 0.5)) for i in range(1100)]\nflat = [1, 'a']")
        assert nb.snaps.known["flat"].same.flat and not nb.snaps.known["rows"].same.flat
        nb.run("first = rows[0][1]")
        nb.run("n = len(rows)")
        live, back = restored(shell, nb)
    assert back == live  # (describe numbers objects: first is the tuple in rows)


def test_a_look_at_state_runs_no_code_and_stays_out_of_the_notebooks_globals():
    ran: list = []

    class Sneaky:
        @property
        def __dict__(self):
            ran.append(1)
            return {}

    assert graph.kernel_in_state(Sneaky()) == "" and not ran
    assert graph._glance([[Sneaky()]], set()) == "" and not ran
    ns = {"w": widgets.IntSlider()}
    assert graph._glance([ns], {id(ns)}) == "" and graph._glance([ns], set())


@pytest.mark.parametrize("sweep", [False, True])
def test_a_restored_value_a_recomputed_cell_changes_is_loaded_again(shell, sweep):
    """A restore re-runs the cell that made a widget; that cell also appended to a saved
    list (the live run did so once): the list, and the variable it is one object with, are
    loaded again from the journal, not left with the append made twice."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=sweep)
        nb.run("import ipywidgets\nrows = [[1], [2]]\nkeep = rows\nalone = ['a']")
        nb.run("w = ipywidgets.IntSlider()\nw.held = keep\nw.held.append([3])\nalone.append('b')")
        names = user_names(shell)
        live = describe(shell.user_ns, names)
        nb.close()
        fresh_namespace(shell)
        nb = Notebook(shell, Path(folder))
        report = nb.snaps.restore()
        nb.close()
        back = describe(shell.user_ns, names)
    assert (
        back == live
        and len(shell.user_ns["keep"]) == 3
        and shell.user_ns["keep"] is shell.user_ns["rows"]
    )
    assert shell.user_ns["alone"] == ["a", "b"] and report.reloaded == ["alone", "keep", "rows"]
    assert "ipywidgets" in report.restored  # (a module: imported, never loaded again)
    assert "loaded alone, keep, rows again" in str(report)


def test_a_function_holding_a_widget_is_walked_for_what_its_code_changes(shell):
    """``interact(f)`` sets ``f.widget``: a cell naming ``f`` walks it whole, widget too.
    helper-100 F1: settled by a look at its widget (as a widget variable is), ``f`` was not
    walked, and ``f(5)`` emptying a list recorded for recompute (it held a generator) went
    unseen: the restore re-ran its cell instead of saving ``[5]`` (helpers 101 and 102 found
    the same of a walk leaving out its widget: what a call changes through it)."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run("import ipywidgets\npending = [(i for i in range(3))]")
        assert nb.snaps.known["pending"].state == "recompute"
        nb.run("def f(x=0):\n    pending.clear()\n    pending.append(x)\n"
               "f.widget = ipywidgets.IntSlider()  # as interact(f) does")  # fmt: skip
        nb.run("f(5)")
        assert nb.snaps.known["pending"].state == "saved"
        nb.run("del f")  # (recomputed by its cell: its widget made again)
        live, back = restored(shell, nb)
    assert back == live and dict(back)["pending"][2] == ["5"]


def test_a_functions_attributes_are_read_without_its_dicts_code(shell):
    """helper-100 F1b: a function's ``__dict__`` may be a notebook dict subclass: saving
    never calls its methods (``values`` raising had escaped the save)."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run("import ipywidgets\ncalls = []\nclass D(dict):\n    def values(self):\n"
               "        calls.append(1)\n        raise RuntimeError('boom')\n"
               "def f():\n    return 1\nf.__dict__ = D(widget=ipywidgets.IntSlider())")  # fmt: skip
        for _ in range(3):
            nb.run("f()")
        assert shell.user_ns["calls"] == []
        nb.close()


def test_a_class_registered_with_ios_abcs_is_never_pickled(shell, tmp_path):
    """helper-100 F2: the walk's ``openfiles.file_type`` reads io's C base only (io's ABC
    is ~10 µs the first time it meets a type); a class only registered with io's ABCs,
    holding a file descriptor, is still refused when saved (``openfiles.abc_file``, asked
    by the snapshot and the pickles), never saved with a stale descriptor; what it shares
    is saved."""
    (tmp_path / "f").write_text("x")
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run("import io, os\nclass Raw:\n    def __init__(self, path):\n"
               "        self.fd = os.open(path, os.O_RDONLY)\n        self.rows = [1]\n"
               f"io.RawIOBase.register(Raw)\nraw = Raw({str(tmp_path / 'f')!r})\n"
               "rows = raw.rows")  # fmt: skip
        nb.run("rows.append(2)")
        known = nb.snaps.known
        assert known["raw"].state != "saved" and known["rows"].state == "saved"
        os.close(shell.user_ns["raw"].fd)
        nb.run("del raw")  # (recomputed by its cell: the file opened again)
        live, back = restored(shell, nb)
    assert back == live and dict(back)["rows"][2] == ["1", "2"]


@pytest.mark.parametrize(
    "cells",
    [
        # an attribute shares a list with a variable recorded for recompute
        ["def f():\n    return 0\nf.widget = ipywidgets.IntSlider()\nf.store = pending",
         "f.store.clear()\nf.store.append(5)"],
        # an attribute is a function, or an instance, whose code changes that variable
        ["def g(x):\n    pending.clear()\n    pending.append(x)\ndef f():\n    return 0\n"
         "f.widget = ipywidgets.IntSlider()\nf.helper = g", "del g", "f.helper(5)"],
        ["class H:\n    def go(self, x):\n        pending.clear()\n        pending.append(x)\n"
         "def f():\n    return 0\nf.widget = ipywidgets.IntSlider()\nf.h = H()", "f.h.go(5)"],
        # an attribute uses globals(): every variable is checked
        ["def f():\n    return 0\nf.widget = ipywidgets.IntSlider()\n"
         "f.reset = lambda x: globals()['pending'].__setitem__(slice(None), [x])", "f.reset(5)"],
    ],
)  # fmt: skip
def test_what_a_function_holding_a_widget_changes_through_its_attributes_is_saved(shell, cells):
    """helper-101: what a function holding a widget changes through its attributes (their
    data, their functions' globals) is checked when a cell names it."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        for cell in ["import ipywidgets\npending = [(i for i in range(3))]", *cells]:
            nb.run(cell)
        assert nb.snaps.known["pending"].state == "saved"
        nb.run("del f" + (", H" if "H" in shell.user_ns else ""))  # (remade by their cells)
        live, back = restored(shell, nb)
    assert back == live and dict(back)["pending"][2] == ["5"]


def test_a_function_whose_widget_is_dropped_elsewhere_is_saved_again(shell):
    """helper-101 F2: a variable reaching a function holding a widget (``holder = [f]``)
    ties the function, saved again once its widget goes."""
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run("import ipywidgets\ndef f():\n    return 0\nf.widget = ipywidgets.IntSlider()\n"
               "f.n = [1]\nholder = [f]")  # fmt: skip
        nb.run("f()")
        nb.run("del holder[0].widget\nholder[0].n.append(2)")
        assert nb.snaps.known["f"].state == "saved"
        restore_anew(shell, nb)
    f = shell.user_ns["f"]
    assert f.n == [1, 2] and not hasattr(f, "widget") and shell.user_ns["holder"][0] is f


@pytest.mark.parametrize(
    "extra", ["", "\nraw.cb = lambda: 0", "\nholder = [raw]"]
)  # (its own pickle: plain, or the full pickler; inside a list)
def test_a_class_registered_with_ios_abcs_after_its_first_save_is_never_pickled(
    shell, tmp_path, extra
):
    """helper-102 F2: io's ABC is asked anew for a value saved (its own caches follow
    registrations), not a per-type answer kept from before the class was registered."""
    (tmp_path / "f").write_text("x")
    fresh_namespace(shell)
    with tempfile.TemporaryDirectory() as folder:
        nb = Notebook(shell, Path(folder), sweep=True)
        nb.run("import io, os\nclass Raw:\n    def __init__(self, path=None):\n"
               "        self.fd = os.open(path, os.O_RDONLY) if path else None\n"
               f"first = Raw(){extra.replace('raw', 'first')}")  # fmt: skip
        assert nb.snaps.known["first"].state == "saved"
        nb.run("io.RawIOBase.register(Raw)")
        nb.run(f"raw = Raw({str(tmp_path / 'f')!r}){extra}")
        known = nb.snaps.known
        assert known["raw"].state != "saved" and known.get("holder", known["raw"]).state != "saved"
        os.close(shell.user_ns["raw"].fd)
        nb.close()
