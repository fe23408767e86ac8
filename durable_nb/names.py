"""The module and qualified name of a function, class or cache wrapper, read without
running the notebook's code.

``obj.__module__ == "__main__"`` and ``obj.__qualname__.partition(".")`` run the
notebook's code when a name is a ``str`` subclass (its ``__eq__``, its ``partition``) or a
metaclass's property: saving must not. Names are read here through C slots and dicts, and
a ``str`` subclass is copied to an exact string in C.

And what a notebook name finds: the variable a definition is bound to (:func:`bound_to`;
else it is saved by value, :func:`by_value`), and what a dotted name gives now
(:func:`gives`).
"""

from __future__ import annotations

import functools
import sys
import types
from typing import Any

from .cells import IPYTHON_NAMES
from .containers import ABSENT, lookup

#: The type of ``functools.lru_cache``'s wrapper (``cache`` too): its names are in its dict.
CACHED = type(functools.lru_cache(lambda: None))

_FUNCTION_MODULE = types.FunctionType.__dict__["__module__"].__get__
_FUNCTION_NAME = types.FunctionType.__dict__["__qualname__"].__get__
_CLASS_MODULE = type.__dict__["__module__"].__get__
_CLASS_NAME = type.__dict__["__qualname__"].__get__
_CLASS_DICT = type.__dict__["__dict__"].__get__
_CLASS_FLAGS = type.__dict__["__flags__"].__get__
#: Py_TPFLAGS_HEAPTYPE: a class made by Python code (``class``, ``type()``), not in C.
HEAP = 1 << 9
_COPY, _ALL = str.__getitem__, slice(None)


def exact(s: Any) -> str | None:
    """``s`` as an exact ``str`` (a subclass's copied in C), None when it is no string."""
    t = type(s)
    if t is str:
        return s
    return _COPY(s, _ALL) if issubclass(t, str) else None


def of(obj: Any) -> tuple[str | None, str | None]:
    """``obj``'s module and qualified name as exact strings (None each when it has none,
    or is not a function, class or cache wrapper; and when its dict has a key that is no
    exact string, which a lookup there could compare: its ``__eq__``)."""
    t = type(obj)
    if t is types.FunctionType:
        module, name = _FUNCTION_MODULE(obj), _FUNCTION_NAME(obj)
    elif t is CACHED and _plain_keys(vars(obj)):
        module, name = vars(obj).get("__module__"), vars(obj).get("__qualname__")
    elif issubclass(t, type) and (not _CLASS_FLAGS(obj) & HEAP or _plain_keys(_CLASS_DICT(obj))):
        # (A static type's names come from its C name, read without its dict: ``str``'s 71
        # keys are not gone through for every print of a class that holds a string.)
        module, name = _CLASS_MODULE(obj), _CLASS_NAME(obj)
    else:
        return None, None
    return exact(module), exact(name)


def _plain_keys(d: Any) -> bool:
    return all(type(k) is str for k in d)  # (iterating compares nothing)


def located(obj: Any) -> bool:
    """Whether ``obj`` is found again by its module and qualified name (a library's, a
    helper module's: not after a reload made another), read through dicts."""
    module, name = of(obj)
    found: Any = sys.modules.get(module) if module is not None and name is not None else None
    for part in name.split(".") if found is not None else ():
        if type(found) is types.ModuleType:
            found = vars(found).get(part)
        elif issubclass(type(found), type) and _plain_keys(_CLASS_DICT(found)):
            found = _CLASS_DICT(found).get(part)
        else:
            return False
    return found is obj and found is not None


def head(obj: Any) -> str | None:
    """The notebook global a ``__main__`` function or class is found by (``Outer`` for
    ``Outer.Inner``), else None."""
    module, name = of(obj)
    return name.partition(".")[0] if module == "__main__" and name is not None else None


def bound_to(cls: Any, ns: dict, name: str | None = None) -> str | None:
    """The variable bound to ``cls`` (``Node``), or to the class it is nested in
    (``Outer`` for ``Outer.Node``), by its qualified name (``name``, else read); None if
    none is. A class's own namespace only, not what it inherits (``class A(A)``: the old
    ``A.hi`` is no part of the new ``A``)."""
    head, *rest = ((of(cls)[1] or "") if name is None else name).split(".")
    obj = ns.get(head) if head else None
    for part in rest:
        obj = vars(obj).get(part) if issubclass(type(obj), type) else None
        if type(obj) is staticmethod:  # ``H.helper``: the function itself, as getattr gives
            obj = obj.__func__
    return head if obj is cls else None


def by_value(o: Any, ns: dict, name: str | None = None) -> bool:
    """Whether the notebook's function or class ``o`` (of qualified name ``name``, else read)
    is saved by value: no variable holds it by its name (IPython's are never saved)."""
    name = (of(o)[1] or "") if name is None else name
    return bool(IPYTHON_NAMES.match(name.partition(".")[0])) or bound_to(o, ns, name) is None


def gives(name: str, ns: dict) -> Any:
    """What the dotted ``name`` gives now: a notebook global, then attributes of classes
    along their MRO (a static or class method's function), read through dicts."""
    head, *rest = name.split(".")
    obj = ns.get(head)
    for part in rest:
        if not issubclass(type(obj), type):
            return None
        obj = lookup(obj, part)
        if obj is ABSENT:
            return None
        if type(obj) in (staticmethod, classmethod):
            obj = obj.__func__
    return obj
