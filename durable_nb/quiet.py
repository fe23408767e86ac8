"""dill kept quiet while a snapshot saves: its warnings are never the notebook's to see."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator
from typing import Any


class _Quiet:
    """Stands in for the ``warnings`` module inside dill while a snapshot is saved.

    dill warns (``PicklingWarning``) about classes it cannot locate, and enters
    ``warnings.catch_warnings()`` for every code object, which makes Python show every
    "once" warning of the notebook again: a snapshot must not be seen.
    """

    def __init__(self, real: types.ModuleType) -> None:
        self.real = real

    def warn(self, *args: Any, **kwargs: Any) -> None:
        pass

    def catch_warnings(self, *args: Any, **kwargs: Any) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def filterwarnings(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@contextlib.contextmanager
def dill_quiet() -> Iterator[None]:
    """dill quiet, and keeping a class's whole namespace (:func:`_whole`)."""
    import dill._dill as dd

    real, typedict = dd.warnings, getattr(dd, "_get_typedict_type", None)
    dd.warnings = _Quiet(real)
    if typedict is not None:
        dd._get_typedict_type = _whole(typedict)
    try:
        yield
    finally:
        dd.warnings = real
        if typedict is not None:
            dd._get_typedict_type = typedict


def _whole(typedict: Callable[..., tuple]) -> Callable[..., tuple]:
    """dill's reading of a class's namespace, with what it drops for being its base's very
    object (``describe = Shape.describe`` in a subclass) put back: left out, the subclass
    inherits it, and a later change to the base shows through (helper-111 F5). Names pickle
    by name where bound (codec), so identity holds."""

    def read(cls: type, clsdict: dict, *args: Any) -> tuple:
        whole = dict(clsdict)
        clsdict, *rest = typedict(cls, clsdict, *args)
        for name, value in whole.items():
            if name not in clsdict and name not in ("__dict__", "__weakref__"):
                clsdict[name] = value
        return (clsdict, *rest)

    return read
