"""What a namespace value reaches: the objects that tie variables together, and the globals
its code may use. The walk stops where the notebook's data ends.

What is data: containers, instances, arrays, frames, closure cells, a notebook class's
attributes, the data of a notebook module (a module whose file is outside the Python
installation). What is not, and is never entered: modules and classes of libraries,
code, frames, generators, weak containers, open files, and every object of the kernel's
machinery (IPython, ipykernel, comm, zmq, tornado, asyncio, threading, logging...);
a widget is entered (its values, its callbacks), its comm is not.

Functions are followed, not counted as data: their closure cells, defaults and attributes
are walked, and the global names their code (and their class's methods) uses are reported,
so that a caller can treat those variables as reachable too; a ``weakref.ref``: its object.
"""

from __future__ import annotations

import builtins
import gc
import itertools
import sys
import sysconfig
import types
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from gc import is_tracked
from operator import attrgetter, is_, not_
from sys import getrefcount
from typing import Any

from . import functions, names, views
from .cells import IPYTHON_NAMES
from .containers import CLASS_DICT, MRO
from .instances import ABSENT, ANNOTATION_PARTS, SENTINEL_TYPES, own_state, walked_by_dict
from .names import bound_to, by_value
from .openfiles import file_type

SKIP, WALK, SPECIAL = 0, 1, 2

#: Top-level packages whose objects are the kernel's machinery, not the notebook's data.
INFRASTRUCTURE = frozenset({
    "IPython", "ipykernel", "comm", "jupyter_client", "jupyter_core", "zmq", "tornado",
    "asyncio", "threading", "_thread", "concurrent", "socket", "selectors", "ssl", "logging",
    "durable_nb", "traitlets", "weakref", "_weakref", "_weakrefset", "io", "_io",
    "multiprocessing", "subprocess", "queue", "sqlite3", "duckdb", "dill", "pickle",
    "warnings", "builtins", "importlib", "_frozen_importlib", "_frozen_importlib_external",
    "contextvars", "_contextvars", "signal", "atexit", "gc", "sys", "codecs", "encodings",
    "pydevd", "debugpy", "prompt_toolkit", "matplotlib_inline", "psutil",
})  # fmt: skip

#: Of those, the kernel's own: a value holding one (a widget's comm) cannot be saved.
KERNEL = frozenset({"IPython", "ipykernel", "comm", "jupyter_client", "zmq", "tornado"})
_KERNEL_TYPES: set[type] = set()
_KINDS: dict[type, int] = {
    **dict.fromkeys((str, bytes, int, float, complex, bool, type(None), range, slice,
                     type(Ellipsis), type(NotImplemented), memoryview), SKIP),
    **dict.fromkeys((list, dict, set, frozenset, tuple, bytearray, types.CellType,
                     *views.DICT_VIEWS), WALK),  # a dict's views: what they show
    **dict.fromkeys((types.FunctionType, types.MethodType, types.BuiltinFunctionType,
                     types.ModuleType, weakref.ReferenceType), SPECIAL),
    **dict.fromkeys((types.CodeType, types.FrameType, types.GeneratorType,
                     types.CoroutineType, types.AsyncGeneratorType, types.TracebackType,
                     types.MappingProxyType, types.GetSetDescriptorType,
                     types.MemberDescriptorType, types.WrapperDescriptorType,
                     types.MethodWrapperType, types.MethodDescriptorType,
                     types.ClassMethodDescriptorType), SKIP),
}  # fmt: skip
_BASE_KINDS = dict(_KINDS)
_CODE_NAMES: dict[types.CodeType, frozenset[str]] = {}
_OWN_MODULES: dict[str, bool] = {}
_LIBRARY_PATHS = tuple(
    {p for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, *sysconfig.get_paths().values())
     if p}
)  # fmt: skip


@dataclass
class Reach:
    """What one walk found.

    ``keys``: ids of the data objects reached (two variables that share one may change
    together, and are saved together so that identity survives); ``names``: the
    notebook's global names that functions reached may read, rebind or mutate; ``types``:
    the exact types of all it met, when asked (a dict's string keys aside: exact strings).
    """

    keys: set[int] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    kernel: str = ""  #: the type of a kernel object reached (a widget's comm), if any
    #: the notebook's (``__main__``) classes and functions reached: their names' heads
    refs: set[str] = field(default_factory=set)
    #: of those, the variables it names (saved by name: loaded first), and the variables
    #: whose attribute it names (``S`` for ``S.d``): when one changes, what the name gives may
    deps: set[str] = field(default_factory=set)
    watch: dict[str, int | None] = field(default_factory=dict)  # the name -> what it gave
    types: set[type] | None = field(default=None, compare=False)


def reach(obj: Any, ns: dict[str, Any], typed: bool = False) -> Reach:
    """Walk ``obj``'s data graph (see the module docstring); ``ns`` is the notebook's globals;
    ``typed``: list the types met (``Reach.types``)."""
    out = Reach(types=set() if typed else None)
    out.kernel = _kernel_held(obj, ns)
    # ``seen`` becomes the keys: all that was walked, less what is not data (below).
    seen = out.keys = {id(ns), id(sys.modules), id(vars(builtins))}
    # The empty tuple is one object everywhere and holds nothing: sharing it ties nothing.
    not_data, bases = {*seen, id(())}, set()  # bases: the memory arrays view
    if (head := names.head(obj)) is not None:  # (a notebook function or class, read in C)
        held = ns.get(head)  # ``H = C.Inner``: saved as that name (codec), watched
        if held is not None and held is not obj and not by_value(obj, ns):
            out.deps.add(head)
            out.watch[names.of(obj)[1] or head] = id(obj)
    items, root, compress, pinned = [obj], True, itertools.compress, []
    while items:  # one level at a time, in C where it can be: graphs of 1M objects
        if len(items) <= SMALL:  # a widget's levels: the bulk passes cost ~15 µs each
            items, handed_on = _small_level(items, root, seen, not_data, bases, out, ns, obj)
            pinned = items[handed_on:]  # as below (the last level's is kept till now)
            root = False
            continue
        types_ = list(map(type, items))  # (a list, then its set: faster than a set of a map)
        kind_of = dict.fromkeys(set(types_))  # (no count: == may be a metaclass's, helper-73)
        if out.types is not None:
            out.types.update(kind_of)
        for t in kind_of:
            kind_of[t] = _KINDS.get(t)
            if kind_of[t] is None:
                kind_of[t] = _kind(t)
            if t not in _TRACKED:
                if len(_TRACKED) > 50_000:
                    _TRACKED.clear()
                _TRACKED[t] = _tracked(t)
            if t in _KERNEL_TYPES:
                out.kernel = t.__qualname__
        present = set(kind_of.values())
        if present == {SKIP}:
            break  # a list of numbers or strings: nothing below
        if len(present) == 1:
            walk, special = (items, []) if WALK in present else ([], items)
            held = _HELD  # references the walk itself holds to each object (``items``)
        else:
            held = _HELD + 1  # ``items`` and ``walk``
            special = []
            if SPECIAL not in present and all(map(_TRACKED.get, kind_of)):
                # What the walk enters here is exactly what the collector tracks (strings
                # and numbers beside lists, rows' instances): one pass, no type per item.
                walk = list(filter(is_tracked, items))
            else:
                walking = {t for t, k in kind_of.items() if k == WALK}
                walk = list(compress(items, map(walking.__contains__, types_)))
            if SPECIAL in present:
                specials = {t for t, k in kind_of.items() if k == SPECIAL}
                special = list(compress(items, map(specials.__contains__, types_)))
        # An object with one holder (its container here) and no weak reference to it is
        # reached by nothing else: no other variable can share it until a cell takes it out
        # through that holder, and then the cell reaches the holder's variable. It is walked,
        # not keyed nor checked against ``seen`` (its holder is walked once). The root keys.
        own: list[Any] = []
        if walk and not root:
            counts = list(map(getrefcount, walk))
            if counts.count(held) == len(counts):  # (a count of small ints: identity)
                walk, own = [], walk  # a tree of lone objects (the rows of a table)
            elif min(counts) <= held:
                lone = [c <= held for c in counts]
                walk, own = list(compress(walk, map(not_, lone))), list(compress(walk, lone))
            weakable = own and any(_WEAKREF(t) for t, k in kind_of.items() if k == WALK)
            if weakable and any(weak := list(map(weakref.getweakrefcount, own))):  # review66 H1
                walk, own = [*walk, *compress(own, weak)], list(compress(own, map(not_, weak)))
        root = False
        by_id = dict(zip(map(id, walk), walk, strict=True))  # once each, even if met twice
        if seen.isdisjoint(by_id):  # a tree: all new
            new = list(by_id.values())
        else:
            new = list(map(by_id.__getitem__, by_id.keys() - seen))
        seen.update(by_id)
        # Lone instances of plain classes (records): their dicts, and their classes once each
        # (below), not a class a record at the next level. Asked anew (~0.5 µs a class): a
        # class can gain a ``__getattribute__``.
        by_dict = own and all(walked_by_dict(t) for t, k in kind_of.items() if k == WALK)
        if by_dict:
            nxt = gc.get_referents(*new) if new else []
            nxt += map(_STATE, own)
            special = [*special, *(t for t, k in kind_of.items() if k == WALK)]
            if out.types is not None:
                out.types.add(type)
        else:
            nxt = gc.get_referents(*new, *own) if new or own else []
        # What a function, method or module hands on (closure cells, ``__self__``, a
        # module's globals) is keyed whatever its count: its holder (a closure tuple two
        # functions share, a bound method two variables hold) is not walked as an object.
        # Held once more here for the next level's count, it is never lone.
        handed_on = len(nxt)
        if special:  # (the class of each instance of a level: one object, mostly)
            if all(map(is_, special, itertools.repeat(special[0]))):
                special = special[:1]
            by_id = dict(zip(map(id, special), special, strict=True))
            fresh = list(map(by_id.__getitem__, by_id.keys() - seen))
            seen.update(by_id)
            for o in fresh:
                if not _special(o, ns, nxt, out, obj, bases):
                    not_data.add(id(o))
        pinned = nxt[handed_on:]  # noqa: F841  (a reference, for getrefcount)
        items = nxt
    out.keys -= not_data
    out.keys |= bases
    return out


#: A level of at most this many objects is walked one object at a time (:func:`_small_level`):
#: fewer Python calls than the level's bulk passes, which pay off on big levels.
SMALL = 48


def _small_level(items: list, root: bool, seen: set[int], not_data: set[int], bases: set[int],
                 out: Reach, ns: dict, obj: Any) -> tuple[list, int]:  # fmt: skip
    """One level of :func:`reach`, object by object; the same result as its bulk passes
    (tests/unit/test_graph.py compares them). Returns the next level and how many of its
    first objects walked containers handed on (the rest, from functions, methods and
    modules, are pinned by the caller: never lone)."""
    walk: list[Any] = []
    own: list[Any] = []
    special: list[Any] = []
    kinds, kernel_types, held = _KINDS, _KERNEL_TYPES, _HELD_ONE_BY_ONE
    if out.types is not None:
        out.types.update(map(type, items))
    for o in items:
        t = type(o)
        k = kinds.get(t)
        if k is None:
            k = _kind(t)
        if t in kernel_types:
            out.kernel = t.__qualname__
        if k == WALK:
            # held once (its container) when counted here as in _lone_one_by_one: lone
            if not root and getrefcount(o) <= held and not weakref.getweakrefcount(o):
                own.append(o)
            elif id(o) not in seen:
                seen.add(id(o))
                walk.append(o)
        elif k == SPECIAL:
            special.append(o)
    nxt = gc.get_referents(*walk, *own) if walk or own else []
    handed_on = len(nxt)
    for o in special:
        if id(o) not in seen:
            seen.add(id(o))
            if not _special(o, ns, nxt, out, obj, bases):
                not_data.add(id(o))
    return nxt, handed_on


def _lone_one_by_one() -> int:
    """References to an object held by one container, as :func:`_small_level` counts them:
    the container, the level list, the loop's variable, and ``getrefcount``'s argument."""
    holder = [object()]
    for o in gc.get_referents(holder):
        return getrefcount(o)
    raise AssertionError("unreachable")


_HELD_ONE_BY_ONE = _lone_one_by_one()
_WEAKREF = type.__dict__["__weakrefoffset__"].__get__  # in C, never a metaclass's attribute


#: Type -> whether "tracked by the garbage collector" tells exactly whether the walk enters
#: its instances (a mixed level in one pass): True for lists, sets and the instances of
#: classes (tracked from birth to death), and for what the walk skips and the collector
#: can never track (strings, numbers); None (unknown: types per item) for the rest,
#: dicts and tuples first (the collector untracks those that hold only atoms).
_TRACKED: dict[type, bool | None] = {}
_STATE = attrgetter("__dict__")
_GC = 1 << 14  # Py_TPFLAGS_HAVE_GC
_GC_HEAP = _GC | names.HEAP  # a Python class's instances, tracked by the collector


def _tracked(t: type) -> bool | None:
    k, flags = kind(t), t.__flags__
    if k == SKIP:
        return True if not flags & _GC else None
    if k == WALK and (t in (list, set, frozenset) or flags & _GC_HEAP == _GC_HEAP):
        return True if not issubclass(t, dict | tuple) else None
    return None


def _lone_references() -> int:
    """References to an object one container holds, as :func:`reach` counts them."""
    holder = [object()]
    return max(map(getrefcount, gc.get_referents(holder)))


_HELD = _lone_references()


def code_names(code: types.CodeType) -> frozenset[str]:
    """Global names ``code`` and the code nested in it may use."""
    known = _CODE_NAMES.get(code)
    if known is None:
        if len(_CODE_NAMES) > 20_000:
            _CODE_NAMES.clear()
        found, stack = set(), [code]
        while stack:
            c = stack.pop()
            found.update(c.co_names)
            stack.extend(x for x in c.co_consts if isinstance(x, types.CodeType))
        known = _CODE_NAMES[code] = frozenset(found)
    return known


def own_module(name: str | None) -> bool:
    """Whether module ``name`` is the notebook's own: ``__main__``, or a file outside the
    Python installation (a helper module beside the notebook, an editable install)."""
    name = name if type(name) is str else names.exact(name)  # (no str subclass's __eq__)
    if not name or name == "__main__":
        return name == "__main__"
    known = _OWN_MODULES.get(name)
    if known is None:
        path = getattr(sys.modules.get(name), "__file__", None) or ""
        top = name.partition(".")[0]
        known = bool(path) and top not in INFRASTRUCTURE and not path.startswith(_LIBRARY_PATHS)
        _OWN_MODULES[name] = known
    return known


def _kind(t: type) -> int:
    if len(_KINDS) > 50_000:  # classes made in a loop: do not keep them all alive
        _KINDS.clear()
        _KINDS.update(_BASE_KINDS)
    _KINDS[t] = kind = _classify(t)
    return kind


def _classify(t: type) -> int:
    if issubclass(t, type):
        return SPECIAL  # a class: entered only when it is the notebook's own
    if file_type(t):
        return SKIP
    top = (names.of(t)[0] or "").partition(".")[0]  # (read in C: no notebook code runs)
    if (
        top in ("builtins", "itertools")
        and issubclass(t, Iterator)
        and not issubclass(t, types.GeneratorType | types.CoroutineType | types.AsyncGeneratorType)
    ):
        return WALK  # ``z = iter(rows)``, zip, enumerate, map: they hold what they iterate
    if top in INFRASTRUCTURE:
        if top in KERNEL:
            _KERNEL_TYPES.add(t)
        return SKIP
    np = sys.modules.get("numpy")
    if np is not None and issubclass(t, np.ndarray):
        return SPECIAL
    if top == "numpy":
        return SKIP  # dtypes, scalars, ufuncs: nothing in them changes
    if t in SENTINEL_TYPES:
        return SKIP  # dataclasses' MISSING & co.: stateless, pickled by reference
    if top == "typing":
        return SPECIAL  # an annotation: what it holds is walked, it is not keyed
    if top == "pandas" and t.__name__.endswith(("Index", "Dtype", "DType")):
        return SKIP  # immutable by design, and shared between frames
    return WALK


def _special(o: Any, ns: dict, nxt: list, out: Reach, root: Any, bases: set[int]) -> bool:
    """Objects the generic walk would follow too far (into the kernel) or not far enough.

    Returns whether ``o`` is data (an array), as opposed to code, a class or a module.
    Types by ``type()``: ``isinstance`` reads ``__class__``, the notebook's code in a proxy.
    """
    t = type(o)
    if (head := names.head(o)) is not None:  # the notebook's function or class (read in C)
        out.refs.add(head)
        # Saved by value (a lambda, a class whose cell ran again): a copy in each payload
        # (keyed, a lambda two big values hold made them one payload: helper-113). Else a
        # name in the payload: loaded first (``deps``, sharing.cycles); an attribute of it
        # (``bm = S().d``, ``Outer.Inner``) watched: ``S.d = f`` changes what it gives.
        holder = None if o is root or by_value(o, ns) else ns.get(head)
        if holder is not None and head != names.head(root):  # (not its own methods)
            out.deps.add(head)
            if o is not holder:
                out.watch[names.of(o)[1] or head] = id(o)
    if t is types.FunctionType:
        _function(o, ns, nxt, out)
    elif t is types.MethodType:
        nxt.extend((o.__func__, o.__self__))
        # Pickled as ``getattr(self, name)`` while that gives it (codec): the classes it is
        # looked up in watched, to the one holding it (``T.cm``, inherited from ``S``).
        owner, name = o.__self__, o.__func__.__name__
        cls = owner if issubclass(type(owner), type) else type(owner)
        for c in MRO(cls) if functions.current(o) else ():
            if (h := names.head(c)) is not None and h in ns and not by_value(c, ns):
                out.deps.add(h)
                out.watch[f"{names.of(c)[1]}.{name}"] = id(o.__func__)
            if name in CLASS_DICT(c):
                break
    elif t is weakref.ReferenceType:  # saved with what it points at (weak.py)
        nxt.append(o())
    elif t is types.BuiltinFunctionType:  # ``push = rows.append`` mutates rows
        if not issubclass(type(o.__self__), types.ModuleType):
            nxt.append(o.__self__)
    elif issubclass(t, types.ModuleType):
        if o.__name__ != "__main__" and own_module(o.__name__):
            nxt.extend(vars(o).values())
    elif issubclass(t, type):
        if o is root or _nested(o, root):  # the variable's own class: its data too
            _class(o, ns, nxt, out)
        elif _FOREIGN.get(o) is not o.__mro__:  # a library's class (a widget's): nothing
            class_names(o, ns, out)
    elif type(o).__module__ == "typing":
        # ``Optional[int]`` is cached, shared by every class naming it: keyed, it tied
        # them all into one payload (it pickles by reference to that cache: one object
        # after a restore still). What an annotation holds may be data
        # (``Annotated[int, checks]``, ``Literal[tag]``): walked, and keyed as such.
        # (``list[int]`` is made anew each time it is written: keyed as any object.)
        # (A tuple of arguments is the alias's, shared as it is: its items are walked.)
        for part in ANNOTATION_PARTS:
            found = own_state(o, part)
            if type(found) is tuple:
                nxt.extend(found)
            elif found is not ABSENT:
                nxt.append(found)
    else:  # an array
        bases.update(views.chain(o))  # a view changes when the memory it views changes
        if o.dtype.hasobject:
            nxt.extend(o.ravel(order="K").tolist())
        return True
    return False


def class_names(o: type, ns: dict, out: Reach) -> None:
    """A notebook class reached through its instances: the names its methods use (and its
    own, for class attributes), not its data (the class's variable's: not tied to it)."""
    _class(o, ns, None, out)


#: Classes none of whose bases is the notebook's (a library's) -> their ``__mro__`` then:
#: :func:`class_names` finds nothing in them (own_module is cached per module too).
_FOREIGN: dict[type, tuple[type, ...]] = {}


def _class(o: type, ns: dict, nxt: list | None, out: Reach) -> None:
    """``nxt``: the class is the value walked, so its attributes are walked too."""
    mro = o.__mro__
    if nxt is None and not any(own_module(names.of(c)[0]) for c in mro):
        if len(_FOREIGN) > 50_000:  # classes made in a loop: do not keep them all alive
            _FOREIGN.clear()
        _FOREIGN[o] = mro
        return
    for cls in mro:
        if own_module(names.of(cls)[0]):
            holder = bound_to(cls, ns)
            if holder is not None:  # its data (and a nested class's) is that variable's
                out.names.add(holder)
                if nxt is not None and cls is not o and holder != names.head(o):
                    if not IPYTHON_NAMES.match(holder):  # a base its payload names
                        out.deps.add(holder)
            for name, attr in vars(cls).items():
                for f in functions_of(attr):
                    _function(f, ns, [] if nxt is None else nxt, out)
                    if nxt is None:  # a helper module's data its methods can change (its
                        # global list): keyed, so a variable holding it is checked with it
                        out.keys.update(id(x) for x in _module_data(f, ns)
                                        if kind(type(x)) == WALK)  # fmt: skip
                if (
                    nxt is not None
                    and not name.startswith("__")
                    and (cls is o or not (functions_of(attr) or names.head(attr)))
                ):  # (a base's methods and classes: its payload names them, not this one's)
                    nxt.append(attr)


def _nested(cls: type, root: Any) -> bool:
    """Whether ``cls`` is a class nested in the class ``root`` (``Outer.Node`` in ``Outer``)."""
    return (issubclass(type(root), type) and cls.__module__ == root.__module__
            and cls.__qualname__.startswith(root.__qualname__ + "."))  # fmt: skip


def _kernel_held(obj: Any, ns: dict[str, Any]) -> str:
    """The kernel object's type that ``obj``, a library's machinery the walk does not enter,
    holds through what it references (a traitlets link holding two widgets: their comms);
    "" when none, or when ``obj`` is anything else (the walk itself finds those).

    Its sharing is not walked, but what holds the kernel cannot be saved: said here, pickle
    and dill are not tried (dill walked the widgets to the kernel before refusing, ~5 ms).
    """
    t = type(obj)
    if kind(t) != SKIP or t in _KERNEL_TYPES or file_type(t):
        return ""
    top = (getattr(t, "__module__", None) or "").partition(".")[0]
    if top not in INFRASTRUCTURE:
        return ""
    # One level in: what it holds is walked as data is (a list root: no call back here),
    # and stops at the next object of the machinery; a glance first (a link's widgets).
    held = gc.get_referents(obj)
    return _glance(held, {id(ns), id(sys.modules), id(vars(builtins))}) or reach(held, ns).kernel


def _glance(items: list[Any], skip: set[int]) -> str:
    """A kernel object's type among ``items``, in the dicts, lists and tuples they hold (two
    levels), or in their state (:func:`kernel_in_state`); "" when none is seen so: a look
    at a traitlets link's two widgets (~5 µs), where walking them took ~0.2 ms. ``skip``:
    the ids of what the walk never enters (the notebook's globals: review59 F3)."""
    for _ in range(3):
        inner: list[Any] = []
        for o in items:
            t = type(o)
            if id(o) in skip:
                continue
            if t is dict:
                inner.extend(o.values())
            elif t is tuple or t is list:
                inner.extend(o)
            elif held := kernel_in_state(o):
                return held
        items = inner
    return ""


def kernel_in_state(obj: Any) -> str:
    """The type of the kernel object ``obj`` is (the shell: ``ip = get_ipython()``) or holds
    in its own ``__dict__``, or in a traitlets ``_trait_values`` dict there (a widget's
    comm), or "": a look, not a walk (~5 µs).

    Read through the C descriptor of its class: never a ``getattr`` on a value (a Mock
    grows a child), nor a ``__dict__`` property (code: review59 F3). Only for instances the
    walk enters (a module's dict is not its data): what it finds, the walk finds too.
    Not a function's attributes (``interact(f)`` sets ``f.widget``): a function named is
    walked for the names its code uses, which a call may change (helper-100 F1).
    """
    if kind(type(obj)) != WALK:
        return type(obj).__qualname__ if type(obj) in _KERNEL_TYPES else ""
    found = next((d for c in type(obj).__mro__ if (d := vars(c).get("__dict__"))), None)
    if type(found) is not types.GetSetDescriptorType:
        return ""
    state = found.__get__(obj, type(obj))
    if type(state) is not dict:
        return ""
    traits = state.get("_trait_values")
    for held in (state, traits if type(traits) is dict else {}):
        for value in held.values():
            t = type(value)
            if t not in _KINDS:
                kind(t)  # classifies it: a kernel's type joins _KERNEL_TYPES
            if t in _KERNEL_TYPES:
                return t.__qualname__
    return ""


def kind(t: type) -> int:
    """How the walk treats instances of ``t``: :data:`SKIP`, :data:`WALK` or :data:`SPECIAL`."""
    return known if (known := _KINDS.get(t)) is not None else _kind(t)


def kinds() -> dict[type, int]:
    """The types classified so far -> their :func:`kind` (a live view, for loops)."""
    return _KINDS


def _function(o: types.FunctionType, ns: dict, nxt: list, out: Reach) -> None:
    nxt.extend(o.__closure__ or ())
    nxt.extend(x for x in (o.__defaults__, o.__kwdefaults__, o.__dict__) if x)
    if o.__globals__ is ns:
        out.names.update(code_names(o.__code__))
    nxt.extend(_module_data(o, ns))


def _module_data(o: types.FunctionType, ns: dict) -> list[Any]:
    """The globals a helper module's function ``o`` uses (its module's data); none for the
    notebook's own functions, whose globals are the notebook's variables."""
    if o.__globals__ is ns or not own_module(o.__module__):
        return []
    g = o.__globals__
    return [g[n] for n in code_names(o.__code__) if n in g]


def functions_of(attr: Any) -> list[types.FunctionType]:
    """The functions a class attribute runs as: a method, static, class method, property."""
    if issubclass(type(attr), staticmethod | classmethod):
        attr = attr.__func__
    if issubclass(type(attr), property):
        return [f for f in (attr.fget, attr.fset, attr.fdel) if type(f) is types.FunctionType]
    return [attr] if type(attr) is types.FunctionType else []
