"""``durable-nb``: the command line (run, replay, ls, show, export, import, trust, gc).

``main`` is the console script; each command lives in its own module and imports its
heavy dependencies (nbclient, nbformat, the store) only when it runs.
"""

from __future__ import annotations

from .parser import main

__all__ = ["main"]
