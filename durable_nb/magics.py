"""``%durable``: look at and steer the journal from a cell.

Subcommands: status, log, outputs, sql, timeline, restore, ignore, gc, fresh, off, on, path,
replay, trust.
"""

from __future__ import annotations

import html
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser

from . import timeline
from ._report import printable, report
from .cells import first_line, label
from .errors import (
    DurableError,
    ExtraMissing,
    ForeignRun,
    JournalError,
    RestoreError,
    UntrustedJournal,
)
from .outputs import show_journaled
from .runtime import Runtime


def _parser() -> MagicArgumentParser:
    parser = MagicArgumentParser(prog="%durable", add_help=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser("status", help="journal, state, and counts of steps run/replayed/failed")
    log = sub.add_parser("log", help="one line per cell execution: sequence number first")
    log.add_argument("-n", "--limit", type=int, default=50, help="the last N (default 50)")
    outputs = sub.add_parser("outputs", help="show again what a journaled cell execution output")
    outputs.add_argument("seq", type=int, nargs="?", metavar="SEQ",
                         help="its number in %%durable log (default: the last one that did not "
                         "finish, e.g. killed, else the last)")  # fmt: skip
    sub.add_parser("sql", help="SQL QUERY: a DataFrame over runs, cells, steps, variables")
    timeline = sub.add_parser("timeline", help="a picture of every run: cells and steps over time")
    timeline.add_argument(
        "seqs",
        nargs="*",
        type=int,
        metavar="SEQ",
        help="only these cell executions (%%durable log numbers them)",
    )
    restore = sub.add_parser("restore", help="bring the namespace back (after the last cell)")
    restore.add_argument("--at", type=int, metavar="SEQ", help="as of cell execution SEQ")
    ignore = sub.add_parser("ignore", help="leave variables out of snapshots")
    ignore.add_argument("names", nargs="*", help="variable names (none: list them)")
    ignore.add_argument("-r", "--remove", action="store_true", help="take them back in")
    sub.add_parser("resume", help="restore the namespace and re-run the cell that died")
    failure = sub.add_parser("on_failure", help="what a step does when its retries run out")
    failure.add_argument(
        "mode", choices=["suspend", "raise"], help="suspend: wait for Retry/Skip/Raise"
    )
    sub.add_parser("gc", help="delete payload files no snapshot or step refers to")
    sub.add_parser("fresh", help="a new epoch: later calls stop replaying earlier results")
    sub.add_parser("off", help="stop journaling in this kernel")
    sub.add_parser("on", help="resume journaling in this kernel")
    sub.add_parser("path", help="the journal file")
    replay = sub.add_parser("replay", help="strict replay: every step from the journal, none run")
    replay.add_argument("state", nargs="?", choices=["on", "off"], default="on")
    sub.add_parser("trust", help="trust this journal's content (sign it as yours)")
    return parser


@magics_class
class DurableMagics(Magics):
    """The ``%durable`` line magic (and ``%%durable fresh``)."""

    def __init__(self, shell: Any, rt: Runtime, snapshots: Callable[[], Any]) -> None:
        super().__init__(shell)
        self.rt, self._snapshots = rt, snapshots
        self._status_view: Any = None
        self._parser: MagicArgumentParser | None = None

    @property
    def parser(self) -> MagicArgumentParser:
        """``%durable``'s arguments, built on first use (not while the kernel starts)."""
        if self._parser is None:
            self._parser = _parser()
        return self._parser

    @property
    def snapshots(self) -> Any:
        """The extension's :class:`~durable_nb.snapshot.Snapshots` (once the journal is open)."""
        return self._snapshots()

    @line_magic
    def durable(self, line: str) -> Any:
        """Inspect and steer durable_nb's journal of this notebook."""
        command, _, rest = line.strip().partition(" ")
        if command == "sql":  # SQL keeps its own quoting: not split like arguments
            return self._sql(rest.strip())
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%durable: {exc}") from None
        args = self.parser.parse_args(words)
        try:
            return getattr(self, f"_{args.command}")(args)
        except (UntrustedJournal, ForeignRun, RestoreError) as exc:  # one line, why
            raise UsageError(str(exc)) from None
        except JournalError as exc:  # damage met mid-session: journaling stops, as at open
            self.rt.step_aside(exc)
            if args.command == "status":  # the truth: not journaling, and why
                return self._status(args)
            raise UsageError(str(exc)) from None

    # ``%durable?`` asks the magic for its help (IPython's ``getdoc`` hook): the usage.
    durable.getdoc = lambda: _parser().format_help()  # type: ignore[attr-defined]

    @cell_magic("durable")
    def durable_cell(self, line: str, cell: str) -> None:
        """``%%durable fresh`` as a cell's first line runs that cell's steps again.

        Without it, re-running a cell replays the steps that already completed.
        """
        raise UsageError(
            f"unknown cell magic argument {line.strip()!r}: the only form is "
            "'%%durable fresh' on the first line of a cell"
        )

    # -- subcommands --------------------------------------------------------------

    def _journal(self) -> Any:
        if self.rt.journal is None:
            why = f" ({self.rt.problem})" if self.rt.problem else ""
            raise UsageError(f"no journal is open in this kernel{why}")
        return self.rt.journal

    def _status(self, args: Any) -> None:
        from .suspend import frontend

        if frontend() != "widget":
            print(self._status_text())
            return
        from ._ipykernel import answer_while_busy, kernel
        from .widgets import StatusView

        answer_while_busy(kernel())  # a page reloaded while a cell runs shows the view
        view = StatusView(lambda: f"<pre>{html.escape(self._status_text())}</pre>")
        if self._status_view is not None:  # one live view: the newest
            self.rt.listeners.remove(self._status_view.update)
        self._status_view = view
        self.rt.listeners.append(view.update)
        view.show()

    def _status_text(self) -> str:
        rt = self.rt
        if rt.journal is None:
            return f"durable_nb: not journaling ({rt.problem or 'no journal'})"
        state = "journaling" if rt.enabled else "off (%durable on to resume)"
        if rt.readonly is not None:  # the disk refuses writes: what it holds replays
            state = "read-only (recorded steps replay; new steps are not journaled)"
        t, a, cell = rt.totals, rt.activity, rt.cell
        lines = [
            f"durable_nb: {state}, to {rt.path}",
            f"  run       {rt.run_id} (epoch {rt.epoch}); failed steps {rt.on_failure}",
            f"  recorded  {rt.journal.seq} cell executions, {rt.journal.completed} completed "
            f"steps, {len(self.snapshots.known)} variables",
            f"  this run  {t['ran']} steps ran, {t['replayed']} replayed, {t['failed']} failed",
        ]
        if cell.seq:
            first = first_line(cell.source)
            lines.append(f"  cell      {cell.seq}: {first[:60]}")
        if a.get("step"):
            wait = ""
            if a.get("next_at"):
                wait = f", next attempt in {max(a['next_at'] - time.time(), 0):.1f} s"
            if a["state"] == "done":
                lines.append(f"  step      {a['step']}: done")
            else:
                lines.append(f"  step      {a['step']} attempt {a['attempt']}: {a['state']}{wait}")
        lines += [f"  error     {e[:100]}" for e in a["errors"]]
        running = rt.outputs
        if running is not None:
            tail = running.tail()  # what a reloaded page no longer shows
            lines += [f"  output    {line}" for line in tail.splitlines()]
        return "\n".join(lines)

    def _resume(self, args: Any) -> None:
        self._journal()
        cell = self.snapshots.interrupted()
        if cell is None:
            print("durable_nb: nothing to resume: the last run's last cell did not die")
            return
        self.snapshots.resume(cell, label(cell, self.rt.source))

    def _outputs(self, args: Any) -> None:
        journal = self._journal()
        seq = args.seq if args.seq is not None else journal.unfinished_seq(self.rt.cell.seq)
        if seq is None:
            print("durable_nb: no cell execution recorded before this one")
            return
        if not show_journaled(journal, seq, self.rt.source):
            raise UsageError(
                f"%durable outputs {seq}: no such cell execution in this journal; "
                "%durable log lists them"
            )

    def _on_failure(self, args: Any) -> None:
        self.rt.on_failure = args.mode
        print(f"durable_nb: steps whose retries run out will {args.mode}")

    def _log(self, args: Any) -> None:
        cells = self._journal().cell_log(args.limit)
        if not cells:
            print("durable_nb: no cell executions recorded yet")
        for c in cells:
            when = c.started.astimezone().strftime("%Y-%m-%d %H:%M:%S") if c.started else "-"
            ran, replayed = c.steps_run or 0, c.steps_replayed or 0
            steps = f"  [{ran} ran, {replayed} replayed]" if ran or replayed else ""
            line = f"{c.seq:>5}  {c.status!s:<11} {when}  {first_line(c.source)[:70]}{steps}"
            print(printable(line))  # journal text: no escape sequence reaches the terminal

    def _sql(self, query: str) -> Any:
        if not query:
            raise UsageError(
                "usage: %durable sql SELECT ... (tables: runs, cells, steps, variables, payloads)"
            )
        try:
            return self._journal().query(query)
        except ValueError as exc:
            raise UsageError(f"the query failed: {exc}") from None

    def _timeline(self, args: Any) -> Any:
        data = self._journal().timeline(args.seqs or None)
        # The cell running this magic has not ended: it is not drawn as interrupted.
        data = data._replace(cells=[c for c in data.cells if c.seq != self.rt.cell.seq])
        try:
            return timeline.Picture(
                timeline.figure(data, title=f"{Path(self.rt.path).stem}: every run")
            )
        except ExtraMissing as exc:
            report(str(exc))
            return None

    def _restore(self, args: Any) -> None:
        journal = self._journal()
        if args.at is not None:
            # The cell running this magic has the journal's last number, and nothing saved.
            last = journal.seq - (self.rt.cell.seq == journal.seq)
            if not 1 <= args.at <= last:
                valid = f"1 to {last}" if last else "none yet"
                raise UsageError(
                    f"%durable restore --at {args.at}: no such cell execution in this journal "
                    f"(recorded: {valid}); %durable log lists them"
                )
        print(f"durable_nb: {self.snapshots.restore(args.at)}")

    def _ignore(self, args: Any) -> None:
        if args.names:
            self.snapshots.ignore(args.names, remove=args.remove)
        ignored = ", ".join(sorted(self.snapshots.ignored)) or "none"
        print(f"durable_nb: variables left out of snapshots: {ignored}")

    def _gc(self, args: Any) -> None:
        count, freed = self._journal().gc()
        print(f"durable_nb: removed {count} unreferenced payload files ({freed / 1e6:.1f} MB)")

    def _fresh(self, args: Any) -> None:
        try:
            epoch = self.rt.fresh()
        except DurableError as exc:
            raise UsageError(str(exc)) from None
        print(f"durable_nb: epoch {epoch} started; steps run again instead of replaying")

    def _off(self, args: Any) -> None:
        self.rt.enabled = False
        print("durable_nb: journaling off in this kernel; steps run without recording")

    def _on(self, args: Any) -> None:
        self.rt.enabled = True
        where = self.rt.path if self.rt.journal is not None else f"nowhere ({self.rt.problem})"
        print(f"durable_nb: journaling on, to {where}")

    def _path(self, args: Any) -> str:
        return str(self.rt.path)

    def _replay(self, args: Any) -> None:
        try:
            self.rt.set_strict(args.state == "on")
        except DurableError as exc:
            raise UsageError(str(exc)) from None
        if self.rt.strict:
            print(
                "durable_nb: strict replay: every step is answered from the journal and "
                "nothing external is called; a step it lacks raises (%durable replay off)"
            )
        else:
            print("durable_nb: strict replay off; steps the journal lacks run again")

    def _trust(self, args: Any) -> None:
        n = self._journal().trust()
        print(f"durable_nb: trusted {self.rt.path}: {n} records signed as yours")
