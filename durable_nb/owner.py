"""Whose work a journal's runs are: a journal shared by notebooks never mixes them.

Each run records the notebook its kernel ran (``runs.notebook``, None when the kernel did
not know it). Restore and resume take only the work of the notebook asking.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import ForeignRun


def same_notebook(recorded: str | None, source: str | None) -> bool:
    """Whether a run that recorded notebook ``recorded`` is the work of ``source``'s notebook.

    The same path (symlinks resolved); a notebook moved or imported from elsewhere (its
    recorded path gone) is the same when its file name is. Kernels that did not know their
    notebook each have a journal of their own (per session), so two None are the same.
    """
    if recorded is None or source is None:
        return recorded is None and source is None
    if os.path.realpath(recorded) == os.path.realpath(source):
        return True
    return not os.path.exists(recorded) and os.path.basename(recorded) == os.path.basename(source)


def foreign_runs(journal: Any, source: str | None) -> list[str]:
    """The runs of ``journal`` that another notebook's kernel recorded."""
    return [r.run_id for r in journal.runs() if not same_notebook(r.notebook, source)]


def foreign(journal: Any, seq: int, source: str | None) -> ForeignRun | None:
    """Why cell execution ``seq`` is another notebook's work, or None when it is ours."""
    cells = journal.cells([seq])
    runs = [r for r in journal.runs() if cells and r.run_id == cells[0].run_id]
    if not runs or same_notebook(runs[0].notebook, source):
        return None
    return ForeignRun(seq, runs[0].notebook, source)


def check(journal: Any, seq: int, source: str | None) -> None:
    """Raise :class:`ForeignRun` when cell execution ``seq`` is another notebook's work."""
    refused = foreign(journal, seq, source)
    if refused is not None:
        raise refused
