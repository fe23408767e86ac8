"""Values a snapshot does not try to pickle again while their names hold the same objects.

Two kinds: a library's object pickle refused (a traitlets link holding widgets: dill
walks them to their comm, ~5 ms a cell for nothing; its state is the library's, not the
notebook's data); and a value whose save the person stopped (Ctrl-C in its
``__reduce__``, which may fetch, or never end), until a cell uses it again: then its
changes are saved, or the person stops it again.
"""

from __future__ import annotations

import operator
from typing import Any

#: Why a stopped value is recorded for recompute.
STOPPED = "its save was interrupted (Ctrl-C): tried again when a cell uses it or rebinds it"


class Refusals:
    """names -> the objects they held when pickling them was refused or stopped, and the
    outcome recorded then (returned instead of pickling them again)."""

    def __init__(self) -> None:
        self._by_names: dict[tuple[str, ...], tuple[tuple, Any, bool]] = {}
        #: The names whose save Ctrl-C stopped last (said by the extension, then cleared).
        self.stopped: tuple[str, ...] = ()

    def get(self, names: tuple[str, ...], members: tuple) -> Any:
        """The outcome recorded for ``names`` while they hold ``members``, else None."""
        found = self._by_names.get(names)
        if found is None:
            return None
        if len(found[0]) == len(members) and all(map(operator.is_, found[0], members)):
            return found[1]
        del self._by_names[names]
        return None

    def refuse(self, names: tuple[str, ...], members: tuple, outcome: Any,
               stopped: bool = False) -> None:  # fmt: skip
        self._by_names[names] = (tuple(members), outcome, stopped)

    def stop(self, names: tuple[str, ...], members: tuple, outcome: Any) -> None:
        """Ctrl-C stopped saving ``names``: a group's members are refused alone too (the
        next cell would try them one by one, each to be stopped again)."""
        self.stopped = names
        self.refuse(names, members, outcome, True)
        if len(names) > 1:
            for name, member in zip(names, members, strict=True):
                self.refuse((name,), (member,), outcome, True)

    def used(self, names: set[str]) -> None:
        """A cell used ``names``: a stopped save of any of them is tried again."""
        for key in [k for k, (_, _, stopped) in self._by_names.items()
                    if stopped and names.intersection(k)]:  # fmt: skip
            del self._by_names[key]

    def prune(self, ns: dict[str, Any]) -> None:
        """Let go of what names no longer hold (a big value kept alive for nothing)."""
        gone = object()
        for key, (members, _, _) in list(self._by_names.items()):
            if any(ns.get(n, gone) is not m for n, m in zip(key, members, strict=True)):
                del self._by_names[key]
