"""A runtime's journal, opened at once or in a thread: whatever reads it waits for it.

A kernel opens its journal in a thread (importing DuckDB and checking the file take
~0.15 s of CPU), so that it answers the frontend at once. Reading ``journal``,
``problem`` or ``readonly`` waits until the opening is done: a step, ``%durable`` or a
cell's snapshot sees the journal as if it had been opened before them. A first cell
that starts while the journal opens runs without waiting: the opening thread numbers
it when it is done (:meth:`Opener._opened`). What the opening had to say is shown by
the first cell (the runtime's ``_unannounced``), once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._report import remember, report
from .errors import JournalCorrupt, JournalError, JournalUnwritable

if TYPE_CHECKING:
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
    _thread: threading.Thread | None = None  # the same thread, kept: :meth:`settled`
    _held: tuple[str, ...] | list[str] = ()  # the thread's ``once`` keys (first cell shows them)
    #: Set by the opening thread once the journal is open (or set aside) and numbered.
    _done: threading.Event | None = None
    _after = False  # whether the thread goes on after it (``after``): not joined then

    def open_in_thread(self, open_: Callable[..., None], *args: Any,
                       after: Callable[[], None] | None = None) -> None:  # fmt: skip
        """Run ``open_(*args)`` in a daemon thread; :meth:`wait_open` waits for it.

        ``after()`` runs in that thread once the opening is done, waited for by nobody
        (an import a later cell will need, made while the kernel waits for the frontend).
        """
        self._held = []
        self._done = threading.Event()
        self._after = after is not None
        self._opener = threading.Thread(target=self._open_then, args=(open_, args, after),
                                        daemon=True, name="durable_nb-open")  # fmt: skip
        self._thread = self._opener
        self._opener.start()

    def _open_then(self, open_: Callable[..., None], args: tuple,
                   after: Callable[[], None] | None) -> None:  # fmt: skip
        try:
            open_(*args)
        finally:
            try:
                self._opened()
            finally:
                self._done.set()
        if after is not None:
            with contextlib.suppress(Exception):  # only ever a head start
                after()

    def _opened(self) -> None:
        """In the opening thread, once the journal is open: what waited for it (a hook)."""

    @property
    def opening(self) -> bool:
        """True while the journal is being opened in a thread."""
        done = self._done
        return self._opener is not None and done is not None and not done.is_set()

    def _in_opening_thread(self) -> bool:
        opener = self._opener
        return opener is not None and opener is threading.current_thread()

    def settled(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the opening thread to end, its ``after()`` too.

        Returns whether it ended. A kernel answers its first ``kernel_info`` request after
        this (:func:`~durable_nb._ipykernel.ready_after`), so that no cell competes with
        the opening for the interpreter.
        """
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def wait_open(self) -> None:
        """Return once the journal is open (or set aside); at once when it is already."""
        opener = self._opener
        if opener is None or opener is threading.current_thread():
            return
        self._done.wait()
        if not self._after:
            opener.join()  # a moment: it only returns
        self._opener = None
        held, self._held = self._held, ()
        for once in held:  # shown by the first cell (``_unannounced``), not here too
            remember(once)

    def _say(self, message: str, once: str | None = None) -> None:
        """``report``, except in the opening thread: there, the first cell shows it."""
        if self._in_opening_thread():
            if once is not None:
                self._held.append(once)
            return
        report(message, once=once)

    def _open(self, then: Callable[[Any], None] | None) -> None:
        """Open the journal (or step aside, saying why), then call ``then(self)``."""
        from .store import Journal  # in the opening thread: not on a kernel's main thread

        try:
            # The notebook's path, not the journal's, is what the person knows.
            self.journal = Journal.open(self.path, warn=self._warn_at_open, notebook=self.source)
        except JournalUnwritable as exc:
            self._open_read_only(exc)
        except JournalError as exc:
            self.step_aside(exc)
        except Exception as exc:  # whatever opening meets, the kernel runs on and says so
            self.step_aside(JournalCorrupt.from_cause(str(self.path), exc))
        finally:
            try:
                if then is not None:
                    then(self)
            finally:  # after its reads: their first query would fold it (a DuckDB commit)
                self._write(self._run_row(None, "running"))

    def _open_read_only(self, exc: JournalUnwritable) -> None:
        """The journal cannot be written: open it read-only, so that what it holds replays."""
        if not self.path.exists():  # nothing recorded yet: nothing to replay
            self.step_aside(exc)
            return
        from .store import Journal

        try:
            self.journal = Journal.open(self.path, warn=self._warn_at_open,
                                        notebook=self.source, read_only=True)  # fmt: skip
        except JournalError as again:  # damaged too: its own reason, else the first one
            self.step_aside(again if again.holds_steps else exc)
            return
        except Exception as again:
            self.step_aside(JournalCorrupt.from_cause(str(self.path), again))
            return
        self.replay_only(exc)

    def replay_only(self, exc: JournalError) -> None:
        """Keep the open journal for replay only (the disk refused a write); say so once."""
        self.journal.stop_writing()
        self.readonly = JournalUnwritable.read_only(str(self.path), exc, self.journal.completed)
        self.problem = self.readonly
        if self._at_start():
            self._unannounced = str(self.readonly)
        self._say(str(self.readonly), once=f"readonly:{self.path}")

    def step_aside(self, exc: JournalError) -> None:
        """Stop journaling for the rest of this process; the notebook runs on.

        A journal the disk refuses to write (full, read-only) stays open for replay:
        the steps it holds are never run again silently.
        """
        if isinstance(exc, JournalUnwritable) and self.journal is not None:
            if self.readonly is None:
                self.replay_only(exc)
            return
        self.problem = exc
        if self._at_start():
            self._unannounced = str(exc)
        self._say(str(exc), once=f"{type(exc).__name__}:{exc.path}")
        if self.journal is not None:
            self.journal.abandon()
            self.journal = None

    def _warn_at_open(self, message: str, once: str | None = None) -> None:
        """Trouble met while opening (damaged log records): shown again in the first cell."""
        self._say(message, once=once)
        if self.cell.seq == 0:
            self._unannounced = "\n".join(filter(None, [self._unannounced, message]))

    def _at_start(self) -> bool:
        """Whether no cell can show a problem met now: it is kept for the first cell."""
        return self._in_opening_thread() or (self._depth == 0 and self.cell.seq == 0)

    def announced(self) -> None:
        """The problems so far were shown where the user sees them (inside a cell)."""
        self._unannounced = None

    def announce(self) -> None:
        """Show, in the running cell, what the opening had to say (once the journal is open)."""
        self.wait_open()
        if self._unannounced:
            for line in self._unannounced.splitlines():
                report(line)
            self._unannounced = None

    #: The open journal (:class:`~durable_nb.store.Journal`), or None: not journaling.
    journal: Journal | None = SetByOpening()  # type: ignore[assignment]
    #: Why journaling stopped (or runs read-only); None when all is well.
    problem: JournalError | None = SetByOpening()  # type: ignore[assignment]
    #: Why the open journal is used read-only (a read-only file, a full disk): its steps
    #: replay, nothing new is written. None while it is written to.
    readonly: JournalUnwritable | None = SetByOpening()  # type: ignore[assignment]
