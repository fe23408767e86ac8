"""The IPython extension: load/unload, the cell event hooks, and wiring to the runtime.

Unloading removes every hook, magic and input transformer that loading added.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import threading
import time
from typing import Any

from traitlets import Enum, Int
from traitlets.config import Configurable

from . import _ipykernel, codec, outputs, runtime, suspend
from ._report import report
from .cells import FRESH_LINE, label
from .errors import DurableError, JournalCorrupt, JournalError, describe
from .refusals import stopped_names
from .runtime import Runtime
from .snapshot import DEFAULT_MAX_BYTES, Snapshots

_loaded: dict[int, _Extension] = {}
#: Longest wait (s) of a starting kernel's first ``kernel_info`` reply for the journal's
#: opening (~0.1-0.25 s of CPU). The first cell's snapshot would wait for it anyway; a
#: slower one (a big log to fold) goes on in its thread, the kernel answers.
READY_WAIT = 5.0
#: The warm-up (importing dill) waits for this long (s) with no cell running: cells run
#: back to back (papermill, nbclient, Run All) would share the interpreter with it.
QUIET = 0.5
#: Why a cell's end record says it is not saved while its snapshot waits for its reply
#: (the kernel stopped before the reply went out).
LEFT_FOR_REPLY = "the kernel stopped before the cell's reply, when its namespace is saved"


class DurableNB(Configurable):
    """Settings of the extension, from Jupyter's config system.

    For example in ``ipython_kernel_config.py``: ``c.DurableNB.on_failure = "raise"``.
    """

    on_failure = Enum(
        ["suspend", "raise"],
        default_value="suspend",
        help="What a step does when its retries run out in an interactive kernel: "
        "'suspend' waits in place for Retry / Skip / Raise, 'raise' raises at once. "
        "%durable on_failure changes it for the running kernel.",
    ).tag(config=True)
    max_bytes = Int(
        DEFAULT_MAX_BYTES,
        help="A variable bigger than this (bytes) is recorded for recompute, not saved.",
    ).tag(config=True)
    outputs_max_bytes = Int(
        outputs.DEFAULT_CAP,
        min=0,
        max=outputs.MAX_CAP,
        help="Bytes of each cell execution's outputs kept in the journal: the last ones "
        "(%durable outputs says how much was dropped from the start); at most 8 MiB.",
    ).tag(config=True)


class _Extension:
    """What one load added to a shell, so that unload can take it all back."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.rt: Runtime | None = None
        self.magics: Any = None
        self.settings: DurableNB | None = None
        self.unwatch: Any = None
        self.unlean: Any = None  # gives displays their own stream flushes back
        self.unhide: Any = None  # shows durable_nb's code to the kernel's debugger again
        self.unready: Any = None  # takes back the wait of the first kernel_info reply
        self.kernel: Any = None  # the ipykernel kernel, when in one
        self.flusher: outputs.Flusher | None = None
        self._snapshots: Snapshots | None = None
        self.pending_resume: dict[str, Any] | None = None
        #: The first cell's source, when it began while the journal opened: the resume
        #: offer (if any) is made at its end, once the journal is open.
        self._offer_after: str | None = None
        self._running = False  # a cell runs (its hooks between)
        #: The cell left open for its reply (:meth:`at_reply`): source, success, thread,
        #: cell, status, error.
        self._left: tuple[str, bool, int, Any, str, str | None] | None = None
        self._settling = False  # (a cell run meanwhile, by a __reduce__, nests in it)
        self._active = time.monotonic()  # when the last cell ended (or the kernel started)

    @property
    def snapshots(self) -> Snapshots:
        """The namespace's snapshots (read from the journal once it is open)."""
        if self.rt is not None:
            self.rt.wait_open()
        return self._snapshots

    def install(self, background: bool | None = None) -> None:
        """Open the journal and add the hooks, magics and settings.

        ``background``: open the journal in a thread; by default, when a kernel starts
        with the extension (not ``%load_ext`` inside a cell).
        """
        from .magics import DurableMagics

        shell = self.shell
        self.settings = settings = DurableNB(parent=shell)
        shell.configurables.append(settings)  # so that %config DurableNB finds it
        # A frontend names the notebook; nbclient and papermill do not: then the kernel
        # journals apart (per session), never into a journal other notebooks share.
        source = os.environ.get("JPY_SESSION_NAME") or None
        session = None if source else _ipykernel.session_name()
        # Loaded as the kernel starts: the journal opens in a thread (importing DuckDB and
        # checking the file take ~0.15 s of CPU), so the kernel answers at once; the first
        # cell runs meanwhile, its snapshot waits for the journal. Loaded inside a cell
        # (%load_ext): opened here, as that cell runs.
        inside_a_cell = bool(getattr(shell, "parent_header", None))
        if background is None:
            background = not inside_a_cell and _ipykernel.kernel() is not None
        self.rt = Runtime(source, session=session and f"session-{session}",
                          then=functools.partial(self._read_journal, settings.max_bytes),
                          background=background,
                          after=functools.partial(_warm_up, source, self))  # fmt: skip
        if background:  # the first cell runs once the opening is done (or READY_WAIT)
            ready = functools.partial(self.rt.settled, READY_WAIT)
            self.unready = _ipykernel.ready_after(_ipykernel.kernel(), ready)
        self.rt.on_failure = settings.on_failure
        self.rt.outputs_cap = settings.outputs_max_bytes
        self.rt.asker = functools.partial(
            suspend.ask,
            notify=self.rt.notify,
            widget=functools.partial(_suspension_prompt, details=self._status_text),
        )
        self.rt.questioner = functools.partial(
            suspend.question, notify=self.rt.notify, widget=_question_prompt
        )
        if inside_a_cell:  # what opening met was shown in this cell
            self.rt.announced()
        runtime.install(self.rt)
        atexit.register(self._close)
        settings.observe(self._setting_changed, ["on_failure", "max_bytes", "outputs_max_bytes"])
        self._watch_outputs()
        self.magics = DurableMagics(shell, self.rt, lambda: self.snapshots)
        shell.register_magics(self.magics)
        shell.events.register("pre_run_cell", self.pre_run_cell)
        shell.events.register("post_run_cell", self.post_run_cell)
        shell.input_transformers_cleanup.append(strip_fresh_line)

    def _read_journal(self, max_bytes: int, rt: Runtime) -> None:
        """Read the snapshots and the cell the last run died in from the open journal.

        A journal that opened but cannot be read (a damaged page) is set aside: the
        extension stays loaded, un-journaled, and the first cell says why.
        """
        try:
            snapshots = Snapshots(self.shell, rt, max_bytes=max_bytes)
            self._snapshots, self.pending_resume = snapshots, snapshots.interrupted()
            snapshots.read_ahead()
        except Exception as exc:
            rt.step_aside(JournalCorrupt.from_cause(str(rt.path), exc))
            self._snapshots = Snapshots(self.shell, rt, max_bytes=max_bytes)

    def _watch_outputs(self) -> None:
        """Hand the cells' outputs to the runtime; every second, write a running cell's and
        sync what trivial cells wrote unsynced (:meth:`Runtime.tick`)."""
        self.kernel = k = _ipykernel.kernel()

        def replying() -> None:  # looked up at each reply (bench/snapshot.py times it)
            self.at_reply()

        self.unwatch = k and _ipykernel.watch_outputs(k, self.rt.capture, outputs.OUTPUT_TYPES,
                                                      replying)  # fmt: skip
        if self.unwatch is not None:
            self.rt.capturing = True
        self.unlean = k and _ipykernel.lean_flushes(k)
        self.unhide = k and _ipykernel.hide_from_debugger(k)
        self.flusher = outputs.Flusher(self.rt.tick)

    def uninstall(self, status: str = "unloaded") -> None:
        """Take back whatever :meth:`install` added, even if it stopped halfway.

        Hooks, magics and settings go first; what may wait (the flusher's tick under way,
        the journal's close) comes last, so a Ctrl-C there leaves no hook behind (and
        :func:`unload_ipython_extension` can be run again to finish).
        """
        shell = self.shell
        with contextlib.suppress(Exception):  # a cell left open for a reply: saved, ended
            self._settle(threading.get_ident())
        if self.flusher is not None:
            self.flusher.stop()
        if self.unwatch is not None:
            self.unwatch()
            self.unwatch = None  # no reply takes a snapshot a cell leaves from now on
        if self.unlean is not None:
            self.unlean()
            self.unlean = None
        if self.unhide is not None:
            self.unhide()
            self.unhide = None
        if self.unready is not None:
            self.unready()
        for event in ("pre_run_cell", "post_run_cell"):
            if getattr(self, event) in shell.events.callbacks[event]:
                shell.events.unregister(event, getattr(self, event))
        if strip_fresh_line in shell.input_transformers_cleanup:
            shell.input_transformers_cleanup.remove(strip_fresh_line)
        if self.magics is not None:
            mm = shell.magics_manager
            for kind in ("line", "cell"):
                mm.magics[kind].pop("durable", None)
            mm.registry.pop(type(self.magics).__name__, None)
        if self.settings in shell.configurables:
            shell.configurables.remove(self.settings)
        try:
            if self.flusher is not None:
                self.flusher.join()  # no tick races the close
            if self.rt is not None:
                self.rt.asker = self.rt.questioner = None
                atexit.unregister(self._close)
                self.rt.close(status)
        finally:
            runtime.install(None)

    def _setting_changed(self, change: Any) -> None:
        """``%config DurableNB.on_failure = "raise"`` applies to the running kernel."""
        if change["name"] == "on_failure":
            self.rt.on_failure = change["new"]
        elif change["name"] == "outputs_max_bytes":
            self.rt.outputs_cap = change["new"]
        else:
            self.snapshots.max_bytes = change["new"]

    # Hooks never raise: durable_nb must not be the reason a cell fails.
    def pre_run_cell(self, info: Any) -> None:
        self._running = True
        try:
            self._settle(threading.get_ident())  # the last cell's reply never went out
            self.rt.begin_cell(getattr(info, "cell_id", None), info.raw_cell or "")
            if self.rt.outermost:
                if self.rt.opening:  # known once the journal is open: at the cell's end
                    self._offer_after = info.raw_cell or ""
                else:
                    self._offer(info.raw_cell or "")
        except Exception as exc:
            _internal_error("before", exc)

    def _offer(self, source: str, done: tuple[str | None, str] | None = None) -> None:
        """Offer to resume the cell the last run died in (once, if there is one).

        ``done``: the cell (id, source) that just ran to its end, when the offer comes
        after it (the journal was still opening): the died cell itself is not offered.
        """
        if self.pending_resume is None:
            return
        cell, self.pending_resume = self.pending_resume, None
        if done is not None and (done[0] == cell["cell_id"] if done[0] and cell["cell_id"]
                                 else done[1] == cell["source"]):  # fmt: skip
            return  # the person ran it again, to its end: resuming it would repeat it
        # Another notebook's work (a shared journal) is never offered.
        if cell["own"] and not source.lstrip().startswith("%durable"):
            self._offer_resume(cell)

    def _offer_resume(self, cell: dict[str, Any]) -> None:
        """The last run died in a cell: say so, and offer to pick up where it stopped."""
        when = cell["started"].astimezone().strftime("%Y-%m-%d %H:%M")
        name = label(cell, self.rt.source)
        how = "was interrupted" if cell["status"] == "interrupted" else "died"
        what = (
            f"the last run {how} in {name}, started {when}; "
            f"{cell['steps_done']} of its steps had completed"
        )
        # An interrupt or a restart the person asked for is not an error worth showing.
        if cell["error"] and "KeyboardInterrupt" not in cell["error"]:
            what += f"; last error: {cell['error'][:120]}"
        if suspend.frontend() != "widget":
            report(f"{what}. %durable resume restores the namespace and re-runs that cell "
                   "(completed steps replay); %durable restore only restores; "
                   f"%durable outputs {cell['seq']} shows what it had output.")  # fmt: skip
            return

        from .widgets import ResumePanel

        def fresh() -> None:
            print(f"durable_nb: epoch {self.rt.fresh()} started; steps will run again")

        def restore() -> None:
            print(f"durable_nb: {self.snapshots.restore()}")

        def said(action: Any) -> Any:
            """``action``, its refusal (untrusted, another notebook's, not saved) in one line."""

            def run() -> Any:
                try:
                    return action()
                except DurableError as exc:
                    report(str(exc))

            return run

        def lost_outputs() -> None:
            if self.rt.journal is not None:
                outputs.show_journaled(self.rt.journal, cell["seq"], self.rt.source)

        ResumePanel(
            what,
            {
                "Resume cell": (True, said(lambda: self.snapshots.resume(cell, name))),
                "Restore namespace": (False, said(restore)),
                "Start fresh": (False, fresh),
                "Show lost outputs": (False, lost_outputs, False),  # the choice stays open
            },
        ).show()

    def _status_text(self) -> str:
        """What ``%durable status`` would print (the prompt's "Details")."""
        return self.magics._status_text() if self.magics is not None else ""

    def post_run_cell(self, result: Any) -> None:
        self._running, self._active = False, time.monotonic()
        try:
            with _ipykernel.interrupts_held():  # (a Ctrl-C here would leave the cell open)
                exc = result.error_before_exec or result.error_in_exec
                if exc is None:
                    status, error = "ok", None
                else:
                    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
                    error = describe(exc)
                # Capturing, the cell's outputs and end record are written as its reply is
                # sent: what it printed last is published by then (no flush waited for).
                at_reply = self.rt.capturing and _ipykernel.will_reply(self.kernel)
                # (Only the main thread's: another thread may see a request that it never
                # answers, a subshell's cells nest in the main one's.)
                if self.rt.outermost and at_reply and self.unwatch is not None \
                        and self._offer_after is None and _main_thread():  # fmt: skip
                    # Saved and ended in the kernel's pause before the reply (at_reply);
                    # until then the cell stays open (a cell begun meanwhile, in a
                    # subshell, nests in it) and its end record would say it is not saved.
                    self._left = (result.info.raw_cell or "", exc is None,
                                  threading.get_ident(), self.rt.cell, status, error)  # fmt: skip
                    self.rt.cell.unsaved = LEFT_FOR_REPLY
                    return
            try:
                if self.rt.outermost:
                    self._snapshot(result.info.raw_cell or "", exc is None)
                    if self._offer_after is not None:  # the journal is open by now
                        source, self._offer_after = self._offer_after, None
                        self.rt.announce()  # what the opening met, before the offer
                        cell_id = getattr(result.info, "cell_id", None)
                        self._offer(source, done=(cell_id, source) if exc is None else None)
            finally:
                if self.rt.capturing and not at_reply and self.rt.outermost:
                    _ipykernel.flush_streams()  # a cell a click ran: no reply to wait for
                self.rt.end_cell(status, error, at_reply=at_reply)
        except Exception as exc:
            _internal_error("after", exc)

    def at_reply(self) -> None:
        """As a cell's execute reply goes out (in ipykernel's pause before it): the cell
        left open (:meth:`post_run_cell`) is saved and ended, then its outputs and end
        record are written."""
        try:
            self._settle(threading.get_ident())
            _ipykernel.flush_streams()  # what the save said goes with the cell's outputs
            self.rt.finish_cell(replying=True)
        except Exception as exc:  # (the reply goes out regardless)
            _internal_error("after", exc)

    def _settle(self, thread: int) -> None:
        """Save and end the cell of ``thread`` left open for its reply, if one is."""
        left = self._left
        if left is None or left[2] != thread or self._settling:
            return
        source, success, _, cell, status, error = left
        self._settling = True
        try:
            # A cell another thread began meanwhile (a subshell's) nests in this one: the
            # save waits for its end, as when it ends while this one's code still runs.
            self._snapshot(source, success and self.rt.outermost and self.rt.cell is cell)
            self.rt.end_cell(status, error, at_reply=True)
            self._left = None  # (not before: a Ctrl-C in between leaves it for later)
        finally:
            self._settling = False

    def _close(self) -> None:
        """At exit: the cell whose reply never went out is saved and ended, then the
        journal closed."""
        with contextlib.suppress(BaseException):
            self._settle(threading.get_ident())
        self.rt.close()

    def _snapshot(self, source: str, success: bool) -> None:
        """Save what the cell changed (``success``; else only note the names it used)."""
        try:
            self.snapshots.after_cell(source, success)
            if success and self.rt.cell.unsaved == LEFT_FOR_REPLY:  # saved now
                self.rt.cell.unsaved = None
        except KeyboardInterrupt as exc:
            names = stopped_names(exc)
            it = "it" if len(names) == 1 else "them"
            what = (f"; {' and '.join(names)} not saved, tried again when a cell uses or "
                    f"rebinds {it}" if names else "")  # fmt: skip
            report(f"snapshot interrupted{what}; the next cell saves the rest of the namespace "
                   "again")  # fmt: skip
        except JournalError as exc:  # damage met mid-session: journaling stops, as at open
            self.rt.step_aside(exc)
        except BaseException as exc:  # (SystemExit from a __reduce__ must not end the kernel)
            report(
                f"could not snapshot the namespace into {self.rt.path} ({describe(exc)}); the "
                "cell's result stands, and the next cell saves the whole namespace again. "
                "If this repeats, the journal may be damaged: move it aside (e.g. to .bak) "
                "and restart the kernel",
                once=f"snapshot:{type(exc).__name__}",
            )


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _internal_error(when: str, exc: Exception) -> None:
    """One line (once a kernel) for a hook's own failure ``when`` (before, after) a cell."""
    report(f"internal error {when} the cell ({describe(exc)}); please report it", once=when)


def _warm_up(source: str | None, ext: _Extension) -> None:
    """After the opening, in its thread: when a snapshot will likely save notebook code
    (the notebook's file defines some, or is not known), start a thread that imports dill
    (~25 ms) and saves a function and a class once (``codec.warm_up``) at the first pause
    (:data:`QUIET`), so that the first such snapshot does neither while the person
    waits, and cells run back to back do not share the interpreter with it. Not in this
    thread: the kernel's first reply waits for this one (:meth:`Opener.settled`)."""
    if source is not None:
        try:
            with open(source, "rb") as f:
                head = f.read(8 << 20)
        except OSError:
            head = b"def "  # not readable here: as if it defined one
        if not any(word in head for word in (b"def ", b"lambda", b"class ")):
            return
    ext._active = max(ext._active, time.monotonic())  # the kernel is ready from now
    threading.Thread(target=_warm_up_at_a_pause, args=(ext,), daemon=True,
                     name="durable_nb-warm-up").start()  # fmt: skip


def _warm_up_at_a_pause(ext: _Extension) -> None:
    """:func:`_warm_up`'s thread; unloaded (or un-journaled) before a pause, it ends."""
    while ext._running or time.monotonic() - ext._active < QUIET:
        rt = ext.rt
        if rt is not None and rt.journal is None:
            return
        time.sleep(QUIET / 4)
    with contextlib.suppress(Exception):  # only ever a head start
        codec.warm_up()  # imports dill (what the C pickler cannot save: an Enum class)


def _suspension_prompt(step: str, args: str, error: BaseException, details: Any = None) -> Any:
    """The Retry / Skip / Raise widget (ipywidgets is imported only when one is needed)."""
    from .widgets import SuspensionPrompt

    return SuspensionPrompt(step, args, error, details=details)


def _question_prompt(prompt: str, choices: list | None, yes_no: bool, default: Any) -> Any:
    """The widget of ``dnb.ask``/``dnb.confirm``."""
    from .widgets import QuestionPrompt

    return QuestionPrompt(prompt, choices, yes_no, default)


def strip_fresh_line(lines: list[str]) -> list[str]:
    """Input transformer: a first line ``%%durable fresh`` only marks the cell.

    The cell runs as ordinary code (so ``await`` and display work as usual); the
    line is blanked rather than removed so tracebacks keep their line numbers.
    """
    if lines and FRESH_LINE.match(lines[0]):
        return ["\n", *lines[1:]]
    return lines


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext durable_nb``: open the journal and start recording."""
    if id(ipython) in _loaded:
        return
    ext = _Extension(ipython)
    try:
        ext.install()
    except Exception as exc:  # all or nothing: never half a durable kernel
        ext.uninstall("failed")
        report(f"could not load ({describe(exc)}); the kernel runs un-journaled")
        return
    except BaseException:  # Ctrl-C mid-load: nothing is left installed (helper-104 G3)
        with contextlib.suppress(BaseException):
            ext.uninstall("failed")
        raise
    _loaded[id(ipython)] = ext


def unload_ipython_extension(ipython: Any) -> None:
    """Called by ``%unload_ext durable_nb``: stop recording and remove every hook."""
    ext = _loaded.pop(id(ipython), None)
    if ext is not None:
        try:
            ext.uninstall()
        except BaseException:  # Ctrl-C while the journal closed: %unload_ext again finishes
            _loaded[id(ipython)] = ext
            raise
