"""Notebook functions saved by value with the C pickler, their code through ``marshal``.

dill saves a function in ~0.6-1 ms of Python (its pickler is the pure-Python one); a
notebook that defines a few callbacks paid that in the cell that defined them. Here a
function is a reduce the C pickler follows: its code object as ``marshal`` bytes, tagged
with this Python's bytecode magic (code of another version is refused, never run), its
closure's cells, and the rest (defaults, attributes, ...) as state set once it exists,
so a function reaching itself (a recursive closure, a default list holding it) pickles.

Like dill's (``recurse`` off), a function's globals are not saved: it is given
``__main__``'s namespace when loaded, so after a restore it sees the restored variables
(a library's wrapper made under a notebook name, its module's). Only when what they hold
runs no notebook code as it is pickled (:func:`simple`): a C pass that failed further on
(at a module, a lock) would have run it once already before dill ran it again. Others go
to dill as before.

A code object is a reduce of its own, so the functions one factory made share it (one
copy in the payload and after a restore); it is marshalled with version 2, which writes
no back-references: the bytes do not depend on who else holds its constants.

A journal names the helpers below (``durable_nb.functions.make``, ...): never rename them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import marshal
import sys
import types
from collections.abc import Callable
from typing import Any

from . import classes, containers, names
from .errors import ForeignBytecode

#: This Python's bytecode magic: code marshalled by another version is not loaded.
MAGIC = importlib.util.MAGIC_NUMBER


def reduce(fn: types.FunctionType, plain: Callable[[type], bool],
           check: bool = True) -> tuple | None:  # fmt: skip
    """``fn``'s reduce (a 6-tuple with a state setter), or None when dill must save it
    (``plain(t)``: whether ``t``'s instances pickle as their ``__dict__``, by object's
    own reduce; ``check``: only when :func:`simple`, as the C pass must).

    Its globals go by reference: ``__main__``'s, or (a library's wrapper under a
    notebook name: a dataclass's ``__repr__``) its module's, where dill copied them."""
    module = module_of(fn.__globals__)
    if module is None or (check and not simple(fn, fn.__globals__, plain)):
        return None
    state = (fn.__qualname__, fn.__module__, fn.__defaults__, fn.__kwdefaults__,
             fn.__dict__ or None, fn.__annotations__ or None, fn.__doc__)  # fmt: skip
    args = (fn.__code__, fn.__name__, fn.__closure__, None if module == "__main__" else module)
    return make, args, state, None, None, setstate


def module_of(ns: dict[str, Any]) -> str | None:
    """The name of the loaded module whose namespace ``ns`` is, or None."""
    name = ns.get("__name__")
    found = sys.modules.get(name) if type(name) is str else None
    return name if found is not None and vars(found) is ns else None


def reduce_code(code: types.CodeType) -> tuple:
    """A code object: its marshal (version 2: no back-references), tagged with the magic."""
    return load_code, (MAGIC, marshal.dumps(code, 2))


#: Pickling these in C runs nothing of the notebook's and cannot fail.
_ATOMS = frozenset({int, float, bool, type(None), str, bytes, complex})
#: What a notebook class may define that pickling its instances calls.
_HOOKS = frozenset({"__reduce__", "__reduce_ex__", "__getstate__", "__getnewargs__",
                    "__getnewargs_ex__", "__getattr__", "__getattribute__"})  # fmt: skip
#: Past this many objects held, dill saves the function (as it did before).
SIMPLE_OBJECTS = 512


def simple(root: Any, ns: dict[str, Any], plain: Callable[[type], bool]) -> bool:
    """Whether what ``root`` (a function or a class saved by value) holds is atoms,
    built-in containers, functions, classes (by name, or by value and of the same parts)
    and instances of plain classes of no pickling code of the notebook's: pickled in C with
    no notebook code run (anything else, and more than :data:`SIMPLE_OBJECTS`: dill)."""
    todo: list[Any] = [root]
    seen: set[int] = set()
    while todo:
        o = todo.pop()
        t = type(o)
        if t in _ATOMS or id(o) in seen:
            continue
        seen.add(id(o))
        if len(seen) > SIMPLE_OBJECTS:
            return False
        if t in (list, tuple, set, frozenset):
            todo.extend(o)
        elif t is dict:
            todo.extend(o.keys())
            todo.extend(o.values())
        elif t is types.CellType:
            with contextlib.suppress(ValueError):  # (empty: nothing to pickle)
                todo.append(o.cell_contents)
        elif t is types.FunctionType:
            if names.of(o)[0] == "__main__":  # by value (its parts) or by name
                if o.__globals__ is not ns and module_of(o.__globals__) is None:
                    return False  # (a library's wrapper, as a dataclass's __repr__: its own)
                todo += (o.__defaults__, o.__kwdefaults__, o.__dict__, o.__closure__)
        elif issubclass(t, type):
            module, name = names.of(o)
            if module == "__main__" and (o is root or ns.get(name) is not o):
                if t not in classes.METACLASSES:
                    return False  # by value, of a metaclass of its own: dill's
                todo.extend(classes.namespace(o).values())
                todo.append(o.__bases__)
        elif (held := classes.parts(o)) is not None:
            todo.extend(held)
        elif plain(t) and not hooks(t):
            todo.append(object.__getattribute__(o, "__dict__"))
            todo.append(t)
            # A notebook's subclass of a list or dict: what its base holds, read through its
            # base, as its pickle reads it (containers): none of its own iteration runs,
            # here or then. A dict's keys and values, not its pairs: fresh tuples, whose ids
            # recur once freed, would be taken for ones seen. (The other bases, and a tuple,
            # have reduces of their own: never plain.)
            base = containers.base_of(t)
            if base is list:
                todo.extend(containers.held(o, base))
            elif base is dict:
                todo.extend(x for pair in containers.held(o, base) for x in pair)
            elif base is not None or issubclass(t, tuple):
                return False
        else:
            return False
    return True


def hooks(t: type) -> bool:
    """Whether a notebook class in ``t``'s bases defines what pickling calls (read through
    ``type``'s own getters: no metaclass code runs, review110)."""
    return any(names.of(c)[0] == "__main__" and not _HOOKS.isdisjoint(containers.CLASS_DICT(c))
               for c in containers.MRO(t))  # fmt: skip


def reduce_cell(c: types.CellType, defer: Callable[[types.CellType, Any], bool]) -> tuple:
    """A closure cell: made empty, filled once memoized (its contents may reach it), or
    by the class it holds when ``defer(c, contents)`` says so (a class being saved)."""
    try:
        contents = c.cell_contents
    except ValueError:  # a variable the closure names but that was never bound
        return cell, ()
    if defer(c, contents):
        return cell, ()
    return cell, (), (contents,), None, None, fill


def load_code(magic: bytes, data: bytes) -> types.CodeType:
    """The code object :func:`reduce_code` saved; code of another Python is refused."""
    if magic != MAGIC:
        raise ForeignBytecode(magic, MAGIC)
    found = marshal.loads(data)
    if type(found) is not types.CodeType:
        raise TypeError("a saved code object is something else: the payload is damaged")
    return found


def make(code: types.CodeType, name: str, closure: tuple | None,
         module: str | None = None) -> types.FunctionType:  # fmt: skip
    """A function of ``code`` in ``__main__``'s namespace (or ``module``'s)."""
    if type(code) is not types.CodeType:
        raise TypeError(f"the saved code of function {name!r} is not a code object")
    where = sys.modules["__main__"] if module is None else importlib.import_module(module)
    return types.FunctionType(code, vars(where), name, None, closure)


def setstate(fn: types.FunctionType, state: tuple) -> types.FunctionType:
    """Give ``fn`` what :func:`reduce` kept apart (attributes that may reach ``fn``)."""
    qualname, module, defaults, kwdefaults, attributes, annotations, doc = state
    fn.__qualname__, fn.__module__, fn.__doc__ = qualname, module, doc
    fn.__defaults__, fn.__kwdefaults__ = defaults, kwdefaults
    fn.__annotations__ = annotations or {}
    if attributes:
        fn.__dict__.update(attributes)
    return fn


def cell() -> types.CellType:
    """An empty closure cell (``types.CellType`` has no importable name to pickle)."""
    return types.CellType()


def fill(c: types.CellType, state: tuple) -> types.CellType:
    """Set a cell made by :func:`cell` to what it held."""
    c.cell_contents = state[0]
    return c


def method(fn: Any, owner: Any) -> types.MethodType:
    """A bound method of ``fn`` (what it was bound to, not what its class holds by then:
    ``codec``'s reduce)."""
    return types.MethodType(fn, owner)


def current(m: types.MethodType) -> bool:
    """Whether ``getattr(m.__self__, name)`` gives ``m`` again (pickle's own reduce of a
    bound method: by name, so ``bm = C.cm`` stays ``C.cm``'s), read through dicts: no code
    of the value runs. False when its class's attribute is another function by now."""
    owner, fn = m.__self__, m.__func__
    name = fn.__name__
    if issubclass(type(owner), type):  # a class method, bound to its class
        cls, wrapped = owner, True
    else:
        try:
            own = object.__getattribute__(owner, "__dict__")
        except AttributeError:
            own = {}
        if type(own) is not dict or name in own:
            return False
        cls, wrapped = type(owner), False
    found = containers.lookup(cls, name)
    if wrapped:
        return type(found) is classmethod and found.__func__ is fn
    return found is fn
