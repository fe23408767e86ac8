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

#: Why a stopped value is recorded for recompute. A restore knows such a value by this
#: text's beginning in the journal (:func:`was_stopped`): never reword :data:`_MARK`.
_MARK = "its save was interrupted (Ctrl-C)"
STOPPED = f"{_MARK}: tried again when a cell uses it or rebinds it"


def was_stopped(detail: str | None) -> bool:
    """Whether a variable's recorded ``detail`` says the person stopped its save."""
    return type(detail) is str and detail.startswith(_MARK)


def stopped_names(exc: BaseException) -> tuple[str, ...]:
    """The names whose save ``exc`` (a Ctrl-C) stopped, as :meth:`Refusals.stop` marked it."""
    names = getattr(exc, "durable_nb_stopped", ())
    return names if type(names) is tuple else ()


class Refusals:
    """names -> the objects they held when pickling them was refused or stopped, and the
    outcome recorded then (returned instead of pickling them again)."""

    def __init__(self) -> None:
        self._by_names: dict[tuple[str, ...], tuple[tuple, Any, bool]] = {}

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
        """Return ``outcome`` for ``names`` while they hold ``members`` (:meth:`get`);
        ``stopped``: the person stopped the save (tried again once used: :meth:`used`)."""
        self._by_names[names] = (tuple(members), outcome, stopped)

    def stop(self, names: tuple[str, ...], members: tuple, outcome: Any,
             exc: BaseException) -> None:  # fmt: skip
        """Ctrl-C (``exc``) stopped saving ``names``: each is refused alone (which member's
        code was running is unknown; a group whose members are all held back is saved
        member by member: :meth:`stopped_alone`), and ``exc`` carries them
        (:func:`stopped_names`)."""
        exc.durable_nb_stopped = names  # type: ignore[attr-defined]
        for name, member in zip(names, members, strict=True):
            self.refuse((name,), (member,), outcome, True)

    def stopped_alone(self, name: str, value: Any) -> bool:
        """Whether the person stopped saving ``name`` while it held ``value``."""
        found = self._by_names.get((name,))
        return found is not None and found[2] and found[0][0] is value

    def used(self, names: set[str]) -> None:
        """A cell used ``names``: a stopped save of any of them is tried again."""
        if not self._by_names:
            return
        for key in [k for k, (_, _, stopped) in self._by_names.items()
                    if stopped and names.intersection(k)]:  # fmt: skip
            del self._by_names[key]

    @property
    def any_stopped(self) -> bool:
        """Whether a save the person stopped is being held back."""
        return any(stopped for _, _, stopped in self._by_names.values())

    def prune(self, ns: dict[str, Any]) -> None:
        """Let go of what names no longer hold (a big value kept alive for nothing)."""
        if not self._by_names:
            return
        gone = object()
        for key, (members, _, _) in list(self._by_names.items()):
            if any(ns.get(n, gone) is not m for n, m in zip(key, members, strict=True)):
                del self._by_names[key]
