"""Serialization of step results and of the namespace's values.

JSON for plain data, pickle protocol 5 next, dill (``recurse=True``) last.
"""

from __future__ import annotations

import abc
import contextvars
import copyreg
import functools
import io
import json
import math
import pickle
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import classes, containers, functions, graph, names, quiet, records, views, weak, wrappers
from .cells import IPYTHON_NAMES
from .containers import object_reduce
from .errors import describe
from .fingerprints import SCALARS
from .marshaled import MARSHAL, ROOTS, wordy
from .marshaled import dumps as marshal_dumps
from .marshaled import loads as unmarshal
from .openfiles import abc_file

#: Codec names stored in the journal's ``kind`` column.
JSON, PICKLE, DILL = "json", "pickle", "dill"


def dumps(value: Any) -> tuple[str, bytes]:
    """Serialize ``value``; return ``(kind, payload)``.

    Raises whatever the last serializer raised when none can handle the value.
    """
    if _json_exact(value, 0):
        return JSON, json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    try:
        out = io.BytesIO()
        pickler = pickle.Pickler(out, protocol=5)
        pickler.dispatch_table = _ResultTable()  # (a list subclass: what it holds)
        pickler.dump(value)
        return PICKLE, out.getvalue()
    except (KeyboardInterrupt, Unserializable):  # Ctrl-C: the work under way stops
        raise
    except BaseException:
        out = io.BytesIO()
        _dill_result_pickler()(out, protocol=5, recurse=True).dump(value)
        return DILL, out.getvalue()


#: Why a step result holding weak references is not saved: they would replay dead (a
#: ``WeakSet`` empty, a proxy as a copy of its object: review68 M5).
_WEAK_RESULT = "it holds weak references, which a replay could not give back alive"


class _ResultTable(containers.ResultTable):
    """A result pickler's table (containers.py) that refuses weak references (weak.py)."""

    def __missing__(self, t: type) -> Any:
        if weak.weak(t):
            raise Unserializable(_WEAK_RESULT)
        return super().__missing__(t)


def loads(kind: str, payload: bytes) -> Any:
    """Inverse of :func:`dumps`; each call builds a fresh object."""
    if kind == JSON:
        return json.loads(payload)
    if kind == PICKLE:
        return pickle.loads(payload)
    if kind == DILL:
        import dill

        return dill.loads(payload)
    raise ValueError(f"unknown codec {kind!r}")


def _json_exact(value: Any, depth: int) -> bool:
    """True when JSON round-trips ``value`` to an equal object of the same types."""
    if depth > 64:
        return False
    t = type(value)
    if t is float:
        return math.isfinite(value)
    if t in SCALARS:
        return True
    if t is list:
        return all(_json_exact(v, depth + 1) for v in value)
    if t is dict:
        return all(type(k) is str and _json_exact(v, depth + 1) for k, v in value.items())
    return False


# -- namespace values: pickle 5 with out-of-band buffers, and what they share --------


class Unserializable(Exception):
    """A value neither pickle nor dill can save safely; the reason is the message."""


class _ByValue(Exception):
    """A notebook function or class by value that only dill can save."""


def _guard(obj: Any) -> None:
    # dill reopens a file with its mode on load ('w' truncates it): never one in a snapshot.
    if isinstance(obj, io.IOBase):
        raise Unserializable(f"{type(obj).__name__} is an open file")


class _ByName:
    """Notebook classes and functions bound to a variable of their name are saved as that
    name (the variable's own payload holds them by value); others by value. So after a
    restore ``type(obj) is Cls`` holds, as in the live namespace."""

    def __init__(self, ns: dict[str, Any] | None, members: set[int]) -> None:
        self.ns, self.members, self.refs = ns, members, set()
        self.weak: list[Any] = []  # what the weak references pickled point at (weak.py)
        self.owners: views.Owners | None = None  # (encode's: views.py)

    def reduce(self, obj: Any) -> Any:
        _guard(obj)  # (isinstance: a proxy of a file is refused too)
        t = type(obj)  # not __class__, which is user code on a proxy (helper-54 F8)
        if t in views.DICT_VIEWS:  # (views.py)
            return views.reduce_dict_view(obj)
        if weak.weak(t):
            try:
                return weak.reduce(obj, self.weak)
            except weak.Refused as exc:
                raise Unserializable(str(exc)) from None
        if t is types.MethodType and names.head(obj.__func__) is not None:
            # ``getattr(self, name)`` (pickle's) while that gives it; else its function (``S.d
            # = f`` after ``bm = S().d``; the variable watches ``S``: saved again then).
            if not functions.current(obj):
                return functions.method, (obj.__func__, obj.__self__)
        module, name = names.of(obj)
        if t is names.CACHED and (module != "__main__" or name is None):  # (by name: below)
            if (held := names.CACHED.cache_info(obj).currsize) and not names.located(obj):
                raise Unserializable(wrappers.holding(held))  # (saved empty, silently)
        if module == "__main__" and name is not None:
            # ``Outer.Inner``: through the global ``Outer``, unless ``Outer`` is saved here
            # by value (then so is what it holds: its methods, its nested classes).
            ns, members = self.ns, self.members
            head = name.partition(".")[0]
            # (Itself a member, by its name still when its variable is another's, as
            # ``H = C.Inner``: ``H is C.Inner`` after a restore.)
            if ns is not None and id(ns.get(head)) not in members:
                if self._bound(obj, name):
                    self.refs.add(head)
                    return _global, (name,)
            try:  # (functools' wrappers: wrappers.py)
                if t is names.CACHED:
                    return wrappers.reduce_cached(obj)
                if t is types.FunctionType and wrappers.is_dispatcher(obj):
                    return wrappers.reduce_dispatcher(obj, self.named)
            except TypeError as exc:
                raise Unserializable(str(exc)) from None
            return None
        return NotImplemented

    def named(self, cls: Any) -> bool:
        """Whether ``cls`` pickles as a name found again: not a class of the notebook's no
        variable holds by its name, nor a module's no longer found there (redefined, or
        reloaded: each payload would make one of its own, or load the new one)."""
        module, name = names.of(cls)
        if module != "__main__" or name is None or self.ns is None:
            return names.located(cls)  # (a helper module reloaded since made another)
        return self._bound(cls, name)

    def _bound(self, obj: Any, name: str) -> bool:
        """Whether the notebook global ``name`` names ``obj`` (not by IPython's names:
        ``_``, which ``@f.register def _`` binds, is never saved)."""
        return self.ns is not None and not names.by_value(obj, self.ns, name)


def _global(name: str) -> Any:
    """A notebook global (``Outer.Inner``: an attribute of one), from the restore under way
    (which loads it first) or ``__main__``."""
    resolve = _RESOLVE.get()
    head, _, rest = name.partition(".")
    obj = resolve(head) if resolve is not None else vars(sys.modules["__main__"])[head]
    for part in rest.split(".") if rest else ():
        obj = getattr(obj, part)
    return obj


_RESOLVE: contextvars.ContextVar[Callable[[str], Any] | None] = contextvars.ContextVar(
    "durable_nb_resolve", default=None
)


class _Pickler(pickle.Pickler):
    by_name: _ByName
    building: classes.Building
    owners: views.Owners
    array: type | None
    #: List, dict and set subclasses met in this pickle -> their reducer, or None: asked of
    #: containers once per type and pickle (a class may gain an ``__iter__`` by the next).
    held: dict[type, Callable[[Any], tuple] | None]

    def reducer_override(self, obj: Any) -> Any:
        t = type(obj)
        if t is self.array:  # (None without NumPy) a view of an array saved here: a view
            return self.owners.reduce(obj) or NotImplemented
        if t in _ORDINARY:  # ~10× less per instance than reduce() below
            return NotImplemented
        found = self.held.get(t, NotImplemented)
        if found is not NotImplemented:  # (a subclass's: as its first instance was)
            return NotImplemented if found is None else found(obj)
        if t is types.CellType:  # (of a function saved here by value)
            return functions.reduce_cell(obj, self.building.defer)
        if t is types.CodeType:
            return functions.reduce_code(obj)
        out = self.by_name.reduce(obj)
        if out is None:  # by value: a function or class here (~30 µs), dill else (~1 ms)
            is_fn = t is types.FunctionType
            out = functions.reduce(obj, _plain) if is_fn else self.building.reduce(obj)
            if out is None:
                raise _ByValue
        if out is NotImplemented:  # (a class's part: a property, a dataclass's field...)
            out = classes.reduce_part(obj)
            code = t in _CODE  # (never ordinary)
            if out is NotImplemented and not (code or issubclass(t, type)):
                if (base := containers.base_of(t)) is None or base is t:  # (not a class's
                    _remember(t)  # type: ``type`` pickles notebook classes too)
                elif (found := self.held.setdefault(t, containers.reducer(t))) is not None:
                    return found(obj)
        return out


#: Types whose reduce here depends on the object (a bound method's on its class's attribute).
_CODE = frozenset({types.FunctionType, names.CACHED, types.MethodType})
#: Types whose instances are neither files nor functions nor classes, nor subclasses of list,
#: dict or set (C types that never gain an ``__iter__``): the pickler's override skips them.
_ORDINARY: set[type] = set()
_ORDINARY_TOKEN = [abc.get_cache_token()]  # (its answers hold while no ABC registers more)


def _remember(t: type) -> None:
    """Add ``t`` to :data:`_ORDINARY`, which a loop making classes does not fill for good."""
    if len(_ORDINARY) > 50_000:
        _ORDINARY.clear()
    _ORDINARY.add(t)


class _NotPlain(Exception):
    """The value holds more than plain data: the caller walks its graph instead."""


#: Type -> whether its instances are plain data: their pickle follows exactly the objects a
#: graph walk follows, so the pickler's memo names the objects they share. Object's own
#: reduce, a ``__dict__``, no slots; not the kernel's, a library's machinery, an array, a file.
_PLAIN: dict[type, bool] = {}


def _plain(t: type) -> bool:
    known = _PLAIN.get(t)
    if known is None:
        if len(_PLAIN) > 50_000:
            _PLAIN.clear()
        known = _PLAIN[t] = (
            graph.kind(t) == graph.WALK
            and object_reduce(t)
            and t.__dictoffset__ != 0
            and all("__slots__" not in vars(c) for c in t.__mro__)
        )
    return known and not abc_file(t)  # (io's ABC, asked each time: one registered since too)


class _PlainTable(dict):
    """A plain pickler's ``dispatch_table``: type -> the reducer of its instances, made on
    first sight (``__missing__``), so that the C pickler asks Python once per type, not once
    per object. A plain type's reducer is its own ``__reduce_ex__``, called from C (what the
    pickler does without a table); any other type stops the pickle before its reduce runs."""

    def __init__(self) -> None:
        super().__init__()
        self.classes: list[type] = []  # the instances' classes met, in order

    def __missing__(self, t: type) -> Any:
        if not _plain(t):
            raise _NotPlain  # functions, modules, arrays, files, metaclasses...
        self.classes.append(t)
        reduce = self[t] = containers.reducer(t) or containers.REDUCE
        return reduce


class _PlainPickler(pickle.Pickler):
    """Pickles plain data only (raises :class:`_NotPlain` at anything else) with no Python
    call per object: classes and functions go by reference (``__main__.Name`` when the
    notebook's; :class:`_Unpickler` asks the restore for those), instances through
    :class:`_PlainTable`."""

    def __init__(self, file: io.BytesIO) -> None:
        self.dispatch_table = _PlainTable()  # read by the C pickler's __init__
        super().__init__(file, protocol=5)


@functools.cache
def _dill_result_pickler() -> type:
    """dill's pickler for results (imported on first need: dill is slow to import), a
    type that iterates its own way saved with what it holds."""
    import dill

    class _DillResultPickler(dill.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if weak.weak(type(obj)):
                raise Unserializable(_WEAK_RESULT)
            return containers.reduce_held(obj)

    return _DillResultPickler


@functools.cache
def _dill_pickler() -> type:
    """The pickler class, made once (dill is imported on first need)."""
    import dill

    # Without ``recurse``, dill writes a notebook function's globals as a reference to
    # ``__main__``: once restored, it sees the restored namespace, not a private copy.
    class _DillPickler(dill.Pickler):
        by_name: _ByName

        def reducer_override(self, obj: Any) -> Any:
            owners = self.by_name.owners  # (a type is never None: no NumPy, no match)
            if owners is not None and type(obj) is owners.array:
                return owners.reduce(obj) or NotImplemented  # (views.py)
            out = self.by_name.reduce(obj)
            # A library's wrapper under a notebook name (a dataclass's ``__repr__``): its
            # module's globals by reference, where dill copied them. Not the notebook's
            # own functions: dill's save_function defers a closure reaching the function
            # itself, which a reduce cannot (helper-53 N1).
            if out is None and type(obj) is types.FunctionType:
                if functions.module_of(obj.__globals__) not in (None, "__main__"):
                    out = functions.reduce(obj, _plain, check=False)
            elif out is NotImplemented and type(obj) in (staticmethod, classmethod):
                out = classes.reduce_part(obj)  # with its own attributes, which dill drops
            elif out is NotImplemented:
                out = containers.reduce_held(obj)
            return NotImplemented if out is None else out

    return _DillPickler


@dataclass
class Encoded:
    """A value ready to store: a pickle stream, its raw buffers, the notebook globals it
    refers to by name; for plain data (:func:`encode_plain`), what it reaches."""

    codec: str
    stream: bytes
    buffers: list[memoryview]
    refs: frozenset[str] = frozenset()
    reached: graph.Reach | None = None


#: Up to this many objects in a plain value, what it reaches is read from the pickler.
MEMO_OBJECTS = 2_000


def encode_plain(obj: Any, ns: dict[str, Any], memo: bool = True) -> Encoded | None:
    """:func:`encode` for a value of plain data only (containers, instances of plain
    classes, classes and functions bound to their name); None for any other value.

    When it holds few objects and no function, ``reached`` is what it reaches, taken from
    the pickler's memo: the keys and names :func:`graph.reach` gives, without a walk (a list
    of a million numbers is pickled in one pass, not walked too). Otherwise (or not
    ``memo``: walked already) ``reached`` is None: the caller walks, and adds the walk's
    ``refs`` (:func:`encode_reach`).
    """
    if issubclass(type(obj), type) or type(obj) is types.FunctionType:  # (no __class__ read)
        return None  # a variable's own class or function is saved by value: encode()
    out = io.BytesIO()
    pickler = _PlainPickler(out)
    try:
        pickler.dump(obj)
    except Exception:
        return None  # not plain, or unbound notebook code (dill's): encode() says why
    table: _PlainTable = pickler.dispatch_table
    # The memo's size is read from two more pickles written after the value's, cut off before
    # its stream is taken (taken first, the next write would copy it whole: 5 MB, ~4 ms).
    end, sentinel = out.tell(), []
    size = _memo_size(pickler, out, sentinel)
    out.truncate(end)
    enc = Encoded(PICKLE, out.getvalue(), [], frozenset(_refs(table.classes)))
    # Reading the memo costs ~2 µs an object, more than a walk: only for few (1M numbers).
    if not memo or size > MEMO_OBJECTS or containers.stored_contents in table.values():
        return enc  # (stored_contents: its copies of what subclasses held are in the memo)
    objects = [o for _, o in pickler.memo.copy().values()]
    kinds = graph.kinds()
    classes = [o for o in objects if type(o) is type]
    if any(type(o) is types.FunctionType and o not in _NEWOBJ for o in objects):
        return enc  # pickled by name, yet the walk follows what a function holds
    walk, plain = graph.WALK, set(table.classes)
    enc.refs = frozenset(_refs(classes))
    enc.reached = reached = graph.Reach()
    reached.keys = {id(o) for o in objects if kinds.get(type(o)) == walk}
    reached.keys.discard(id(sentinel))
    # An empty __dict__ is not pickled (no state), yet a variable may hold it.
    reached.keys.update(id(vars(o)) for o in objects if type(o) in plain)
    reached.deps = set(enc.refs)  # (by name: the plain pickler's, or it raised)
    for cls in classes:
        graph.class_names(cls, ns, reached)
        if "." in (name := names.of(cls)[1] or ""):  # ``Outer.Inner``: watched, as a walk
            reached.watch[name] = id(cls)
    return enc


#: The functions a plain instance's reduce names (pickled by reference).
_NEWOBJ = (copyreg.__newobj__, copyreg.__newobj_ex__)


def _refs(found: Iterable[Any]) -> set[str]:
    """The notebook globals that classes or functions pickled by reference are bound to
    (``__main__``'s: a restore loads them first, and a payload naming one that is rebound
    is saved again)."""
    return {head for o in found if (head := names.head(o)) is not None}


#: Values whose pickle is all there is to them: nothing reached, nothing shared.
ATOMS = frozenset({int, float, bool, type(None), str, bytes})


def encode_reach(obj: Any, ns: dict[str, Any]) -> tuple[Encoded | None, graph.Reach]:
    """:func:`encode_plain` and what ``obj`` reaches: from the memo, or a walk."""
    if type(obj) in ATOMS:  # ``y = 1``: no pickler of our own, no memo to read
        return Encoded(PICKLE, pickle.dumps(obj, protocol=5), []), graph.Reach()
    if type(obj) is types.ModuleType and not graph.own_module(getattr(obj, "__name__", None)):
        # ``np``, mentioned in most cells: a library's module is no data (the walk enters
        # only the notebook's own modules), and no plain pickle (~40 µs a cell for nothing)
        return None, graph.Reach()
    if type(obj) in ROOTS and wordy(obj):  # (strings, rows: walked first)
        reached = graph.reach(obj, ns, typed=True)
        stream = None if reached.kernel else marshal_dumps(obj, reached.types)
        got = None if stream is not None else records.encode(obj, reached)  # (instances)
        if stream is not None:
            enc = Encoded(MARSHAL, stream, [])
        elif got is not None:  # (refs checked below: never IPython's names, helper-74 M2)
            enc = Encoded(PICKLE, got[0], [], frozenset(_refs(got[1])))
        else:
            enc = encode_plain(obj, ns, memo=False)
    else:
        enc = encode_plain(obj, ns)
        reached = graph.reach(obj, ns) if enc is None or enc.reached is None else enc.reached
    if enc is not None and enc.reached is not reached:
        enc.refs = enc.refs | reached.refs
    # The plain pickle names notebook code by its name: not IPython's (``@f.register def _``
    # binds ``_``), never saved; :func:`encode` saves it by value then.
    if enc is not None and any(map(IPYTHON_NAMES.match, enc.refs)):
        enc = None
    return enc, reached


def warm_up() -> None:
    """Save a throwaway notebook function and class once, as a snapshot does: the first use
    of dill (~11 ms to import) and of the pickler is paid then, not by the first cell."""
    ns: dict[str, Any] = {"__name__": "__main__"}  # not __main__'s: dill saves these
    exec("def _f(a, b=1):\n    return [a, b]\nclass _C:\n    pass\n", ns)
    for value in (ns["_f"], ns["_C"]):
        encode_reach(value, ns)
        encode(value, ns, (value,))


def _memo_size(pickler: pickle.Pickler, out: io.BytesIO, sentinel: list) -> int:
    """How many objects ``pickler``'s memo holds (it tells no length): ``sentinel`` pickled
    twice more is memoized under that index, then fetched by it (``h`` or ``j`` opcode)."""
    pickler.dump(sentinel)
    start = out.tell()
    pickler.dump(sentinel)
    with out.getbuffer() as view:  # not getvalue(): no copy of what came before
        tail = bytes(view[start : start + 16])
    at = 2 + (9 if tail[2:3] == pickle.FRAME else 0)  # PROTO 5, then maybe a FRAME
    if tail[at : at + 1] == pickle.BINGET:
        return tail[at + 1]
    if tail[at : at + 1] == pickle.LONG_BINGET:
        return int.from_bytes(tail[at + 1 : at + 5], "little")
    return sys.maxsize  # not what this Python writes: walk instead


def encode(obj: Any, ns: dict[str, Any] | None = None, members: tuple = ()) -> Encoded:
    """Serialize ``obj`` without copying its large buffers; pickle once when pickle can.
    ``ns``: the notebook's globals (bound notebook classes and functions are saved by name);
    ``members``: the values saved by value even when bound (``obj``, a group's members).
    :class:`Unserializable` with the reason when nothing can save it."""
    if (token := abc.get_cache_token()) != _ORDINARY_TOKEN[0]:  # registered since (io's: files)
        _ORDINARY.clear()
        _ORDINARY_TOKEN[0] = token
    buffers: list[memoryview] = []
    by_name = _ByName(ns, {id(m) for m in members or (obj,)})
    by_name.owners = owners = views.Owners(members or (obj,))
    out = io.BytesIO()
    try:
        pickler = _Pickler(out, protocol=5, buffer_callback=lambda b: buffers.append(b.raw()))
        pickler.by_name, pickler.held = by_name, {}
        pickler.owners, pickler.array = owners, owners.array
        pickler.building = classes.Building(lambda c: functions.simple(c, ns or {}, _plain))
        pickler.dump(obj)
        _held(obj, by_name)
        return Encoded(PICKLE, out.getvalue(), buffers, frozenset(by_name.refs))
    except Unserializable:
        raise
    except _ByValue:
        pass
    except KeyboardInterrupt:  # Ctrl-C: the work under way stops
        raise
    except BaseException as exc:
        if not _worth_dill(exc):
            raise Unserializable(describe(exc)) from None
    out, by_name.refs, by_name.weak = io.BytesIO(), set(), []
    buffers.clear()
    try:
        with quiet.dill_quiet():
            keep = buffers.append
            pickler = _dill_pickler()(out, protocol=5, buffer_callback=lambda b: keep(b.raw()))
            pickler.by_name = by_name
            pickler.dump(obj)
    except Unserializable:
        raise
    except KeyboardInterrupt:  # Ctrl-C: the work under way stops
        raise
    except BaseException as exc:
        raise Unserializable(describe(exc)) from None
    _held(obj, by_name)
    return Encoded(DILL, out.getvalue(), list(buffers), frozenset(by_name.refs))


def _held(obj: Any, by_name: _ByName) -> None:
    """Refuse ``obj`` when a weak reference in it points at an object it does not hold:
    restored, the reference would be dead (weak.py)."""
    if by_name.weak and not weak.check(obj, by_name.weak):
        raise Unserializable("a weak reference to an object nothing saved with it holds is "
                             "made again by its cell")  # fmt: skip


def _worth_dill(exc: BaseException) -> bool:
    """Whether dill may save what pickle refused (lambdas, local classes, generators...)."""
    return isinstance(exc, Exception) and not isinstance(exc, RecursionError | MemoryError)


def decode(codec: str, stream: bytes, buffers: Iterable[Any],
           resolve: Callable[[str], Any] | None = None) -> Any:  # fmt: skip
    """Inverse of :func:`encode`; ``resolve(name)`` gives the notebook global ``name``."""
    token = _RESOLVE.set(resolve)
    try:
        with weak.loading() as made:
            if codec == DILL:
                import dill

                value = dill.loads(stream, buffers=buffers)
            elif codec == MARSHAL:
                value = unmarshal(stream)
            elif codec != PICKLE:
                raise ValueError(f"unknown codec {codec!r}")
            else:
                value = _Unpickler(io.BytesIO(stream), buffers=buffers).load()
        weak.held(value, made)  # (a reduce may have dropped what held them)
        return value
    finally:
        _RESOLVE.reset(token)


class _Unpickler(pickle.Unpickler):
    """Notebook classes and functions pickled by reference (``__main__.Name``) come from
    the restore under way, which loads them first, as :func:`_global` does."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__" and _RESOLVE.get() is not None:
            return _global(name)
        return super().find_class(module, name)
