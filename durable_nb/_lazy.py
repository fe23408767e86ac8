"""A package's names imported on first use (PEP 562); imports nothing of the package."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def names(
    package: str, lazy: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose name ``n`` lives in its
    submodule ``lazy[n]``, imported when ``n`` is first read (then kept in ``namespace``)."""

    def __getattr__(name: str) -> Any:
        if name not in lazy:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{lazy[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *lazy})

    return __getattr__, __dir__
