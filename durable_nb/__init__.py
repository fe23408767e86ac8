"""durable_nb: durable notebooks. Journaled steps, replay after a crash, suspension on failure.

Load in IPython with ``%load_ext durable_nb`` (or use the "Python 3 (durable)" kernel).
"""

from ._version import __version__ as __version__
from .clock import now, random, sleep, uuid4
from .errors import (
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
)
from .extension import load_ipython_extension, unload_ipython_extension
from .fanout import map
from .steps import RetryPolicy, step, step_id

__all__ = [
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
    "load_ipython_extension",
    "map",
    "now",
    "random",
    "sleep",
    "step",
    "step_id",
    "unload_ipython_extension",
    "uuid4",
]
