"""A notebook function or class is pickled again only when what its payload is made of
changed (durable_nb.unchanged): random changes through aliases (defaults, keyword
defaults, closure cells, attributes, class attributes, inherited methods, code, -0.0),
some of which change nothing; equal prints must mean equal payloads, and a restore from
a journal written with the reuse on must equal the live namespace.
"""

from __future__ import annotations

import datetime
import inspect
import math
import pickle
import sys
import tempfile
import types
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from durable_nb import codec
from durable_nb.cells import IPYTHON_NAMES
from durable_nb.prints import Print
from durable_nb.runtime import Runtime
from durable_nb.sharing import groups as _groups
from durable_nb.snapshot import Snapshots
from durable_nb.unchanged import SAME_ITEMS, Same

pytestmark = pytest.mark.unit

SETUP = '''
import functools

def helper(x):
    return x + 1

def plain(a, b=[1], *, k={"z": 0}):
    return helper(a) + len(b)

def make(start):
    box = [start]
    state = {"n": 0}
    def counter(step=1):
        state["n"] += step
        box.append(state["n"])
        return box
    return counter

counter = make(0)

def deco(fn):
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        return fn(*a, **kw)
    wrapper.calls = []
    return wrapper

@deco
def wrapped(x):
    return x

class Base:
    shared = [1, 2]
    def hello(self):
        return "base"

class Thing(Base):
    """A thing."""
    shared = Base.shared  # (its base's own object: not in its payload)
    tags = {"a": [1]}
    limit = 0.0
    hello = Base.hello
    def __init__(self, v):
        self.v = v
    def method(self):
        return super().hello()
    @staticmethod
    def stat(x=()):
        return x
    @property
    def prop(self):
        return self.v

class Holder:
    def __init__(self):
        self.items = []

def make_holder():
    h = Holder()
    def use():
        return h.items
    return use

use = make_holder()

from dataclasses import dataclass, field
from typing import Optional

@dataclass
class Rec:
    name: str
    size: Optional[int] = 0
    tags: list[str] = field(default_factory=list, metadata={"unit": ["m"]})
    def total(self):
        return self.size

def retype(name, to):
    Rec.__annotations__[name] = Rec.__init__.__annotations__[name] = to
    Rec.__dataclass_fields__[name].type = to

class Outer:
    class Inner:
        pass
    b = 2

class Other:
    pass

def apply(x, f=helper):  # (``helper`` by its name, while it is bound to it)
    return f(x)
'''
DEFINITIONS = [
    "helper",
    "plain",
    "counter",
    "wrapped",
    "Base",
    "Thing",
    "Holder",
    "use",
    "Outer",
    "Rec",
    "apply",
]

#: Changes through aliases ({x}: a small int); some leave every payload as it was.
CHANGES = [
    "plain.__defaults__[0].append({x})",
    "plain.__kwdefaults__['z'] = {x}",
    "plain.__defaults__ = (list(plain.__defaults__[0]),)",  # equal content, new object
    "plain.__defaults__[0].append({x}); plain.__defaults__[0].pop()",
    "plain.__defaults__ = (Base.shared,)",  # then Base's changes are plain's too
    "plain.__doc__ = 'v{x}'",
    "plain.__code__ = (helper if {x} % 2 else make_holder).__code__",
    "counter({x})",
    "counter.__closure__[0].cell_contents.append({x})",
    "counter.__defaults__ = (counter.__closure__[0].cell_contents,)",
    "wrapped.calls.append({x})",
    "wrapped.__wrapped__.__defaults__ = ({x},)",
    "Base.shared.append({x})",
    "Base.shared[0] = {x}",
    "Base.hello = lambda self: {x}",  # Thing.hello is no longer the inherited one
    "Thing.tags['a'].append({x})",
    "Thing.limit = -0.0 if {x} % 2 else 0.0",
    "Thing.extra = {x}",
    "if hasattr(Thing, 'extra'): del Thing.extra",
    "Thing.stat.__defaults__ = ({x},)",
    "Thing.prop.fget.__doc__ = 'doc{x}'",
    "use.__closure__[0].cell_contents.items.append({x})",
    "use.__closure__[0].cell_contents.flag = {x}",
    "helper = lambda x: x + {x}",  # a rebinding: payloads name it, do not hold it
    # an attribute moved between a nested class (walked inline) and its outer class
    "if hasattr(Outer, 'b'): del Outer.b\nOuter.Inner.b = {x}",
    "if hasattr(Outer.Inner, 'b'): del Outer.Inner.b\nOuter.b = {x}",
    # a dataclass: its fields (slots), their metadata (a mapping proxy), its annotations
    "Rec.__dataclass_fields__['size'].default = {x}",
    "Rec.__dataclass_fields__['tags'].metadata['unit'].append({x})",
    "Rec.__dataclass_fields__['name'].type = Optional[str] if {x} % 2 else list[int]",
    "Rec.__dataclass_fields__['tags'].repr = bool({x} % 2)",
    "Rec.__dataclass_params__.frozen = bool({x} % 2)",
    # a field's slot unset (pickled without it), then set again
    "f = Rec.__dataclass_fields__['size']\nif {x} % 2 and hasattr(f, 'default'):\n"
    "    del f.default\nelse:\n    f.default = {x}",
    "Rec.__annotations__['size'] = int | None if {x} % 2 else dict[str, int]",
    # (in every place it is, so that only the arguments differ, not which objects are one)
    "retype('tags', list[int] if {x} % 2 else list[str])",
    "retype('size', Optional[str] if {x} % 2 else Optional[int])",
    "Rec.size = {x}",
    "Rec.total = lambda self: {x}",
    # what only a print's reads again (Print.holds) tell: an object's class, a cell's
    # content, a base's attribute, an instance's dict, a static method's function
    "use.__closure__[0].cell_contents.__class__ = Other if {x} % 2 else Holder",
    "counter.__closure__[1].cell_contents = {{'n': {x}}}",
    "Base.shared = [{x}] if {x} % 2 else Thing.shared",
    "(lambda h: setattr(h, '__dict__', dict(vars(h))))(use.__closure__[0].cell_contents)",
    "vars(Thing)['stat'].__init__(lambda x=({x},): x)",
    "vars(Thing)['prop'].__doc__ = 'p{x}'",
    "pass",
]
changes = st.lists(
    st.tuples(st.sampled_from(CHANGES), st.integers(-2, 2)), min_size=1, max_size=8
).map(lambda picks: [code.format(x=x) for code, x in picks])
SLOW = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture(scope="module")
def shell():
    return InteractiveShell.instance()


def emptied(shell) -> None:
    """Take the names cells made (these tests' and other modules') out of the shell's
    namespace, as a new kernel's is: IPython's own kept. (``shell.reset()`` does it with
    a full garbage collection, ~0.3 s, that nothing here needs.)"""
    hidden = shell.user_ns_hidden
    for name in [n for n in shell.user_ns if n not in hidden and not IPYTHON_NAMES.match(n)]:
        del shell.user_ns[name]


def run(shell, code: str) -> None:
    result = shell.run_cell(code, store_history=False, silent=True)
    assert result.success, result.error_in_exec or result.error_before_exec


@settings(max_examples=15, deadline=None, suppress_health_check=SLOW)  # the unit layer: < 1 min
@given(cells=changes)
def test_equal_prints_mean_equal_payloads(shell, cells):
    run(shell, SETUP)  # every definition made again
    ns = shell.user_ns
    last = {}
    for name in DEFINITIONS:
        value = ns[name]
        printed = Print(value, ns)
        assert printed.parts is not None, name  # readable, or the test proves nothing
        last[name] = (printed, codec.encode(value, ns, (value,)).stream)
    for code in cells:
        run(shell, code)
        for name in DEFINITIONS:
            value = ns[name]
            held = last[name][0].holds(value, ns)  # (asked before the print: no walk between)
            printed, stream = Print(value, ns), codec.encode(value, ns, (value,)).stream
            if held:  # as a snapshot keeps it: the print of cells ago, while it holds
                assert printed == last[name][0] and stream == last[name][1], (name, code)
                continue
            if printed == last[name][0]:
                assert stream == last[name][1], (name, code)
            last[name] = (printed, stream)


@pytest.mark.parametrize("code", CHANGES)
def test_each_change_alone_shows_in_the_print_when_it_shows_in_the_payload(shell, code):
    """Every change once, from the definitions as made (the test above draws a few)."""
    run(shell, SETUP)
    ns = shell.user_ns
    before = {n: (Print(ns[n], ns), codec.encode(ns[n], ns, (ns[n],)).stream) for n in DEFINITIONS}
    run(shell, code.format(x=1))
    for name in DEFINITIONS:
        value = ns[name]
        held = before[name][0].holds(value, ns)
        if held or Print(value, ns) == before[name][0]:
            assert codec.encode(value, ns, (value,)).stream == before[name][1], name
        if held:
            assert Print(value, ns) == before[name][0], name


def test_a_print_holds_while_nothing_it_read_changed(shell):
    """Every definition's print holds after a cell that changes nothing, and after one that
    changes another; not once its own payload changed (a few of the changes above)."""
    run(shell, SETUP)
    ns = shell.user_ns
    prints = {n: Print(ns[n], ns) for n in DEFINITIONS}
    run(shell, "pass\nx_unrelated = [1]")
    assert all(prints[n].holds(ns[n], ns) for n in DEFINITIONS)
    for code, changed in [("Rec.__dataclass_fields__['size'].default = 7", "Rec"),
                          ("Thing.tags['a'].append(3)", "Thing"),
                          ("plain.__kwdefaults__['z'] = 5", "plain"),
                          ("counter(2)", "counter"),
                          ("Outer.Inner.b = 3", "Outer")]:  # fmt: skip
        run(shell, code)
        assert not prints[changed].holds(ns[changed], ns), code
    held = ns["use"].__closure__[0].cell_contents  # a Holder: its dict swapped, then changed
    held.__dict__ = dict(vars(held))
    if not prints["use"].holds(ns["use"], ns):  # (as a snapshot: printed again, if need be)
        prints["use"] = Print(ns["use"], ns)
    held.flag = 1
    assert not prints["use"].holds(ns["use"], ns)
    del held
    assert not prints["helper"].holds(ns["helper"], {**ns})  # another namespace: no
    assert not prints["helper"].holds(ns["plain"], ns)  # another value: no


SLOTTED = {
    "getattr": "class Q:\n    __slots__ = ('n', 'unit')\n    def __init__(self, n):\n"
               "        self.n = n\n    def __getattr__(self, name):\n"
               "        return DEFAULTS[name]\n",
    "property": "class Base:\n    __slots__ = ('n', 'unit')\nclass Q(Base):\n"
                "    __slots__ = ()\n    def __init__(self, n):\n        self.n = n\n"
                "    @property\n    def unit(self):\n        return DEFAULTS['unit']\n",
}  # fmt: skip


@pytest.mark.parametrize("how", SLOTTED)
def test_a_slot_pickling_reads_otherwise_than_its_descriptor_gives_no_print(shell, how):
    """helper-52 F2: pickling reads slots with ``getattr``: an unset slot's
    ``__getattr__`` fallback, or a property over a slot, is pickled; the descriptor
    says "unset". Equal prints would keep a stale payload."""
    run(shell, "DEFAULTS = {'unit': 'm'}\n" + SLOTTED[how] + "def area(q=Q(1)):\n    return q")
    ns = shell.user_ns
    fn = ns["area"]
    before = Print(fn, ns), codec.encode(fn, ns, (fn,)).stream
    run(shell, "DEFAULTS['unit'] = 'km'")
    after = Print(fn, ns), codec.encode(fn, ns, (fn,)).stream
    assert before[1] != after[1]  # the payload changed
    assert after[0] != before[0]  # so must the print (or there is none)


WRAPPING = """
import functools
CALLS = {"n": 0}

def counted(fn):
    @functools.wraps(fn)  # the wrapper takes the notebook's name, keeps this module's globals
    def wrapper(*args, **kwargs):
        CALLS["n"] += 1
        return fn(*args, **kwargs)
    return wrapper
"""


def test_a_librarys_wrapper_holds_its_modules_globals_by_reference(shell, tmp_path):
    """helper-52 F5: dill copied such a wrapper's module globals into the payload, while
    the print read which objects they held: a change inside one (a counter) left an equal
    print and a different payload. Now both name the module."""
    module = f"dnb_wrapping_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(WRAPPING)
    sys.path.insert(0, str(tmp_path))
    try:
        run(shell, f"import {module} as wrapping\nclass Counted:\n    @wrapping.counted\n"
                   "    def go(self):\n        return 1\n")  # fmt: skip
        ns = shell.user_ns
        cls = ns["Counted"]
        before = Print(cls, ns), codec.encode(cls, ns, (cls,))
        run(shell, "Counted().go()\nCounted().go()")  # CALLS changes
        after = Print(cls, ns), codec.encode(cls, ns, (cls,))
        assert after[0] == before[0] and after[1].stream == before[1].stream
        back = codec.decode(after[1].codec, after[1].stream, after[1].buffers)
        assert back.go.__globals__ is vars(sys.modules[module])  # the live ones, not a copy
        assert back().go() == 1 and sys.modules[module].CALLS["n"] == 3
    finally:
        sys.path.remove(str(tmp_path))


def describe(o, depth=0):
    """What a definition is made of, down to the floats' signs (by what it does: dill
    gives a ``functools.wraps`` wrapper its code's qualname, and drops a class attribute
    that is its base's own object, which the class then inherits)."""
    if depth > 6:
        return "..."
    d = depth + 1
    if isinstance(o, float):
        return ("float", repr(o))
    if isinstance(o, list | tuple):
        return (type(o).__name__, [describe(x, d) for x in o])
    if isinstance(o, dict):
        return ("dict", [(k, describe(v, d)) for k, v in o.items()])
    if isinstance(o, types.FunctionType):
        cells = [describe(c.cell_contents, d) for c in o.__closure__ or ()]
        attrs = {k: describe(v, d) for k, v in vars(o).items()}
        defaults = describe(o.__defaults__, d), describe(o.__kwdefaults__, d)
        return ("function", o.__name__, o.__doc__, o.__code__.co_code, defaults, cells, attrs)
    if isinstance(o, staticmethod | property):
        inner = o.__func__ if isinstance(o, staticmethod) else o.fget
        return (type(o).__name__, describe(inner, d))
    if isinstance(o, type):
        own = {k: describe(inspect.getattr_static(o, k), d) for k in dir(o) if k[:2] != "__"}
        return ("class", o.__qualname__, o.__doc__, own)
    if type(o).__module__ == "__main__":
        return ("instance", type(o).__name__, describe(vars(o), d))
    return repr(o)


def test_a_restore_equals_the_live_definitions_when_payloads_are_reused(shell):
    cells = [code.format(x=x) for x in (2, 1) for code in CHANGES]  # each change, twice
    with tempfile.TemporaryDirectory() as folder:
        source = str(Path(folder) / "nb.ipynb")
        rt = Runtime(source)
        snaps = Snapshots(shell, rt)
        snaps.sweep.bytes = snaps.sweep.names = 1 << 40  # all saved checked every cell
        snaps.sweep.seconds = math.inf
        emptied(shell)
        # Pickling an instance gives its class ``__slotnames__`` (copyreg's cache, which a
        # print leaves out): given to all at once, a class's payload is the fresh one's.
        setup = SETUP + "import copyreg\nfor c in (Base, Thing, Holder, Rec, Other):\n" \
                        "    copyreg._slotnames(c)\ndel c\n"  # fmt: skip
        for code in [setup, *cells]:
            rt.begin_cell(None, code)
            run(shell, code)
            snaps.after_cell(code, True)
            rt.end_cell("ok", None)
            if code is setup:
                continue
            # What the journal holds is what pickling gives now (a Snapshots that never
            # pickled anything before: no payload to reuse).
            ns, again = shell.user_ns, Snapshots(shell, rt)
            shares = again._sharing(ns, set(snaps.known), None, True)  # (groups: all)
            for group in _groups(shares):
                for name, res in again._encode_group(group, ns, shares).items():
                    if name in DEFINITIONS:
                        assert snaps.known[name].value_id == res.value_id, (name, code)
        live = {n: describe(shell.user_ns[n]) for n in DEFINITIONS}
        rt.close()
        emptied(shell)
        rt = Runtime(source)
        report = Snapshots(shell, rt).restore()
        rt.close()
        assert not report.skipped, report
        assert {n: describe(shell.user_ns[n]) for n in DEFINITIONS} == live


def test_a_half_imported_dill_reads_as_its_defaults(shell, monkeypatch):
    """The journal's opening thread imports dill: a cell's snapshot can meet it half done."""
    run(shell, SETUP)
    ns = shell.user_ns
    whole = Print(ns["plain"], ns)
    monkeypatch.setitem(sys.modules, "dill", types.ModuleType("dill"))  # no settings yet
    assert Print(ns["plain"], ns) == whole


def test_a_library_object_pickle_refused_stays_recomputed_until_rebound(shell):
    with tempfile.TemporaryDirectory() as folder:
        rt = Runtime(str(Path(folder) / "nb.ipynb"))
        snaps = Snapshots(shell, rt)
        emptied(shell)
        states = []
        # Pickle and dill refuse a generator: the same one is not tried again.
        for code in ["lk = (i for i in range(9))", "next(lk)", "lk = (i for i in range(9))",
                     "lk = [1]"]:  # fmt: skip
            rt.begin_cell(None, code)
            run(shell, code)
            snaps.after_cell(code, True)
            rt.end_cell("ok", None)
            states.append((snaps.known["lk"].state, snaps.known["lk"].cell_seq))
        rt.close()
    seqs = [seq for _, seq in states]
    assert [s for s, _ in states] == ["recompute"] * 3 + ["saved"]
    assert seqs[1] == seqs[0] and seqs[2] > seqs[1] and seqs[3] > seqs[2]


def test_what_a_print_keeps_alive_stays_small_and_goes_with_its_definition(shell):
    """A print keeps what it read alive (no id is reused), and its pickle beside it: a
    big default gives no print, and a name rebound to data lets both go (review13 F4)."""
    with tempfile.TemporaryDirectory() as folder:
        rt = Runtime(str(Path(folder) / "nb.ipynb"))
        snaps = Snapshots(shell, rt)
        emptied(shell)
        for code in ("def small(x=b'1'): return x",
                     f"def big(x=b'1' * {2 << 20}): return x",  # over prints.MAX_BYTES
                     "y = 1"):  # fmt: skip
            rt.begin_cell(None, code)
            run(shell, code)
            snaps.after_cell(code, True)
            rt.end_cell("ok", None)
        assert Print(shell.user_ns["big"], shell.user_ns).parts is None
        assert set(snaps._pickled) == {("small",)}
        code = "small = None"
        rt.begin_cell(None, code)
        run(shell, code)
        snaps.after_cell(code, True)
        rt.end_cell("ok", None)
        rt.close()
        assert snaps._pickled == {}


# -- Same: a saved container of immutable objects, told unchanged by identity ------------

_ATOMS = st.one_of(
    st.integers(), st.floats(allow_nan=True), st.text(max_size=4), st.binary(max_size=4),
    st.none(), st.booleans(), st.complex_numbers(allow_nan=False), st.dates(),
    st.timedeltas(), st.datetimes(timezones=st.sampled_from([None, datetime.UTC])),
)  # fmt: skip
_IMMUTABLES = st.recursive(
    _ATOMS, lambda inner: st.tuples(inner, inner) | st.frozensets(_ATOMS, max_size=3),
    max_leaves=6,
)  # fmt: skip
_VALUES = st.one_of(
    _IMMUTABLES,
    st.lists(_IMMUTABLES, max_size=6),
    st.dictionaries(st.text(max_size=3) | st.integers(), _IMMUTABLES, max_size=6),
    st.sets(st.integers() | st.text(max_size=3), max_size=6),
    st.lists(st.lists(_ATOMS, max_size=2), max_size=3),  # items that can change: no Same
    st.dictionaries(st.text(max_size=2), st.lists(_ATOMS, max_size=2), max_size=3),
)
_CHANGES = ["none", "append", "equal copy", "replace", "negate", "pop", "reverse",
            "reinsert", "inner append", "clear"]  # fmt: skip


def _copy(x):
    """An object equal to ``x`` but (where Python makes one) not ``x`` itself."""
    return pickle.loads(pickle.dumps(x))


def _change(value, how: str, at: int) -> None:
    """Change ``value`` in place, ``how``; some changes leave its pickle as it was."""
    if how == "none" or not isinstance(value, list | dict | set) or not value:
        return
    if isinstance(value, list):
        i = at % len(value)
        if how == "append":
            value.append(value[i])
        elif how == "equal copy":
            value[i] = _copy(value[i])
        elif how == "replace":
            value[i] = ("changed", at)
        elif how == "negate" and isinstance(value[i], float):
            value[i] = -value[i]  # -0.0 == 0.0, yet they pickle apart
        elif how == "pop":
            value.pop(i)
        elif how == "reverse":
            value.reverse()
        elif how == "inner append" and isinstance(value[i], list):
            value[i].append(1)
        elif how == "clear":
            value.clear()
    elif isinstance(value, dict):
        key = list(value)[at % len(value)]
        if how == "equal copy":
            value[key] = _copy(value[key])
        elif how == "replace":
            value[key] = ("changed", at)
        elif how == "reinsert":
            value[key] = value.pop(key)  # the same items, another order
        elif how == "inner append" and isinstance(value[key], list):
            value[key].append(1)
        elif how in ("pop", "clear"):
            del value[key]
    elif how in ("pop", "clear"):
        value.pop()
    elif how == "append":
        value.add(len(value) + 10**6)


@settings(max_examples=300, deadline=None)
@given(value=_VALUES, how=st.sampled_from(_CHANGES), at=st.integers(0, 10))
def test_a_value_same_holds_pickles_as_it_did_when_saved(value, how, at):
    """``Same.holds`` (the sweep's reason not to pickle a variable again) only where the
    pickle is unchanged; and it holds when nothing changed."""
    same = Same.of(value)
    before = pickle.dumps(value, protocol=5)
    _change(value, how, at)
    if same is None:
        return
    copy = same.copy()  # what is pickled: the value as it was when ``same`` was taken
    if isinstance(value, set):  # a set rebuilt may iterate in another order
        assert type(copy) is set and copy == pickle.loads(before)
    else:
        assert pickle.dumps(copy, protocol=5) == before
    if same.holds(value):
        assert pickle.dumps(value, protocol=5) == before
    if how == "none":
        assert same.holds(value)
    if isinstance(value, list | dict | set):
        assert not same.holds(_copy(value))  # an equal container is another object


def test_which_values_get_a_same():
    class Names(list):
        pass

    class Zone(datetime.tzinfo):
        def utcoffset(self, dt):
            return datetime.timedelta(0)

        def dst(self, dt):
            return datetime.timedelta(0)

    when = datetime.date(2026, 1, 2)
    assert Same.of(["a", 1, (2.5, when), None]) is not None
    assert Same.of({"k": (1, "x"), 2: b"y"}) is not None
    assert Same.of(frozenset({1, "a"})) is not None and Same.of("text") is not None
    for value in ([[1]], {"k": [1]}, Names(["a"]), (1, [2]), [datetime.datetime.now(Zone())],
                  list(range(SAME_ITEMS + 1)), bytearray(b"x")):  # fmt: skip
        assert Same.of(value) is None, value
    names = ["a", "b"]
    same = Same.of(names)
    assert same.holds(names) and not same.holds(list(names))  # another list, equal


def test_a_tuple_met_again_is_read_once_and_a_big_grid_is_refused(monkeypatch):
    """review5 F2: nested tuples that share their items (``((0,) * n,) * n``) were read
    once per path (16 million steps for one list of a 4096-square grid, every cell); the
    bound is on items read in all, and leaves lists of records their Same (review6 F-B)."""
    from durable_nb import unchanged

    calls: list[int] = []
    immutable = unchanged._immutable
    monkeypatch.setattr(
        unchanged, "_immutable", lambda o, *a: (calls.append(1), immutable(o, *a))[1]
    )
    row = (0,) * 64
    grid = (row,) * 64
    assert Same.of([grid, grid]) is not None
    assert len(calls) <= 2 + 64 + 64  # each grid, each row once, one row's items
    calls.clear()
    big = ((0,) * SAME_ITEMS,) * SAME_ITEMS
    assert Same.of([big]) is not None
    assert len(calls) <= 2 * SAME_ITEMS + 3
    records = unchanged.READ_ITEMS // SAME_ITEMS
    assert Same.of([tuple(range(i, i + records)) for i in range(SAME_ITEMS)]) is not None
    calls.clear()
    assert Same.of([tuple(range(i, i + records + 1)) for i in range(SAME_ITEMS)]) is None
    assert len(calls) <= unchanged.READ_ITEMS + SAME_ITEMS + 2  # items, and each tuple


def _changed_at_every(code, value: dict, opcodes: bool = False) -> list[dict]:
    """Trace ``code``'s frames and change ``value`` (as another thread would) at each of
    their lines (or opcodes): a key added, a key swapped, a value replaced, a key removed.
    Returns the states it went through; the tracer stays until the caller removes it."""
    states = [dict(value)]
    moves = [
        lambda d: d.__setitem__(f"k{len(states)}", len(states)),
        lambda d: (d.pop(next(iter(d))), d.__setitem__(f"s{len(states)}", "v")),
        lambda d: d.__setitem__(next(iter(d)), ("new", len(states))),
        lambda d: d.pop(next(reversed(d))) if len(d) > 1 else None,
    ]

    def local(frame, event, arg):
        if event in ("line", "opcode"):
            moves[len(states) % len(moves)](value)
            states.append(dict(value))
        return local

    def enter(frame, event, arg):
        if frame.f_code is not code:
            return None
        frame.f_trace_opcodes = opcodes
        return local

    sys.settrace(enter)
    return states


@pytest.mark.parametrize("opcodes", [False, True])
def test_a_dict_changed_by_a_thread_while_same_reads_it(opcodes):
    """review6 F-A, F-D: another thread changes a dict between any two lines (or opcodes)
    of ``Same.of`` or ``Same.holds``: neither raises, and what a Same copies (and the
    snapshot pickles) is a state the dict was in, never keys of one moment with the
    values of another."""
    value = {f"k{i}": i for i in range(6)}
    try:
        states = _changed_at_every(Same.of.__func__.__code__, value, opcodes)
        same = Same.of(value)
    finally:
        sys.settrace(None)
    assert same is not None
    assert pickle.dumps(same.copy()) in {pickle.dumps(s) for s in states}
    try:
        _changed_at_every(Same.holds.__code__, value, opcodes)
        held = same.holds(value)  # changed: it holds no more, and says so
    finally:
        sys.settrace(None)
    assert held is False


def test_same_holds_a_dict_a_thread_resizes_meanwhile():
    """review6 F-D: a thread adds a key while the sweep asks ``holds``, at any opcode of
    it: a dict iterated across that raised RuntimeError out of the sweep. It answers, and
    holds again once the dict is as it was."""
    value = {f"k{i}": i for i in range(6)}
    same = Same.of(value)
    for at in range(200):
        events: list[str] = []
        _grown_at(at, value, events)
        try:
            held = same.holds(value)
        finally:
            sys.settrace(None)
        assert held in (True, False)
        value.pop("tmp", None)
        assert same.holds(value)
        if len(events) <= at:
            break  # past holds' last opcode
    assert at > 10


def _grown_at(at: int, value: dict, events: list[str]) -> None:
    """Trace ``Same.holds``; add a key to ``value`` at its opcode number ``at``."""

    def local(frame, event, arg):
        events.append(event)
        if len(events) == at + 1:
            value["tmp"] = 0
        return local

    def enter(frame, event, arg):
        if frame.f_code is not Same.holds.__code__:
            return None
        frame.f_trace_opcodes = True
        return local

    sys.settrace(enter)


def test_a_print_does_not_hold_once_a_name_it_looked_up_finds_another_object(shell):
    """What a print looked up (a library function found by its module and name, a
    ``typing`` name, a type annotation's arguments) is looked up again by ``holds``."""
    import typing

    lib = types.ModuleType("dnb_lib_for_prints")
    exec("def lib_f():\n    return 1\n", vars(lib))
    sys.modules[lib.__name__] = lib
    alias = typing._GenericAlias(list, (int,))  # (uncached: typing's own are shared)
    try:
        shell.user_ns.update(lib=lib, alias=alias)
        run(shell, "import typing\ndef uses_lib(x, f=lib.lib_f):\n    return f()\n"
                   "def annotated(x: alias, y: typing.List = 1):\n    return x\n")  # fmt: skip
        ns = shell.user_ns
        taken = {n: Print(ns[n], ns) for n in ("uses_lib", "annotated")}
        assert all(taken[n].holds(ns[n], ns) for n in taken)
        original = lib.lib_f
        lib.lib_f = lambda: 2
        assert not taken["uses_lib"].holds(ns["uses_lib"], ns)
        lib.lib_f = original
        assert taken["uses_lib"].holds(ns["uses_lib"], ns)
        args, alias.__args__ = alias.__args__, (str,)
        assert not taken["annotated"].holds(ns["annotated"], ns)
        assert Print(ns["annotated"], ns) != taken["annotated"]
        alias.__args__ = args  # (the very tuple: a new one is another object)
        assert taken["annotated"].holds(ns["annotated"], ns)
        bare = vars(typing)["List"]  # (a name of typing's: pickled as that name)
        try:
            vars(typing)["List"] = vars(typing)["Dict"]
            assert not taken["annotated"].holds(ns["annotated"], ns)
        finally:
            vars(typing)["List"] = bare
        assert taken["annotated"].holds(ns["annotated"], ns)
    finally:
        del sys.modules[lib.__name__]


_HOOKED = {
    "static": "class K:\n    @staticmethod\n    def s():\n        return 1\n"
              "    @classmethod\n    def c(cls):\n        return 2\n",
    "instance": "class G:\n    pass\nclass H(G):\n    pass\nh = H()\nh.items = [1, 2]\n"
                "def f(x=h):\n    return x\n",
    "bases": "class A:\n    pass\nclass B(A):\n    pass\nclass C(B):\n    x = 1\n",
    "attribute": "class D:\n    pass\nclass C:\n    d = D()\n",
    "quiet": "class A:\n    def __init_subclass__(cls, **kw):\n        pass\nclass B(A):\n"
             "    pass\nclass C(B):\n    x = 1\n",
}  # fmt: skip


@pytest.mark.parametrize("setup, name, change", [
    ("static", "K", "vars(K)['s'].__doc__ = 'changed'"),
    ("static", "K", "vars(K)['c'].note = [1]"),
    ("instance", "f", "H.__getstate__ = lambda self: (tuple(self.items),)"),
    ("instance", "f", "G.__reduce__ = lambda self: (H, ())"),
    ("bases", "C", "A.__init_subclass__ = classmethod(lambda cls, **kw: None)"),
    ("attribute", "C", "D.__set_name__ = lambda self, owner, name: None"),
    ("attribute", "C", "D.__reduce__ = lambda self: (D, ())"),
    ("instance", "f", "G.__getattr__ = lambda self, name: 1"),  # (review110: dill's then)
    ("quiet", "C", "A.__slots__ = ()"),  # (review110: classes._quiet reads the bases')
])  # fmt: skip
def test_what_decides_a_payload_outside_the_definitions_own_state_shows(shell, setup, name, change):
    """review109: a static method's own attributes, a pickling hook gained by the class of
    an instance it holds (read by name), an ``__init_subclass__`` gained along its MRO, a
    ``__set_name__`` gained by an attribute's class: each changes the payload, so the print
    differs and the one taken before does not hold."""
    emptied(shell)
    run(shell, _HOOKED[setup])
    ns = shell.user_ns
    before = Print(ns[name], ns), codec.encode(ns[name], ns, (ns[name],)).stream
    assert before[0].parts is not None
    run(shell, change)
    assert codec.encode(ns[name], ns, (ns[name],)).stream != before[1]  # (or nothing to see)
    assert not before[0].holds(ns[name], ns)
    assert Print(ns[name], ns) != before[0]


def test_a_snapshot_keeps_the_print_taken_last(shell, monkeypatch):
    """A print that no longer holds but equals the one taken now is replaced by it: the
    next cells ask the new one, which holds, and print nothing (review109: the old one,
    kept, failed every cell, and a print was taken every cell)."""
    from durable_nb import snapshot

    taken = []

    class Counting(snapshot.Print):
        __slots__ = ()

        def __init__(self, *args, **kwargs):
            taken.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(snapshot, "Print", Counting)
    with tempfile.TemporaryDirectory() as folder:
        rt = Runtime(str(Path(folder) / "nb.ipynb"))
        snaps = Snapshots(shell, rt)
        snaps.sweep.bytes = snaps.sweep.names = 1 << 40  # all saved checked every cell
        snaps.sweep.seconds = math.inf
        emptied(shell)
        counts = []
        swap = "plain.__defaults__ = (list(plain.__defaults__[0]),)"  # equal, not the same
        for code in ["def plain(a, b=[1]):\n    return a\n", "x = 1", swap, "x = 2", "x = 3"]:
            taken.clear()
            rt.begin_cell(None, code)
            run(shell, code)
            snaps.after_cell(code, True)
            rt.end_cell("ok", None)
            counts.append(len(taken))
        rt.close()
    assert counts == [1, 0, 1, 0, 0]


def test_no_metaclass_code_runs_to_tell_a_set_name_or_a_reduce(shell):
    """review110: ``__set_name__`` is looked up as ``type()`` does, and a class's pickling
    hooks along its MRO through ``type``'s own getters: a metaclass's ``__getattr__`` is
    never asked for a ``__set_name__``, and its ``__getattribute__`` runs not once in a
    print's reads again (every cell)."""
    emptied(shell)
    run(shell, "CALLS = []\nclass Meta(type):\n"
               "    def __getattr__(cls, name):\n        CALLS.append(name)\n"
               "        raise AttributeError(name)\n"
               "    def __getattribute__(cls, name):\n"
               "        if name in ('__mro__', '__dict__', '__module__'):\n"
               "            CALLS.append(name)\n"
               "        return type.__getattribute__(cls, name)\n"
               "class D(metaclass=Meta):\n    pass\nclass C:\n    d = D()\n"
               "def f(x=D()):\n    return x\n")  # fmt: skip
    ns, calls = shell.user_ns, shell.user_ns["CALLS"]
    for name in ("C", "f"):
        printed = Print(ns[name], ns)
        codec.encode(ns[name], ns, (ns[name],))
        assert printed.parts is not None and "__set_name__" not in calls
        calls.clear()
        assert printed.holds(ns[name], ns) and calls == []
