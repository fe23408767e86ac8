"""``%durable``: look at and steer the journal from a cell.

Subcommands: status, log, sql, fresh, off, on, path (``%durable?`` shows them).
"""

from __future__ import annotations

from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from .errors import DurableError
from .runtime import Runtime

COMMANDS = ("status", "log", "sql", "fresh", "off", "on", "path")


@magics_class
class DurableMagics(Magics):
    """The ``%durable`` line magic (and ``%%durable fresh``)."""

    def __init__(self, shell: Any, rt: Runtime) -> None:
        super().__init__(shell)
        self.rt = rt

    @magic_arguments.magic_arguments()
    @magic_arguments.argument(
        "command",
        choices=COMMANDS,
        help="status: journal and counters; log: one line per cell execution; "
        "sql QUERY: a DataFrame over the tables runs, cells, steps, meta; "
        "fresh: later calls stop replaying earlier results (a new epoch); "
        "off / on: stop / resume journaling in this kernel; path: the journal file",
    )
    @magic_arguments.argument("query", nargs="*", help="the SQL query, for sql")
    @magic_arguments.argument(
        "-n", "--limit", type=int, default=50, help="log: show the last N executions (default 50)"
    )
    @line_magic
    def durable(self, line: str) -> Any:
        """Inspect and steer durable_nb's journal of this notebook."""
        command, _, rest = line.strip().partition(" ")
        if command == "sql":  # SQL keeps its own quoting: not split like arguments
            return self._sql(rest.strip())
        args = magic_arguments.parse_argstring(self.durable, line)
        if args.query:
            raise UsageError(f"%durable {args.command} takes no argument {args.query[0]!r}")
        return getattr(self, f"_{args.command}")(args)

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
        rt = self.rt
        if rt.journal is None:
            print(f"durable_nb: not journaling ({rt.problem or 'no journal'})")
            return
        state = "journaling" if rt.enabled else "off (%durable on to resume)"
        t = rt.totals
        (cells,) = rt.journal.rows("SELECT count(*) FROM cells")[0]
        print(
            f"durable_nb: {state}\n"
            f"  journal   {rt.path}\n"
            f"  run       {rt.run_id} (epoch {rt.epoch})\n"
            f"  recorded  {cells} cell executions, {len(rt.journal)} completed steps\n"
            f"  this run  {t['ran']} steps ran, {t['replayed']} replayed, {t['failed']} failed"
        )

    def _log(self, args: Any) -> None:
        rows = self._journal().rows(
            "SELECT seq, status, started, source, steps_run, steps_replayed FROM cells "
            "ORDER BY seq DESC LIMIT ?",
            [max(args.limit, 0)],
        )
        if not rows:
            print("durable_nb: no cell executions recorded yet")
        for seq, status, started, source, ran, replayed in reversed(rows):
            when = started.astimezone().strftime("%Y-%m-%d %H:%M:%S") if started else "-"
            first = next((s for s in (source or "").splitlines() if s.strip()), "")
            steps = f"  [{ran or 0} ran, {replayed or 0} replayed]" if ran or replayed else ""
            print(f"{seq:>5}  {status:<11} {when}  {first[:70]}{steps}")

    def _sql(self, query: str) -> Any:
        if not query:
            raise UsageError("usage: %durable sql SELECT ... (tables: runs, cells, steps, meta)")
        try:
            return self._journal().query(query)
        except ValueError as exc:
            raise UsageError(f"the query failed: {exc}") from None

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
        where = self.rt.path if self.rt.journal else f"nowhere ({self.rt.problem})"
        print(f"durable_nb: journaling on, to {where}")

    def _path(self, args: Any) -> str:
        return str(self.rt.path)
