"""The durable state of one process: its journal (or none), the running cell, counters.

A kernel gets one from the extension; a plain script gets one on its first step.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _ipykernel, codec
from ._report import note, report
from ._version import __version__
from .cells import cell_key, first_line, is_fresh
from .errors import DurableError, JournalError, describe, not_in_journal
from .fingerprints import fingerprint
from .opener import Opener
from .outputs import DEFAULT_CAP, Buffer
from .shapes import HOLE, Shape
from .store import UNSAVED, CellRow, MetaRow, Row, RunRow, StepRow, resolve_path

MISS = object()


@dataclass
class CellContext:
    """One cell execution (or a whole script) as seen by the steps it calls."""

    exec_id: str
    seq: int
    cell_key: str
    cell_id: str | None = None
    source: str = ""
    started: float = field(default_factory=time.time)
    fresh: bool = False
    ran: int = 0
    replayed: int = 0
    failed: int = 0
    unsaved: str | None = None  # why its snapshot did not complete (its end record says)
    recorded: bool = False  # its start record was written: an end record follows, always
    _occurrences: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def occurrence(self, name: str, argfp: str) -> int:
        """How many times this cell execution has already called ``name`` with these args."""
        with self._lock:
            n = self._occurrences.get((name, argfp), 0)
            self._occurrences[(name, argfp)] = n + 1
            return n

    def count(self, what: str, n: int = 1) -> None:
        """Add ``n`` to the ``ran``, ``replayed`` or ``failed`` counter."""
        with self._lock:
            setattr(self, what, getattr(self, what) + n)


class Runtime(Opener):
    """Everything durable about this process; steps reach it through :func:`current`.

    Parameters
    ----------
    source : str or None
        The notebook (or script) path the journal is named after.
    session : str or None
        Without a source: the kernel session whose journal of its own this is.
    then : callable, optional
        ``then(runtime)`` is called once the journal is open (or set aside).
    background : bool
        Open the journal (and call ``then``) in a thread: a kernel answers at once, and
        whatever needs the journal waits for it (:meth:`wait_open`).
    after : callable, optional
        With ``background``: ``after()`` runs in that thread after the opening, waited
        for by nobody (see :meth:`Opener.open_in_thread`).
    """

    def __init__(self, source: str | None, session: str | None = None,
                 then: Callable[[Runtime], None] | None = None,
                 background: bool = False,
                 after: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.source = source
        self.path = resolve_path(source, session)
        self.run_id = uuid.uuid4().hex[:16]
        self.started = time.time()
        self.enabled = True
        #: Strict replay (``%durable replay``): every step is answered from the journal.
        self.strict = False
        self._asked: dict[str, tuple[str, tuple, dict]] = {}  # strict: identity -> the call
        self._failures: dict[str, str] = {}  # strict: identity -> its recorded final error
        self.totals = {"ran": 0, "replayed": 0, "failed": 0}
        #: What a failed step does in an interactive kernel: "suspend" or "raise".
        self.on_failure = "suspend"
        #: Asks the person about a failed step (see :meth:`ask`); the extension sets it.
        self.asker: Callable[[str, str, BaseException, bool], Callable | None] | None = None
        #: Asks a question on purpose (dnb.ask/confirm); same shape as ``asker``.
        self.questioner: Callable[..., Callable | None] | None = None
        #: What the status view shows: the current step, its attempt, the last errors.
        self.activity: dict[str, Any] = {"errors": []}
        self.listeners: list[Any] = []
        self.cell = CellContext(exec_id=f"{self.run_id}:0", seq=0, cell_key="kernel")
        #: Whether the kernel hands this runtime its cells' outputs (:meth:`capture`).
        self.capturing = False
        self.outputs_cap = DEFAULT_CAP
        #: The outputs of the running cell (None between cells, or not capturing).
        self.outputs: Buffer | None = None
        self._outputs_lock = threading.Lock()  # rows of one buffer are written in order
        self._depth = 0
        self._unstarted: CellContext | None = None  # a cell whose start record is to come
        self._ending: tuple[str, str | None, int, CellContext] | None = None  # finish_cell
        self._rows: list[tuple[Any, Any]] = []  # the cell's snapshot rows (:meth:`hold`)
        self._lost: Callable[[], None] | None = None
        # A problem found while a kernel starts is shown again in the first cell's output.
        self._unannounced: str | None = None
        # A first cell that began while the journal opened is numbered (and its start
        # record written) by the opening thread once it is done (:meth:`_opened`).
        self._numbering = threading.Lock()
        self._unnumbered = False
        self._open_done = not background
        self._last_seq = 0  # the last cell's number when no journal numbers them
        if background:
            self.open_in_thread(self._open, then, after=after)
            return
        try:
            self._open(then)
        except BaseException:  # a Ctrl-C as a cell loads it: the run ends, the files close
            with contextlib.suppress(BaseException):
                self.close("failed")
            raise

    @property
    def journaling(self) -> bool:
        """True when steps are recorded and replayed."""
        return self.enabled and self.journal is not None and self.readonly is None

    @property
    def epoch(self) -> int:
        return self.journal.epoch if self.journal is not None else 0

    def write_meta(self, key: str, value: str) -> None:
        """Record a setting in the journal's ``meta`` table."""
        self._write(MetaRow(key, value))

    # A thread may step aside at any moment: each use reads ``self.journal`` once.
    def _write(self, row: Row, sync: bool = True) -> None:
        self._write_all([(row, None)], sync)

    def _write_all(self, rows: list[tuple[Any, Any]], sync: bool) -> None:
        """Write ``(row, content)`` pairs as one log record (:meth:`Journal.write_all`)."""
        journal = self.journal
        if journal is None or self.readonly is not None:
            return
        try:
            journal.write_all(rows, sync)
        except JournalError as exc:
            self.step_aside(exc)

    def _run_row(self, ended: float | None, status: str) -> RunRow:
        versions = json.dumps({"durable_nb": __version__, "python": sys.version.split()[0]})
        return RunRow(self.run_id, os.getpid(), socket.gethostname(), self.source, self.started,
                      ended, status, versions)  # fmt: skip

    # -- cells ----------------------------------------------------------------

    def begin_cell(self, cell_id: str | None, source: str) -> None:
        """A cell starts executing (nested executions belong to the outer cell).

        While the journal is still opening, the cell runs at once: it is numbered (and
        its start record written) when the opening is done. Its steps, ``%durable`` and
        its snapshot wait for the journal as before.
        """
        self._depth += 1
        if self._depth > 1:
            return
        self.finish_cell()  # the last cell's records, if its reply never came
        cell = CellContext(exec_id=f"{self.run_id}:?", seq=0, cell_key=cell_key(cell_id, source),
                           cell_id=cell_id, source=source, fresh=is_fresh(source))  # fmt: skip
        with self._numbering:
            self.cell = cell
            if self.capturing:
                self.outputs = Buffer(cell.exec_id, 0, self.outputs_cap)
            self._unnumbered = not self._open_done
            if not self._unnumbered:
                self._number()
        if not self._unnumbered:  # the opening's messages go to this cell
            self.announce()

    def _opened(self) -> None:
        """In the opening thread, once done: number the cell that began meanwhile."""
        with self._numbering:
            self._open_done = True
            if self._unnumbered:
                self._unnumbered = False
                self._number()

    def _number(self) -> None:
        """Give the running cell its number (its start record waits: :meth:`write_start`)."""
        cell = self.cell
        journal = self.journal
        cell.seq = journal.next_seq() if journal is not None else self._last_seq + 1
        cell.exec_id = f"{self.run_id}:{cell.seq}"
        self._last_seq = cell.seq
        buffer = self.outputs
        if buffer is not None:
            buffer.exec_id, buffer.seq = cell.exec_id, cell.seq
        # Its start record comes before its first other record (a step's, its variables',
        # its outputs') or with the next tick; one that ends before gets its end record only.
        self._unstarted = cell if self.enabled else None

    def write_start(self) -> None:
        """Write the running cell's start record if it is not yet (unsynced, as ever)."""
        if self._unstarted is not None:
            with self._numbering:
                cell, self._unstarted = self._unstarted, None
                if cell is not None:
                    cell.recorded = True
                    self._write(self._cell_row(None, "running", None, cell), sync=False)

    def end_cell(self, status: str, error: str | None, at_reply: bool = False) -> None:
        """The cell ended with ``status`` (ok, error, interrupted). ``at_reply``: its outputs
        and end record wait for :meth:`finish_cell` (as the kernel sends the reply, having
        published what the cell printed last: no flush waited for here)."""
        if self._depth == 0:  # the cell that loaded the extension had no begin_cell
            return
        self._depth -= 1
        if self._depth:
            return
        self.announce()  # a cell that began while the journal opened: numbered by now
        cell = self.cell
        self._ending = (status, error, threading.get_ident(), cell)
        if not at_reply:
            self.finish_cell()
        if cell.replayed and not self.strict:  # in a strict replay every step replays
            n = cell.replayed
            note(
                f"{n} step{'s' if n != 1 else ''} replayed from the journal, not run again. "
                "To run them again put %%durable fresh at the top of the cell "
                "(or %durable fresh for the whole notebook)."
            )

    def finish_cell(self, replying: bool = False) -> None:
        """Write what :meth:`end_cell` left (else the next cell's start or :meth:`close`
        does); ``replying``: as an execute reply of this thread goes out."""
        ending = self._ending
        if ending is None or (replying and ending[2] != threading.get_ident()):
            return
        self._ending, (status, error, _, cell) = None, ending
        with self._numbering:  # a tick now would write the start record first
            if self._unstarted is cell:
                self._unstarted = None  # the end record replaces it
        rows, self._rows, settle = self._rows, [], False
        lost, self._lost = self._lost, None
        with self._outputs_lock, _ipykernel.interrupts_held():  # outputs: their last row last
            if self.enabled or cell.recorded:  # (%durable off in a cell that was recorded)
                buffer = self.outputs
                if buffer is not None and self.journaling and (buffer.dirty or buffer.written):
                    rows.append((buffer.row(), None))
                # No step: synced by the next synced record or tick (docs/design.md).
                settle = bool(cell.ran or cell.failed)
                if status == "ok" and cell.unsaved:  # (schema.CellRow)
                    error = UNSAVED + cell.unsaved
                rows.append((self._cell_row(time.time(), status, error, cell), None))
            if rows:  # its variables, outputs and end: one log record
                try:
                    self._write_all(rows, sync=settle)
                except BaseException as exc:  # in the reply's send: never raised from there
                    if lost is not None:
                        lost()  # the snapshot saves the namespace whole next time
                    report(f"could not write cell {cell.seq}'s records to {self.path} "
                           f"({describe(exc)}); the cell's result stands, and the next cell "
                           "saves the whole namespace again", once=f"write:{cell.seq}")  # fmt: skip
                    error = UNSAVED + describe(exc) if status == "ok" else error
                    with contextlib.suppress(BaseException):  # alone: the cells after it chain
                        self._write(self._cell_row(time.time(), status, error, cell), settle)
        self.outputs = None

    def hold(self, rows: list[tuple[Any, Any]], lost: Callable[[], None]) -> None:
        """Keep the cell's snapshot rows (``(row, content)``) for :meth:`finish_cell`, which
        writes them with its end record as one log record (no fdatasync between; a crash
        leaves neither). ``lost()`` is called if they cannot be written. A row of an entry
        held already replaces it (a cell of another thread, nested, saved it again)."""
        held = {(type(r), r[0]): (r, c) for r, c in [*self._rows, *rows]}  # (counted once)
        self._rows, self._lost = list(held.values()), lost

    @property
    def outermost(self) -> bool:
        """True while the cell being ended is a top-level cell, not a nested run."""
        return self._depth == 1

    @contextlib.contextmanager
    def as_cell(self, key: str) -> Any:
        """Run code as if it were the cell ``key`` (so its steps replay), inside this one."""
        outer = self.cell
        self.cell = CellContext(exec_id=outer.exec_id, seq=outer.seq, cell_key=key)
        try:
            yield self.cell
        finally:
            inner, self.cell = self.cell, outer
            for what in ("ran", "replayed", "failed"):
                setattr(outer, what, getattr(outer, what) + getattr(inner, what))

    def _cell_row(self, ended: float | None, status: str, error: str | None,
                  c: CellContext) -> CellRow:  # fmt: skip
        return CellRow(c.exec_id, c.seq, self.run_id, c.cell_id, c.cell_key, c.source, c.started,
                       ended, status, error, c.ran, c.replayed)  # fmt: skip

    # -- outputs --------------------------------------------------------------

    def capture(self, msg_type: str, content: dict[str, Any]) -> None:
        """An output the kernel publishes (any thread): kept with the running cell."""
        buffer = self.outputs
        if buffer is not None:
            buffer.add(msg_type, content)
            if self.listeners:
                self.notify("output")

    def write_outputs(self) -> None:
        """Journal the running cell's outputs when some are new and none were written for a
        second (a killed cell keeps what it printed; :meth:`tick` syncs them next, once no
        lock is held); their last row goes with the cell's end record (:meth:`finish_cell`)."""
        buffer = self.outputs
        if buffer is None or not self.journaling:
            return
        with self._outputs_lock:
            if buffer.due():
                self._write(buffer.row(), sync=False)

    def tick(self) -> None:
        """Each second (a thread): a running cell's start record, new outputs, a sync."""
        self.write_start()
        self.write_outputs()
        journal = self.journal
        if journal is not None:
            if journal.unsynced:
                self.sync()
            journal.stamp()  # (a read-only one never is): a kill leaves it vouched for

    def tally(self, what: str, n: int = 1) -> None:
        """Count steps that ``ran``, ``replayed`` or ``failed``, for the cell and the run."""
        self.cell.count(what, n)
        self.totals[what] += n

    def notify(self, event: str, **details: Any) -> None:
        """A step event (attempt, backoff, suspended, done, wait): update activity and listeners."""
        a = self.activity
        if event == "attempt":
            a.update(step=details["step"], attempt=details["attempt"], state="running",
                     next_at=None)  # fmt: skip
        elif event == "backoff":
            a.update(state="waiting", next_at=time.time() + details["delay"])
            a["errors"] = [*a["errors"], f"{details['step']}: {details['error']}"][-3:]
        elif event == "suspended":
            a.update(step=details.get("step", a.get("step")), next_at=None,
                     state="suspended (waiting for you)")  # fmt: skip
        elif event == "done":  # a success clears the errors that came before it
            a.update(state="done", next_at=None, errors=[])
        elif event == "wait":  # dnb.wait_until between two checks
            left = details.get("left")
            state = "waiting until true" + (f", {left:.0f} s left" if left else "")
            a.update(step=details["step"], attempt=details["attempt"], state=state,
                     next_at=details["next_at"])  # fmt: skip
        for listener in list(self.listeners):
            try:
                listener(event, details)
            except Exception:  # a closed view must not break steps
                self.listeners.remove(listener)

    def ask(self, step: str, args: str, error: BaseException,
            asynchronous: bool = False) -> Callable | None:  # fmt: skip
        """How a failed step waits for the person's decision, or None to raise at once (no
        asker is set). The callable returns (``asynchronous``: resolves to) a decision
        with ``.action`` in {"retry", "skip", "raise"} and ``.value``."""
        if self.asker is None:
            return None
        return self.asker(step, args, error, asynchronous)

    def question(self, prompt: str, choices: list | None, yes_no: bool,
                 default: Any = None) -> Callable | None:  # fmt: skip
        """How ``dnb.ask``/``dnb.confirm`` waits for the answer (the callable returns it), or
        None when nobody can answer (no questioner is set: headless)."""
        if self.questioner is None:
            return None
        return self.questioner(prompt, choices, yes_no, default)

    # -- steps ----------------------------------------------------------------

    def identity(self, name: str, args: tuple, kwargs: dict, key: str | None) -> tuple[str, int]:
        """A step call's identity and occurrence number (see DESIGN.md, Concepts)."""
        if key is not None:
            out = fingerprint(self.epoch, "key", name, key), 0
        else:
            argfp = fingerprint(args, kwargs)
            n = self.cell.occurrence(name, argfp)
            out = fingerprint(self.epoch, self.cell.cell_key, name, argfp, n), n
        if self.strict:  # kept so that a miss can name the call's arguments
            self._asked[out[0]] = (name, args, kwargs)
        return out

    def identities(
        self, name: str, items: list[Any], keys: list[str | None] | None = None
    ) -> list[tuple[str, int]]:
        """``identity(name, (item,), {}, key)`` for each item (the calls ``fn(item)``), ~5×
        faster (``dnb.map``'s items): what all items share is hashed once (:class:`Shape`)."""
        if keys is not None or self.strict:
            keys = keys if keys is not None else [None] * len(items)
            pairs = zip(items, keys, strict=True)
            return [self.identity(name, (item,), {}, key) for item, key in pairs]
        arguments = Shape((HOLE,), {})
        call = Shape(self.epoch, self.cell.cell_key, name, HOLE, HOLE)
        occurrence = self.cell.occurrence
        out = []
        for item in items:
            argfp = arguments(item)
            n = occurrence(name, argfp)
            out.append((call(argfp, n), n))
        return out

    def replay(self, identity: str, name: str) -> Any:
        """The recorded result of ``identity`` (a fresh copy), or :data:`MISS`.

        In strict replay a miss raises :class:`ReplayMissing` and a recorded final error
        is raised again; nothing is ever run.
        """
        journal = self.journal if self.enabled else None  # %durable off: run, on purpose
        problem = self.problem if self.enabled and journal is None else None
        if problem is not None and problem.holds_steps:
            raise problem.stopped(name)  # it may have run: never run it silently again
        if journal is None or (self.cell.fresh and not self.strict):
            if self.strict:
                raise self._not_in_journal(identity, name)
            return MISS
        try:
            hit = journal.lookup(identity, self.cell.cell_key, name)
        except JournalError as exc:  # damage met mid-session: as if met at open
            self.step_aside(exc)
            if not exc.holds_steps:
                return MISS
            raise exc.stopped(name) from None
        if hit is None:
            if self.strict:
                raise self._not_in_journal(identity, name)
            return MISS
        self._asked.pop(identity, None)
        try:
            return codec.loads(*hit)
        except KeyboardInterrupt:  # Ctrl-C: the work under way stops
            raise
        except BaseException as exc:
            raise DurableError(
                f"step {name!r} completed earlier but its recorded result cannot be loaded "
                f"({describe(exc)}). Run the cells that define what it needs and "
                "re-run, or put %%durable fresh at the top of the cell to run it again."
            ) from exc

    def set_strict(self, on: bool) -> None:
        """Turn strict replay on or off (``%durable replay [off]``)."""
        if on and self.journal is None:
            raise DurableError("strict replay needs the journal, and none is open")
        self.strict = on
        self._asked.clear()
        self._failures = self.journal.failures() if on else {}

    def _not_in_journal(self, identity: str, name: str) -> Exception:
        """The error a strict replay raises for a call the journal has no result for."""
        step, args, kwargs = self._asked.pop(identity, (name, None, None))
        cell = (c := self.cell).seq, first_line(c.source)[:60], c.cell_key
        return not_in_journal(name, step, args, kwargs, self._failures.get(identity), cell,
                              self.journal is not None)  # fmt: skip

    def record(self, row: dict[str, Any], sync: bool = True) -> None:
        """Journal a finished step; ``row`` holds :class:`StepRow` fields but the cell's.
        With ``sync=False`` the row is durable only after the next :meth:`sync`."""
        if not self.journaling:
            return
        c = self.cell
        row.update(record_id=uuid.uuid4().hex, epoch=self.epoch, cell_key=c.cell_key, seq=c.seq,
                   run_id=self.run_id)  # fmt: skip
        self.write_start()
        buffer = self.outputs
        if buffer is not None and buffer.due():  # in the step's group commit
            with self._outputs_lock:
                self._write(buffer.row(), sync=False)
        # A list comprehension and a module-level import: ~2 µs less per row, which
        # counts when dnb.map journals tens of thousands of rows a second.
        self._write(StepRow._make([row.get(col) for col in StepRow._fields]), sync)

    def sync(self) -> None:
        """Make the rows recorded with ``sync=False`` durable."""
        if self.journal is not None and self.readonly is None:
            try:
                self.journal.sync()
            except JournalError as exc:
                self.step_aside(exc)

    def store(self, name: str, value: Any) -> tuple[str | None, bytes | None, str | None]:
        """A step result serialized for the journal, ``(kind, inline, blob)``; one that
        cannot be gives ``(None, None, None)`` and a warning."""
        if not self.journaling:
            return None, None, None
        try:
            kind, payload = codec.dumps(value)
        except KeyboardInterrupt:  # Ctrl-C: the work under way stops
            raise
        except BaseException as exc:  # (a __reduce__ raising SystemExit: no failure of the step)
            report(
                f"the result of step {name!r} cannot be saved ({describe(exc)}); "
                "it was returned but is not durable and the step will run again on re-run.",
                once=f"unsaved:{name}",
            )
            return None, None, None
        if (journal := self.journal) is None:  # stepped aside meanwhile (another thread)
            return None, None, None
        try:
            inline, blob = journal.put_payload(payload)
        except JournalError as exc:
            self.step_aside(exc)
            return None, None, None
        return kind, inline, blob

    # -- whole journal ----------------------------------------------------------

    def fresh(self) -> int:
        """Start a new epoch; returns its number."""
        if self.journal is None:
            raise DurableError("no journal is open, so there is nothing to start fresh from")
        if self.readonly is not None:
            raise DurableError(f"no new epoch can be recorded: {self.readonly}")
        try:
            return self.journal.new_epoch()
        except JournalError as exc:
            self.step_aside(exc)
            raise

    def close(self, status: str = "closed") -> None:
        """Record how this run ended and release the journal."""
        if self.journal is None:
            return
        self.finish_cell()
        if self._depth:  # %unload_ext ends its own cell; a shutdown cuts a running one short
            self._depth = 1
            if status == "unloaded":
                self.end_cell("ok", None)
            else:
                self.end_cell("interrupted", f"the kernel was {status} while the cell ran")
        if self._rows:  # a snapshot whose cell never ended (none is known)
            self._write_all(self._rows, sync=False)
        self._write(self._run_row(time.time(), status))
        journal, self.journal = self.journal, None
        if self.readonly is not None:  # nothing more is written: the next open folds the log
            journal.abandon()
            return
        try:
            journal.close()
        except Exception as exc:  # the log keeps the records; the next open folds them
            report(f"could not fold the journal log at exit ({exc}); it is kept for next time")


_current: Runtime | None = None
_lock = threading.Lock()


def current() -> Runtime | None:
    """The process's runtime; a plain script gets one (and a journal) on first use."""
    global _current
    if _current is not None:
        return _current
    if "IPython" in sys.modules and sys.modules["IPython"].get_ipython() is not None:
        report(
            "the durable_nb extension is not loaded, so steps are neither journaled nor "
            "replayed; run %load_ext durable_nb (or use the 'Python 3 (durable)' kernel).",
            once="not-loaded",
        )
        return None
    with _lock:
        if _current is None:
            from . import suspend  # a script on a terminal is asked on stdin

            main = getattr(sys.modules.get("__main__"), "__file__", None)
            rt = Runtime(main)
            rt.asker = functools.partial(suspend.ask, notify=rt.notify)
            rt.questioner = functools.partial(suspend.question, notify=rt.notify)
            install(rt)
            atexit.register(_current.close)
    return _current


def install(rt: Runtime | None) -> None:
    """Make ``rt`` the process's runtime (``None`` to remove it)."""
    global _current
    _current = rt
