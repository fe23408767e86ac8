"""durable_nb: durable notebooks. Journaled steps, replay after a crash, suspension on failure.

Load in IPython with ``%load_ext durable_nb`` (or use the "Python 3 (durable)" kernel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _lazy
from ._version import __version__ as __version__
from .errors import (
    AnswerMissing,
    DurableError,
    JournalCorrupt,
    JournalError,
    JournalLocked,
    JournalTooNew,
    JournalUnwritable,
    ReplayMissing,
    StepFailed,
    StepTimeout,
    UntrustedJournal,
    WaitTimeout,
)

if TYPE_CHECKING:
    from .answers import ask, confirm
    from .clock import now, random, sleep, uuid4, wait_until
    from .extension import load_ipython_extension, unload_ipython_extension
    from .fanout import map
    from .retry import RetryPolicy
    from .steps import step, step_id

__all__ = [
    "AnswerMissing",
    "DurableError",
    "JournalCorrupt",
    "JournalError",
    "JournalLocked",
    "JournalTooNew",
    "JournalUnwritable",
    "ReplayMissing",
    "RetryPolicy",
    "StepFailed",
    "StepTimeout",
    "UntrustedJournal",
    "WaitTimeout",
    "ask",
    "confirm",
    "load_ipython_extension",
    "map",
    "now",
    "random",
    "sleep",
    "step",
    "step_id",
    "unload_ipython_extension",
    "uuid4",
    "wait_until",
]

#: The module of each public name imported on first use: importing a submodule (the
#: ``durable-nb`` command) then loads neither IPython nor asyncio.
_LAZY = {
    **dict.fromkeys(("now", "random", "sleep", "uuid4", "wait_until"), "clock"),
    **dict.fromkeys(("ask", "confirm"), "answers"),
    **dict.fromkeys(("load_ipython_extension", "unload_ipython_extension"), "extension"),
    "map": "fanout",
    "RetryPolicy": "retry",
    **dict.fromkeys(("step", "step_id"), "steps"),
}


__getattr__, __dir__ = _lazy.names(__name__, _LAZY, globals())
