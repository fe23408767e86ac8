"""functools' wrappers of notebook functions, saved as what makes them again.

``functools.lru_cache`` (and ``cache``) wraps a function in an object whose own pickle is
its name: for a variable bound to it, the very variable being saved, so a restore skipped
it (``KeyError``). ``functools.singledispatch`` makes a function holding weak references:
it was recomputed by re-running the cell that defined it, without what later cells'
``register`` added, so a call dispatched otherwise, silently. Each is saved here as the
function it wraps and what it was made with, and made again by functools when loaded.

Nothing of the notebook's code runs while saving: what is read is read through C slots,
closure cells and dictionaries. Whatever is not what functools made (a ``__wrapped__``
that is not the function called, a cache of a cache, a ``registry`` that is not the one
dispatching) is refused with the reason, and the value is recomputed (its cell re-run,
said), as before. So is a cache that holds results: it would come back empty, and a call
would compute again what the live one had kept (``@cache def run_id(): return
uuid4().hex``: another id; ``@cache def settings(): return {}``: without what a later
cell set in it); and a dispatcher registered for a notebook class no variable holds by
its name (redefined since): each payload would make its own copy of that class.
"""

from __future__ import annotations

import functools
import gc
import types
from collections.abc import Callable
from typing import Any

from .names import CACHED


def _laid_out() -> bool:
    """Whether a cache wrapper's referents are as :func:`reduce_cached` reads them (its
    type; each entry's key, result and link type when bounded; then its cache dict, its
    function, a marker, the link type, the info type and its ``__dict__``), checked here
    on wrappers made for it. Otherwise every cache is refused."""

    def probe(x: Any) -> tuple:
        return (x,)

    for maxsize in (None, 2):
        made = functools.lru_cache(maxsize=maxsize)(probe)
        made(1)
        refs = gc.get_referents(made)
        if len(refs) < 7 or refs[-5] is not probe or type(refs[-6]) is not dict:
            return False
        if refs[-1] is not vars(made) or refs[0] is not CACHED or type(refs[-3]) is not type:
            return False
        if maxsize and refs[1:-6] != [1, (1,), refs[-3]]:
            return False
    return True


_LAID_OUT = _laid_out()


def reduce_cached(wrapper: Any) -> tuple:
    """A notebook function's cache wrapper by value, while its cache is empty: the
    function it calls, its cache's ``maxsize`` and ``typed``, and the attributes set on it.
    Raises TypeError, saying why, for what cannot be saved so (see the module docstring)."""
    info = CACHED.cache_info(wrapper)
    if info.currsize:
        raise TypeError(holding(info.currsize))
    state = dict(vars(wrapper))
    refs = gc.get_referents(wrapper) if _LAID_OUT else []
    fn = refs[-5] if refs else None
    if fn is None or state.pop("__wrapped__", None) is not fn:
        raise TypeError("its __wrapped__ is not the function its cache calls")
    if type(fn) is CACHED:  # (the outer one's parameters are the inner one's, copied)
        raise TypeError("a cache of a cache: its parameters cannot be read")
    parameters = state.pop("cache_parameters", None)
    if type(parameters) is not types.FunctionType or parameters.__globals__ is not vars(functools):
        raise TypeError("its cache_parameters is not functools' own")
    found, maxsize = parameters(), info.maxsize
    same = type(found["maxsize"]) is type(maxsize) and found["maxsize"] == maxsize
    if not same or type(found["typed"]) is not bool:
        raise TypeError("its cache_parameters is not its cache's")
    return cached, (fn, maxsize, found["typed"]), state


def holding(held: int) -> str:
    """Why a cache holding ``held`` results is not saved."""
    return (f"its cache holds {held} result{'s' * (held > 1)}, which would come back empty (a "
            "call would compute again what it had kept)")  # fmt: skip


def cached(fn: Any, maxsize: int | None, typed: bool) -> Any:
    """:func:`reduce_cached`'s inverse (its state, the wrapper's attributes, follows)."""
    return functools.lru_cache(maxsize=maxsize, typed=typed)(fn)


_MADE = functools.singledispatch(lambda x: x)
_DISPATCHER, _DISPATCH = _MADE.__code__, _MADE.dispatch.__code__
#: What ``singledispatch`` sets on its wrapper (``update_wrapper`` adds ``__wrapped__``).
_OWN = ("register", "dispatch", "registry", "_clear_cache")


def is_dispatcher(fn: types.FunctionType) -> bool:
    """Whether ``fn`` is the function ``functools.singledispatch`` made."""
    return fn.__code__ is _DISPATCHER


def _cells(fn: Any) -> list[Any]:
    """What ``fn``'s closure cells hold (empty cells left out)."""
    out = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            out.append(cell.cell_contents)
        except ValueError:
            pass
    return out


def reduce_dispatcher(fn: types.FunctionType, named: Callable[[type], bool]) -> tuple:
    """A notebook function's ``singledispatch`` by value: the function it wraps, each
    implementation registered and its class, in order, and the attributes set on it.
    ``named(cls)``: whether a class pickles as a name found again (see the module
    docstring)."""
    state = {k: v for k, v in vars(fn).items() if k not in _OWN}
    base = state.pop("__wrapped__", None)
    dispatch = [c for c in _cells(fn) if type(c) is types.FunctionType and c.__code__ is _DISPATCH]
    registry = [c for c in _cells(dispatch[0]) if type(c) is dict] if len(dispatch) == 1 else []
    shown = vars(fn).get("registry")
    if len(registry) != 1 or type(shown) is not types.MappingProxyType:
        raise TypeError("a singledispatch function whose registry cannot be read")
    if [*map(id, gc.get_referents(shown))] != [id(registry[0])]:
        raise TypeError("a singledispatch function whose registry is not the one dispatching")
    pairs = list(registry[0].items())
    if not any(cls is object and impl is base for cls, impl in pairs):
        raise TypeError("a singledispatch function whose __wrapped__ is not its default")
    if not all(named(cls) for cls, _ in pairs):
        raise TypeError("it is registered for a class not found again by its name")
    return dispatcher, (base, [(c, f) for c, f in pairs if c is not object]), state


def dispatcher(base: Any, impls: list[tuple[type, Any]]) -> Any:
    """:func:`reduce_dispatcher`'s inverse: ``singledispatch(base)``, each implementation
    registered again."""
    made = functools.singledispatch(base)
    for cls, impl in impls:
        made.register(cls, impl)
    return made
