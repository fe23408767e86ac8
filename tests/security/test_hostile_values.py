"""Values whose own code raises while they are saved: one value is lost, never the snapshot.

A namespace holds what its notebook made, and saving reads it: a ``__reduce__``, a
property, ``__getattr__``, a metaclass's ``__getattribute__``. Each class here is
generated: which of its hooks raises, what it raises (``SystemExit`` and
``GeneratorExit`` too: a ``SystemExit`` from a ``__reduce_ex__`` ended the process), and
where the value sits (alone, in a list another variable shares, in a dict, as a class
attribute, behind a function). The snapshot must not raise; the other variables are saved
and restored; the value is saved, or recorded to be recomputed. A real IPython shell runs
the cells; ``Snapshots`` saves into a real journal.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from durable_nb.cells import variables
from durable_nb.runtime import Runtime
from durable_nb.snapshot import Snapshots

#: The class's hook that raises, as code in its body.
HOOKS = {
    "getattr": "def __getattr__(self, name):\n        {raise_}",
    "getattribute": "def __getattribute__(self, name):\n        {raise_}",
    "reduce_ex": "def __reduce_ex__(self, protocol):\n        {raise_}",
    "reduce": "def __reduce__(self):\n        {raise_}",
    "getstate": "def __getstate__(self):\n        {raise_}",
    "setstate": "def __setstate__(self, state):\n        {raise_}",
    "class": "@property\n    def __class__(self):\n        {raise_}",
    "dict": "@property\n    def __dict__(self):\n        {raise_}",
    "len": "def __len__(self):\n        {raise_}",
    "iter": "def __iter__(self):\n        {raise_}",
    "eq": "def __eq__(self, other):\n        {raise_}\n    __hash__ = object.__hash__",
    "sizeof": "def __sizeof__(self):\n        {raise_}",
    "copy": "def __copy__(self):\n        {raise_}",
    "deepcopy": "def __deepcopy__(self, memo):\n        {raise_}",
}
#: What it raises; the last one's message cannot be read either (its ``__str__`` raises).
RAISES = [
    "raise RuntimeError('hostile')",
    "raise SystemExit(3)",
    "raise GeneratorExit",
    "raise RecursionError",
    "raise AttributeError(name if 'name' in dir() else 'x')",
    "raise TypeError",
    "raise StopIteration",
    "raise MemoryError",
    "raise asyncio.CancelledError()",  # a BaseException: it left every later cell unreplied
    "raise Custom()",  # a BaseException of the notebook's
    "raise Unprintable()",
]
#: Where the value is put, next to a variable ``keep`` that must come back.
PLACES = [
    "v = Hostile()",
    "shared = [1]\nv = [Hostile(), shared]\nw = shared",
    "v = {'k': Hostile(), 'n': [1]}",
    "class Holder:\n    item = Hostile()\nv = Holder",
    "h = Hostile()\ndef v():\n    return h",
    "v = (lambda h: (lambda: h))(Hostile())",
]
METACLASS = (
    "class Meta(type):\n    def __getattribute__(cls, name):\n"
    "        if name.startswith('__') and name != '__name__':\n            {raise_}\n"
    "        return type.__getattribute__(cls, name)\n"
)


@pytest.fixture(scope="module")
def shell():
    return InteractiveShell.instance()


def _clear(shell) -> None:
    hidden = shell.user_ns_hidden
    for name in [n for n in shell.user_ns if type(n) is str and n not in hidden
                 and not n.startswith("_")]:  # fmt: skip
        del shell.user_ns[name]


def _run(shell, rt: Runtime, snaps: Snapshots, code: str) -> None:
    rt.begin_cell(None, code)
    result = shell.run_cell(code, store_history=False, silent=True)
    assert result.success, f"{code}\n{result.error_in_exec or result.error_before_exec}"
    snaps.after_cell(code, True)  # must not raise, whatever the values do
    rt.end_cell("ok", None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    hooks=st.sets(st.sampled_from(sorted(HOOKS)), min_size=1, max_size=3),
    raise_=st.sampled_from(RAISES),
    place=st.sampled_from(PLACES),
    meta=st.booleans(),
)
@example(hooks={"setstate"}, raise_="raise SystemExit(3)", place=PLACES[0], meta=False)
@example(hooks={"reduce_ex"}, raise_="raise SystemExit(3)", place=PLACES[1], meta=False)
@example(hooks={"reduce_ex"}, raise_="raise asyncio.CancelledError()", place=PLACES[1], meta=False)
def test_a_value_whose_code_raises_is_lost_alone(shell, hooks, raise_, place, meta):
    body = "\n    ".join(HOOKS[h].format(raise_=raise_) for h in sorted(hooks))
    setup = (
        "import asyncio\nclass Custom(BaseException):\n    pass\n"
        "class Unprintable(Exception):\n    def __str__(self):\n        raise ValueError\n"
        + (METACLASS.format(raise_=raise_) if meta else "")
        + f"class Hostile{'(metaclass=Meta)' if meta else ''}:\n    {body}\n"
        + "    def __init__(self):\n        self.n = 1\n"
    )
    _clear(shell)
    with tempfile.TemporaryDirectory() as folder:
        rt = Runtime(str(Path(folder) / "nb.ipynb"))
        snaps = Snapshots(shell, rt)
        _run(shell, rt, snaps, "keep = [1]")
        _run(shell, rt, snaps, setup + place)
        _run(shell, rt, snaps, "keep.append(2)\nother = {'a': keep}")
        assert snaps.known["v"].state in ("saved", "recompute")
        assert {"keep", "other"} <= snaps.known.keys()
        lost = snaps.known["v"].state == "recompute"
        _clear(shell)
        try:
            Snapshots(shell, rt).restore()  # a new kernel's, on the same journal
        finally:
            rt.close()
    ns = shell.user_ns
    assert ns["keep"] == [1, 2] and ns["other"]["a"] is ns["keep"]
    if lost and "w" in ns and "shared" in ns:  # saved beside the one that could not be
        assert ns["w"] is ns["shared"]


@pytest.mark.parametrize(
    "raise_", ["raise SystemExit(3)", "raise GeneratorExit", "raise Unprintable()"]
)
def test_step_results_whose_pickle_or_load_raises(tmp_path, monkeypatch, raise_):
    """A result whose pickle raises is returned, not journaled, and the cell goes on; a
    journaled one whose load raises is replayed as durable_nb's error naming the step,
    never as the ``SystemExit`` (which ended the process)."""
    import durable_nb as dnb
    from durable_nb import runtime
    from durable_nb.errors import DurableError

    monkeypatch.setenv("DURABLE_NB_DIR", str(tmp_path))
    ns: dict = {"__name__": "hostile_results"}
    exec(
        "class Unprintable(Exception):\n    def __str__(self):\n        raise ValueError\n"
        f"class NoPickle:\n    def __reduce_ex__(self, protocol):\n        {raise_}\n"
        f"class NoLoad:\n    def __init__(self):\n        self.n = 1\n"
        f"    def __setstate__(self, state):\n        {raise_}\n",
        ns,
    )
    rt = Runtime(str(tmp_path / "notebook.py"))
    runtime.install(rt)
    made = dnb.step(lambda kind: ns[kind]())

    def cell(kind: str):
        rt.begin_cell(None, f"made({kind!r})")
        try:
            return made(kind)
        finally:
            rt.end_cell("ok", None)

    try:
        assert type(cell("NoPickle")) is ns["NoPickle"]
        assert type(cell("NoPickle")) is ns["NoPickle"]  # not journaled: run again
        assert type(cell("NoLoad")) is ns["NoLoad"]
        with pytest.raises(DurableError, match="cannot be loaded"):
            cell("NoLoad")  # journaled: replayed, and its load raises
    finally:
        runtime.install(None)
        rt.close()


def test_a_value_that_cannot_be_read_has_every_variable_checked(shell):
    """What a value that raises when walked reaches is unknown, so is what a cell changed
    through it: every variable is checked (the sweep off: the rule alone)."""
    _clear(shell)
    with tempfile.TemporaryDirectory() as folder:
        rt = Runtime(str(Path(folder) / "nb.ipynb"))
        snaps = Snapshots(shell, rt)
        snaps.sweep.bytes = 0
        _run(shell, rt, snaps, "shared = [1]")
        _run(shell, rt, snaps, METACLASS.format(raise_="raise RuntimeError") + (
            "class Box(metaclass=Meta):\n    def __init__(self, items):\n"
            "        self.items = items\nv = Box(shared)"))  # fmt: skip
        _run(shell, rt, snaps, "v.items.append(2)")
        _clear(shell)
        try:
            Snapshots(shell, rt).restore()
        finally:
            rt.close()
    assert shell.user_ns["shared"] == [1, 2]


def test_keys_that_are_no_names_and_a_thread_adding_globals(shell):
    """A key whose hash raises once it is in the namespace, and a thread adding and
    removing globals while the notebook's variables are listed: the pass never fails."""
    _clear(shell)
    ns = shell.user_ns
    shell.run_cell(
        "class K:\n    calls = 0\n    def __hash__(self):\n        K.calls += 1\n"
        "        if K.calls > 1:\n            raise RuntimeError('hash')\n        return 1\n"
        "globals()[K()] = 3\ny = [1]",
        silent=True,
    )
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            ns[f"t{i % 50}"] = i
            ns.pop(f"t{(i + 25) % 50}", None)
            i += 1

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        for _ in range(2000):
            found = variables(ns, shell.user_ns_hidden, ())
            assert found["y"] == [1]
    finally:
        stop.set()
        thread.join()
        ns["K"].calls = -(10**9)  # its hash works again: the key can be taken out
        for key in [k for k in ns if type(k) is not str]:
            del ns[key]


def test_a_module_made_in_a_cell_is_made_again_not_imported(shell):
    """``types.ModuleType('json')`` made in a cell was recorded as the module ``json``: a
    restore imported the real one, silently, without the cell's ``x``."""
    _clear(shell)
    with tempfile.TemporaryDirectory() as folder:
        rt = Runtime(str(Path(folder) / "nb.ipynb"))
        snaps = Snapshots(shell, rt)
        _run(shell, rt, snaps, "import json, types\nfake = types.ModuleType('json')\nfake.x = 1")
        assert snaps.known["fake"].state == "recompute" and snaps.known["json"].state == "module"
        _clear(shell)
        try:
            report = Snapshots(shell, rt).restore()
        finally:
            rt.close()
    assert shell.user_ns["fake"].x == 1 and "fake" in report.recomputed, report


def test_a_value_first_seen_after_a_failed_cell_is_not_made_by_rerunning_the_next(shell):
    """A value made by a cell that failed is first seen after the next cell: a restore
    re-ran that next cell to make it, which did again what it did to restored values
    (``keep`` came back ``[1, 5, 5]``). A cell is re-run for the names it, or the
    notebook's functions it calls, may assign."""
    _clear(shell)
    with tempfile.TemporaryDirectory() as folder:
        rt = Runtime(str(Path(folder) / "nb.ipynb"))
        snaps = Snapshots(shell, rt)
        _run(shell, rt, snaps, "keep = [1]")
        failing = "v = (i for i in range(3))\n1 / 0"
        rt.begin_cell(None, failing)
        assert not shell.run_cell(failing, store_history=False, silent=True).success
        snaps.after_cell(failing, False)
        rt.end_cell("error", "ZeroDivisionError")
        _run(shell, rt, snaps, "keep.append(5)")
        _run(shell, rt, snaps, "def make():\n    global gen\n    gen = (i for i in range(2))")
        _run(shell, rt, snaps, "make()")
        assert snaps.known["v"].state == snaps.known["gen"].state == "recompute"
        _clear(shell)
        try:
            report = Snapshots(shell, rt).restore()
        finally:
            rt.close()
    ns = shell.user_ns
    assert ns["keep"] == [1, 5] and "v" not in ns and "does not assign it" in report.skipped["v"]
    assert list(ns["gen"]) == [0, 1] and "gen" in report.recomputed, report
