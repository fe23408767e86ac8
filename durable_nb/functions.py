"""Notebook functions saved by value with the C pickler, their code through ``marshal``.

dill saves a function in ~0.6-1 ms of Python (its pickler is the pure-Python one); a
notebook that defines a few callbacks paid that in the cell that defined them. Here a
function is a reduce the C pickler follows: its code object as ``marshal`` bytes, tagged
with this Python's bytecode magic (code of another version is refused, never run), its
closure's cells, and the rest (defaults, attributes, ...) as state set once it exists,
so a function reaching itself (a recursive closure, a default list holding it) pickles.

Like dill's (``recurse`` off), a function's globals are not saved: it is given
``__main__``'s namespace when loaded, so after a restore it sees the restored variables.
Only functions whose globals are ``__main__``'s are taken; others go to dill as before.

A journal names the helpers below (``durable_nb.functions.make``, ...): never rename them.
"""

from __future__ import annotations

import importlib.util
import marshal
import sys
import types

from .errors import ForeignBytecode

#: This Python's bytecode magic: code marshalled by another version is not loaded.
MAGIC = importlib.util.MAGIC_NUMBER


def reduce(fn: types.FunctionType) -> tuple | None:
    """``fn``'s reduce (a 6-tuple with a state setter), or None when dill must save it."""
    main = sys.modules.get("__main__")
    if main is None or fn.__globals__ is not vars(main):
        return None
    state = (fn.__qualname__, fn.__module__, fn.__defaults__, fn.__kwdefaults__,
             fn.__dict__ or None, fn.__annotations__ or None, fn.__doc__)  # fmt: skip
    args = (MAGIC, marshal.dumps(fn.__code__), fn.__name__, fn.__closure__)
    return make, args, state, None, None, setstate


def reduce_cell(c: types.CellType) -> tuple:
    """A closure cell: made empty, filled once memoized (its contents may reach it)."""
    try:
        contents = c.cell_contents
    except ValueError:  # a variable the closure names but that was never bound
        return cell, ()
    return cell, (), (contents,), None, None, fill


def make(magic: bytes, code: bytes, name: str, closure: tuple | None) -> types.FunctionType:
    """A function of ``code`` (marshalled) in ``__main__``'s namespace."""
    if magic != MAGIC:
        raise ForeignBytecode(name, magic, MAGIC)
    found = marshal.loads(code)
    if type(found) is not types.CodeType:
        raise TypeError(f"the saved code of function {name!r} is not a code object")
    return types.FunctionType(found, vars(sys.modules["__main__"]), name, None, closure)


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
