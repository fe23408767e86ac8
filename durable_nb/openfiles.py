"""Which objects are open files: never walked as data, never pickled (dill reopens a file
with its mode on load, and ``'w'`` truncates it).

Two checks. :func:`file_type`, for the walk (every type it meets): a subclass of io's C
base (every file of the standard library, any class deriving from ``io.IOBase``) or of
``_pyio``'s, not io's ABC, whose first look at a type (~10 µs, dozens of types a widget
notebook) asks every class registered with io's ABCs and their subclasses. And
:func:`abc_file`, for each variable saved and each type pickled as plain data: io's ABC
itself (its caches follow registrations), so that a class only registered with it
(holding a file descriptor) is refused, however late it was registered.
"""

from __future__ import annotations

import io
import sys

#: io's C base class (``_io._IOBase``): every file of the standard library derives from it.
_IO_BASE = io.IOBase.__base__


def file_type(t: type) -> bool:
    """Whether ``t``'s instances are files, by their bases (a class only registered with
    io's ABCs is data here: the pickle refuses it, :func:`abc_file`)."""
    if issubclass(t, _IO_BASE):
        return True
    pyio = sys.modules.get("_pyio")
    try:  # (an ABC's walk of registered classes may raise: then none of its)
        return pyio is not None and issubclass(t, pyio.IOBase)
    except Exception:
        return False


def abc_file(t: type) -> bool:
    """``issubclass(t, io.IOBase)``, a class only registered with io's ABCs too; True when
    the ABC's walk of what is registered raises (then never pickled as plain data)."""
    try:
        return issubclass(t, io.IOBase)
    except Exception:
        return True
