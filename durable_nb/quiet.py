"""dill kept quiet while a snapshot saves: its warnings are never the notebook's to see."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
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
    import dill._dill as dd

    real = dd.warnings
    dd.warnings = _Quiet(real)
    try:
        yield
    finally:
        dd.warnings = real
