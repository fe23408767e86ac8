"""A runtime's journal, opened at once or in a thread: whatever reads it waits for it.

A kernel opens its journal in a thread (importing DuckDB and checking the file take
~0.2 s of CPU), so that it answers the frontend at once. Reading ``journal``,
``problem`` or ``readonly`` waits until the opening is done: the first cell, a step or
``%durable`` sees the journal as if it had been opened before them. What the opening
had to say is shown by the first cell (the runtime's ``_unannounced``), once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._report import remember, report

if TYPE_CHECKING:
    from .errors import JournalError, JournalUnwritable
    from .store import Journal


class SetByOpening:
    """An attribute the opening sets: reading it waits for the opening to be done.

    ~0.1 µs a read, as a property; the opening thread itself reads it as it is.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj: Opener | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        if obj._opener is not None:
            obj.wait_open()
        return getattr(obj, self.slot, None)

    def __set__(self, obj: Opener, value: Any) -> None:
        setattr(obj, self.slot, value)


class Opener:
    """Mixin of :class:`~durable_nb.runtime.Runtime`: the journal and how its opening went."""

    #: The thread opening the journal; None once that is done (or when opened at once).
    _opener: threading.Thread | None = None
    _held: tuple[str, ...] | list[str] = ()  # the thread's ``once`` keys (first cell shows them)

    def open_in_thread(self, open_: Callable[..., None], *args: Any) -> None:
        """Run ``open_(*args)`` in a daemon thread; :meth:`wait_open` waits for it."""
        self._held = []
        self._opener = threading.Thread(target=open_, args=args, daemon=True,
                                        name="durable_nb-open")  # fmt: skip
        self._opener.start()

    def wait_open(self) -> None:
        """Return once the journal is open (or set aside); at once when it is already."""
        opener = self._opener
        if opener is None or opener is threading.current_thread():
            return
        opener.join()
        self._opener = None
        held, self._held = self._held, ()
        for once in held:  # shown by the first cell (``_unannounced``), not here too
            remember(once)

    def _say(self, message: str, once: str | None = None) -> None:
        """``report``, except in the opening thread: there, the first cell shows it."""
        if self._opener is not None and self._opener is threading.current_thread():
            if once is not None:
                self._held.append(once)
            return
        report(message, once=once)

    #: The open journal (:class:`~durable_nb.store.Journal`), or None: not journaling.
    journal: Journal | None = SetByOpening()  # type: ignore[assignment]
    #: Why journaling stopped (or runs read-only); None when all is well.
    problem: JournalError | None = SetByOpening()  # type: ignore[assignment]
    #: Why the open journal is used read-only (a read-only file, a full disk): its steps
    #: replay, nothing new is written. None while it is written to.
    readonly: JournalUnwritable | None = SetByOpening()  # type: ignore[assignment]
