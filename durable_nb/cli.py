"""``durable-nb``: the command line: run (resumable), ls, show, export, import, replay, trust.

Heavy imports (nbclient, nbformat, duckdb) happen inside the command that needs them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The kernelspec shipped in jupyter-config/ and installed with the package.
KERNEL = "python3-durable"

#: Exit codes: every cell succeeded / a cell (or the command) failed / bad usage or missing
#: file / the journal is held by a live kernel (another process has it open).
OK, FAILED, USAGE, HELD = 0, 1, 2, 3

#: The id and tag of the cell that ``-p`` injects (as papermill does).
INJECTED = "injected-parameters"

EXPORT_FORMAT = "durable-nb-export"

EPILOG = (
    "exit codes: 0 success; 1 a cell failed (run: run it again to resume); 2 bad usage, "
    "missing notebook or journal, damaged file; 3 the journal is held by a live kernel "
    "(stop it, or pass --copy to read a snapshot copy)"
)


class _Stop(Exception):
    """End the command with ``code`` after printing ``message`` to stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``durable-nb``; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="durable-nb",
        description="Durable notebooks: run, inspect, share and replay journals.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="execute a notebook headless; after a failure or a kill, run it again to resume",
        description="Execute NOTEBOOK in the durable kernel, printing a line per cell. After "
        "a failure or a kill, running it again restores the namespace as of the last cell "
        "that succeeded and continues from the first cell that did not (completed steps "
        "replay). Exit code 0 only when every cell succeeded.",
        epilog=EPILOG,
    )
    run.add_argument("notebook", type=Path, help="the .ipynb file")
    run.add_argument("--fresh", action="store_true", help="start over: a new epoch, all cells")
    _kernel_args(run)

    ls = sub.add_parser("ls", help="journals under a folder: notebook, last run, status")
    ls.add_argument("folder", type=Path, nargs="?", default=Path("."), help="default: here")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument("--copy", action="store_true", help="read held journals from a copy")

    show = sub.add_parser("show", help="a journal's runs, cells and steps (attempts, errors)")
    show.add_argument("notebook", type=Path, help="the notebook (or its .duckdb journal)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument("--copy", action="store_true", help="read a copy if the journal is held")

    export = sub.add_parser(
        "export", help="one signed file: the notebook, its journal and the blobs it refers to"
    )
    export.add_argument("notebook", type=Path, help="the .ipynb file")
    export.add_argument("-o", "--output", type=Path, required=True, help="the file to write")
    export.add_argument("--copy", action="store_true", help="export a copy if it is held")

    imp = sub.add_parser("import", help="unpack an exported file beside a notebook of its name")
    imp.add_argument("file", type=Path, help="a file written by durable-nb export")
    imp.add_argument("-d", "--dir", type=Path, default=Path("."), help="where (default: here)")
    imp.add_argument("--force", action="store_true", help="replace an existing journal")

    replay = sub.add_parser(
        "replay",
        help="strict replay: run the notebook answering every step from the journal",
        description="Run NOTEBOOK in the durable kernel on a copy of its journal, in strict "
        "replay: every step is answered from the journal and nothing external is called; a "
        "step the journal lacks fails its cell. The journal is not changed.",
        epilog=EPILOG,
    )
    replay.add_argument("notebook", type=Path, help="the .ipynb file")
    replay.add_argument("--copy", action="store_true", help="replay even if the journal is held")
    _kernel_args(replay)

    gc = sub.add_parser("gc", help="delete payload files no snapshot or step refers to")
    gc.add_argument("notebook", type=Path, help="the notebook (or its .duckdb journal)")

    trust = sub.add_parser(
        "trust", help="trust a journal (or an exported file): sign its content as yours"
    )
    trust.add_argument("target", type=Path, help="a notebook, its .duckdb journal, or an export")

    args = parser.parse_args(argv)
    handler = {"import": cmd_import}.get(args.command) or globals()[f"cmd_{args.command}"]
    try:
        return handler(args)
    except _Stop as stop:
        print(f"durable-nb: {stop}", file=sys.stderr, flush=True)
        return stop.code


def _kernel_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set NAME = VALUE in a cell injected after the cell tagged 'parameters' "
        "(VALUE is a Python literal when it parses as one, else a string)",
    )
    p.add_argument("-o", "--output", type=Path, help="write the executed notebook here")
    p.add_argument("--kernel", default=KERNEL, help=f"kernelspec name (default {KERNEL})")
    p.add_argument("--timeout", type=float, default=None, help="seconds a cell may run")


# -- journals: find, open, copy -------------------------------------------------------


def _journal_path(target: Path) -> Path:
    """The journal of ``target``: itself when it is a ``.duckdb`` file, else its notebook's."""
    from .journal import resolve_path

    target = target.expanduser()
    return target.absolute() if target.suffix == ".duckdb" else resolve_path(target.resolve())


def _held(journal: Path, pid: int | None, copy_hint: bool, notebook: Path | None = None) -> _Stop:
    who = f"pid {pid}" if pid else "another process"
    hint = ", or pass --copy to read a snapshot copy" if copy_hint else ""
    notebook = notebook or _notebook_of(journal)
    return _Stop(
        HELD,
        f"the journal {journal} (notebook {notebook}) is held by a live kernel, {who}; "
        f"stop that kernel (or shut its notebook down){hint}.",
    )


def _notebook_of(journal: Path) -> str:
    """Best guess of a journal's notebook without opening it: ``../<stem>.ipynb``."""
    return str(journal.parent.parent / f"{journal.stem}.ipynb")


@contextlib.contextmanager
def _open(journal: Path, copy: bool = False, copy_hint: bool = True) -> Iterator[Any]:
    """Open ``journal`` (exit 2 when missing, 3 when held unless ``copy``); close it after."""
    from .errors import JournalError, JournalLocked
    from .journal import Journal

    if not journal.is_file():
        raise _Stop(USAGE, f"no journal at {journal}: run the notebook first (durable-nb run)")
    with contextlib.ExitStack() as stack:
        try:
            j = Journal.open(journal)
        except JournalLocked as exc:
            if not copy:
                raise _held(journal, exc.pid, copy_hint) from None
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="durable-nb-")))
            try:
                j = Journal.open(_copy_journal(journal, tmp))
            except JournalError as exc2:
                raise _Stop(FAILED, f"could not read a copy of {journal}: {exc2}") from None
            j.copied_from = exc.pid
        except JournalError as exc:
            raise _Stop(USAGE, str(exc)) from None
        try:
            yield j
        finally:
            j.close()


def _copy_journal(journal: Path, dest: Path, blobs: bool = False) -> Path:
    """Copy a journal's files (DuckDB, DuckDB's WAL, our log) into ``dest``; return the copy.

    With ``blobs``, the blob folder is mirrored with symbolic links: blobs never change.
    """
    for src in (journal, Path(f"{journal}.wal"), journal.with_suffix(".wal")):
        if src.exists():
            shutil.copyfile(src, dest / src.name)
    folder = journal.with_suffix(".blobs")
    if blobs and folder.is_dir():
        mirror = dest / folder.name
        mirror.mkdir()
        for blob in folder.iterdir():
            if not blob.name.startswith("."):
                (mirror / blob.name).symlink_to(blob)
    return dest / journal.name


# -- run and replay ---------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """``durable-nb run``: execute headless, resuming after the last cell that succeeded."""
    path, nb = _load_notebook(args.notebook, args.kernel)
    params = _inject(nb, args.parameter)
    cells = _code_cells(nb)
    from .errors import JournalError, JournalLocked
    from .journal import Journal

    journal = _journal_path(path)
    start, restore_at = 0, None
    try:
        j = Journal.open(journal)
    except JournalLocked as exc:
        raise _held(journal, exc.pid, copy_hint=False, notebook=path) from None
    except JournalError as exc:  # the kernel will say so too, and run un-journaled
        print(f"durable-nb: {exc}", file=sys.stderr)
    else:
        try:
            done = [] if args.fresh else _resume_plan(j, cells)
            start = len(done)
            restore_at = done[-1]["seq"] if done else None
            # What this run starts from, so the next one knows which cells it may skip.
            plan = {"started": time.time(), "done": done, "parameters": args.parameter}
            j.write("meta", ("headless", json.dumps(plan)))
        finally:
            j.close()
    skip = {index for index, _, _ in cells[:start]}
    hidden = []
    if args.fresh:
        hidden.append("%durable fresh")
    elif restore_at is not None:
        hidden.append(f"%durable restore --at {restore_at}")
    print(f"durable-nb: running {path} in kernel {args.kernel}" + (params and f" with {params}"))
    if start:
        print(
            f"durable-nb: resuming at code cell {start + 1}: the cells before it succeeded "
            "in an earlier run; restoring the namespace as of that run"
        )
    runner = _Runner(path, nb, args.kernel, args.timeout, dict(os.environ))
    code = runner.run(hidden, skip, args.output)
    if code == FAILED and runner.started_cells:
        print(
            "durable-nb: fix the cause and run again: it resumes from the failed cell, "
            "and completed steps replay.",
            file=sys.stderr,
        )
    return code


def cmd_replay(args: argparse.Namespace) -> int:
    """``durable-nb replay``: strict replay on a private copy of the journal."""
    from . import trust

    path, nb = _load_notebook(args.notebook, args.kernel)
    journal = _journal_path(path)
    with _open(journal, copy=args.copy) as j:
        recorded = json.loads(j.meta("headless") or "{}").get("parameters") or []
        untrusted = j.untrusted()
    if untrusted:
        print(
            f"durable-nb: {untrusted} records of this journal are not signed by you: JSON "
            "results replay, pickled ones are refused; " + trust.HOW_TO_TRUST.format(target=path),
            file=sys.stderr,
        )
    params = _inject(nb, args.parameter or recorded)
    with tempfile.TemporaryDirectory(prefix="durable-nb-replay-") as tmp:
        _copy_journal(journal, Path(tmp), blobs=True)
        env = dict(os.environ, DURABLE_NB_DIR=tmp)
        print(
            f"durable-nb: replaying {path} from its journal (nothing external is called)"
            + (params and f" with {params}")
        )
        runner = _Runner(path, nb, args.kernel, args.timeout, env)
        return runner.run(["%durable replay"], set(), args.output)


def _load_notebook(given: Path, kernel: str) -> tuple[Path, Any]:
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    path = given.expanduser().resolve()
    if not path.is_file():
        raise _Stop(USAGE, f"no notebook at {path}")
    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise _Stop(
            USAGE,
            f"kernel {kernel!r} is not installed; reinstall durable_nb "
            "(pip install durable_nb) or pass --kernel",
        ) from None
    return path, nbformat.read(path, as_version=4)


def _inject(nb: Any, parameters: list[list[str]]) -> str:
    """Inject ``NAME = VALUE`` lines as papermill does; return them for the progress line."""
    import ast

    from nbformat.v4 import new_code_cell

    if not parameters:
        return ""
    nb.cells = [c for c in nb.cells if INJECTED not in c.metadata.get("tags", [])]
    lines = []
    for name, raw in parameters:
        if not name.isidentifier():
            raise _Stop(USAGE, f"-p {name}: a parameter name must be a Python identifier")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = raw
        lines.append(f"{name} = {value!r}")
    cell = new_code_cell("# Parameters\n" + "\n".join(lines), id=INJECTED)
    cell.metadata["tags"] = [INJECTED]
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    nb.cells.insert(tagged[0] + 1 if tagged else 0, cell)
    return "; ".join(lines)


def _code_cells(nb: Any) -> list[tuple[int, str, str]]:
    """``(index, cell key, source)`` of the cells a run executes (nbclient skips the rest)."""
    from .runtime import cell_key

    return [
        (i, cell_key(c.get("id"), c.source), c.source)
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and c.source.strip()
        and "skip-execution" not in c.metadata.get("tags", [])
    ]


def _resume_plan(j: Any, cells: list[tuple[int, str, str]]) -> list[dict[str, Any]]:
    """The cells the last ``durable-nb run`` left done, as the prefix of ``cells``.

    A cell is done when its last execution in that run (or a cell the run itself
    skipped as done) succeeded with the same source; the prefix ends at the first
    cell that is not, and its cell executions must increase (the restore is as of the
    last one). When every cell is done, the last run finished: start over (``[]``).
    """
    prev = json.loads(j.meta("headless") or "null")
    if not prev:
        return []
    done = {e["key"]: e for e in prev.get("done", [])}
    # The kernel of that run is the first run to open the journal after it started:
    # the CLI wrote the plan just before starting it, and a journal has one holder.
    first = j.rows(
        "SELECT run_id FROM runs WHERE started >= to_timestamp(?) ORDER BY started LIMIT 1",
        [prev["started"]],
    )
    if first:
        for key, seq, source, status in j.rows(
            "SELECT cell_key, seq, source, status FROM cells WHERE run_id = ? ORDER BY seq",
            [first[0][0]],
        ):
            if status == "ok":
                done[key] = {"key": key, "seq": seq, "hash": _hash(source)}
            else:
                done.pop(key, None)
    prefix: list[dict[str, Any]] = []
    for _, key, source in cells:
        e = done.get(key)
        if e is None or e["hash"] != _hash(source):
            break
        if prefix and e["seq"] <= prefix[-1]["seq"]:
            break
        prefix.append({"key": key, "seq": e["seq"], "hash": e["hash"]})
    return [] if len(prefix) == len(cells) else prefix


def _hash(source: str | None) -> str:
    import xxhash

    return xxhash.xxh3_64_hexdigest((source or "").encode())


class _Runner:
    """Runs a notebook's cells in one kernel (nbclient), with hidden ``%durable`` commands."""

    def __init__(self, path: Path, nb: Any, kernel: str, timeout: float | None, env: dict):
        from nbclient import NotebookClient

        self.path, self.nb, self.kernel = path, nb, kernel
        self.env = dict(env, JPY_SESSION_NAME=str(path))
        self.client = NotebookClient(
            nb,
            kernel_name=kernel,
            timeout=timeout,
            allow_errors=False,
            resources={"metadata": {"path": str(path.parent)}},
        )
        self.code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        self.started_cells = 0
        self._t0 = 0.0
        self.client.on_cell_start = self._on_start
        self.client.on_cell_execute = self._on_execute
        self.client.on_cell_executed = self._on_done

    def _on_start(self, cell: Any, cell_index: int) -> None:
        self._t0 = time.monotonic()

    def _on_execute(self, cell: Any, cell_index: int) -> None:
        # The kernel keys steps by the frontend's cell id, as JupyterLab sends it;
        # session metadata goes with every request, so a cell without one clears it.
        meta = self.client.kc.session.metadata
        if cell.get("id") and not cell.metadata.get("durable_nb_hidden"):
            meta["cellId"] = cell.id
        else:
            meta.pop("cellId", None)

    def _on_done(self, cell: Any, cell_index: int, execute_reply: Any) -> None:
        if cell.metadata.get("durable_nb_hidden"):
            return
        status = execute_reply["content"]["status"]
        n = self.code.index(cell_index) + 1
        _summary(cell, n, len(self.code), status, time.monotonic() - self._t0)

    def run(self, hidden: list[str], skip: set[int], output: Path | None) -> int:
        """Run ``hidden`` commands, then every code cell not in ``skip``; write ``output``."""
        import asyncio

        previous = _previous_outputs(output)
        try:
            code = asyncio.run(self._run(hidden, skip, previous))
        finally:
            if output is not None:
                import nbformat

                output = output.expanduser()
                output.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(self.nb, output)
        if code == OK:
            print(f"durable-nb: all {len(self.code)} code cells succeeded")
        return code

    async def _run(self, hidden: list[str], skip: set[int], previous: dict) -> int:
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

        client = self.client
        try:
            async with client.async_setup_kernel(env=self.env):
                reply = await client.async_wait_for_reply(await _maybe(client.kc.kernel_info()))
                if reply is not None and "language_info" in reply["content"]:
                    self.nb.metadata["language_info"] = reply["content"]["language_info"]
                for command in hidden:
                    await self._hidden(command)
                count = 0
                for index, cell in enumerate(list(self.nb.cells)):
                    if index in skip:
                        self._skipped(cell, index, previous)
                        count += cell.cell_type == "code"
                        continue
                    if cell.cell_type == "code":
                        self.started_cells += 1
                        count += 1
                    await client.async_execute_cell(cell, index, execution_count=count)
        except CellExecutionError as exc:
            print(
                f"durable-nb: stopped at a failing cell.\n{_indent(str(exc), 4)}", file=sys.stderr
            )
            return FAILED
        except (CellTimeoutError, DeadKernelError) as exc:
            print(f"durable-nb: {type(exc).__name__}: {exc}", file=sys.stderr)
            return FAILED
        except _Stop as stop:
            print(f"durable-nb: {stop}", file=sys.stderr)
            return stop.code
        return OK

    async def _hidden(self, command: str) -> None:
        """Run a ``%durable`` command in the kernel, outside the notebook; print what it says."""
        from nbclient.exceptions import CellExecutionError
        from nbformat.v4 import new_code_cell

        cell = new_code_cell(command)
        cell.metadata["durable_nb_hidden"] = True
        self.nb.cells.append(cell)
        try:
            await self.client.async_execute_cell(cell, len(self.nb.cells) - 1, store_history=False)
        except CellExecutionError as exc:
            ename = getattr(exc, "ename", "")
            evalue = getattr(exc, "evalue", str(exc))
            raise _Stop(
                FAILED,
                f"{command} failed in the kernel: {ename + ': ' if ename else ''}{evalue}\n"
                "durable-nb: run with --fresh to start over instead.",
            ) from None
        finally:
            self.nb.cells.pop()
        for out in cell.outputs:
            if out.get("output_type") == "stream" and out.get("text", "").strip():
                print(_indent(out["text"].rstrip(), 2), flush=True)

    def _skipped(self, cell: Any, index: int, previous: dict) -> None:
        """A cell done in an earlier run: a progress line; its outputs from the last --output."""
        old = previous.get(cell.get("id"))
        if old is not None and old.source == cell.source:
            cell.outputs = old.get("outputs", [])
            cell.execution_count = old.get("execution_count")
        if cell.cell_type == "code":
            first = next((s for s in cell.source.splitlines() if s.strip()), "")
            n = self.code.index(index) + 1
            print(f"[{n}/{len(self.code)}] done    (earlier run)  {first[:60]}", flush=True)


async def _maybe(value: Any) -> Any:
    return await value if hasattr(value, "__await__") else value


def _previous_outputs(output: Path | None) -> dict[str, Any]:
    """Cells of the notebook the last run wrote to ``output``, by cell id."""
    if output is None or not output.expanduser().is_file():
        return {}
    import nbformat

    try:
        old = nbformat.read(output.expanduser(), as_version=4)
    except Exception:
        return {}
    return {c.get("id"): c for c in old.cells if c.get("id")}


def _summary(cell: Any, n: int, total: int, status: str, seconds: float) -> None:
    first = next((s for s in cell.source.splitlines() if s.strip()), "")
    print(f"[{n}/{total}] {status:<5} {seconds:6.2f}s  {first[:70]}", flush=True)
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("text", "").strip():
            print(_indent(out["text"].rstrip(), 8), flush=True)


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line for line in text.splitlines())


# -- ls and show ------------------------------------------------------------------------


def cmd_ls(args: argparse.Namespace) -> int:
    """``durable-nb ls``: one line per journal under FOLDER."""
    folder = args.folder.expanduser().resolve()
    if not folder.is_dir():
        raise _Stop(USAGE, f"no folder at {folder}")
    rows, held = [], []
    for journal in _find_journals(folder):
        try:
            with _open(journal, copy=args.copy) as j:
                rows.append(_overview(j, journal))
        except _Stop as stop:
            if stop.code != HELD:
                rows.append({"journal": str(journal), "error": str(stop)})
                continue
            held.append(str(stop))
            rows.append(
                {
                    "journal": str(journal),
                    "notebook": _notebook_of(journal),
                    "held": True,
                    "error": str(stop),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2, default=_jsonable))
    elif not rows:
        print(f"no journals under {folder}")
    else:
        table = []
        for r in rows:
            if "error" in r:
                state = "HELD by a live kernel" if r.get("held") else "unreadable"
                table.append([_rel(r["journal"], folder), "", "", state, "", "", ""])
                continue
            last = r["last_run"] or {}
            table.append(
                [
                    _rel(r["journal"], folder),
                    _rel(r["notebook"] or "", folder),
                    _when(last.get("started")),
                    r["status"],
                    f"{r['cells_ok']}/{r['cells']}",
                    f"{r['steps_ok']}/{r['steps']}",
                    "yours" if r["trusted"] else "NOT TRUSTED",
                ]
            )
        _table(
            ["JOURNAL", "NOTEBOOK", "LAST RUN", "STATUS", "CELLS OK", "STEPS OK", "TRUST"], table
        )
    for message in held:
        print(f"durable-nb: {message}", file=sys.stderr)
    return HELD if held else OK


def _find_journals(folder: Path) -> list[Path]:
    found = set(folder.glob("*.duckdb"))
    for root, dirs, _ in os.walk(folder):
        dirs[:] = [
            d
            for d in dirs
            if d == ".durable" or not (d.startswith(".") or d in ("node_modules", "__pycache__"))
        ]
        if Path(root).name == ".durable":
            found.update(Path(root).glob("*.duckdb"))
    return sorted(found)


def _rel(path: str, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return path


def _when(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _table(header: list[str], rows: list[list[Any]]) -> None:
    cells = [header, *[[str(v) for v in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _overview(j: Any, journal: Path) -> dict[str, Any]:
    """A journal in one dict: where, whose, last run, counts (for ls and show)."""
    runs = j.rows(
        "SELECT run_id, pid, host, notebook, started, ended, status FROM runs ORDER BY started"
    )
    live = getattr(j, "copied_from", None)
    last = None
    if runs:
        run_id, pid, host, notebook, started, ended, status = runs[-1]
        if live and ended is None and pid == live:
            status = "running"
        last = {
            "run_id": run_id,
            "pid": pid,
            "host": host,
            "started": started,
            "ended": ended,
            "status": status,
        }
    # Beside its journal when it is there (an imported notebook), else where it last ran.
    notebook = _notebook_of(journal)
    if not Path(notebook).is_file():
        notebook = next((r[3] for r in reversed(runs) if r[3]), None) or notebook
    [(cells, cells_ok)] = j.rows(
        "SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM cells"
    )
    [(steps, steps_ok)] = j.rows(
        "SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM steps"
    )
    last_cell = j.rows("SELECT status FROM cells ORDER BY seq DESC LIMIT 1")
    status = last["status"] if last else "never run"
    if last_cell and last_cell[0][0] != "ok" and status != "running":
        status = f"{status}, last cell {last_cell[0][0]}"
    untrusted = j.untrusted()
    return {
        "journal": str(journal),
        "notebook": notebook,
        "last_run": last,
        "status": status,
        "cells": cells,
        "cells_ok": cells_ok,
        "steps": steps,
        "steps_ok": steps_ok,
        "trusted": untrusted == 0,
        "untrusted_records": untrusted,
        "epoch": j.epoch,
        "copy_of_live_journal": bool(live),
    }


def cmd_show(args: argparse.Namespace) -> int:
    """``durable-nb show``: runs, cells and steps of one journal."""
    journal = _journal_path(args.notebook)
    with _open(journal, copy=args.copy) as j:
        data = _overview(j, journal)
        if args.notebook.suffix != ".duckdb":
            data["notebook"] = str(args.notebook.expanduser().resolve())
        live = getattr(j, "copied_from", None)
        data["schema"] = j.meta("schema_version")
        data["headless"] = json.loads(j.meta("headless") or "null")
        data["runs"] = [
            dict(
                zip(
                    ("run_id", "pid", "host", "notebook", "started", "ended", "status"),
                    r,
                    strict=True,
                )
            )
            for r in j.rows(
                "SELECT run_id, pid, host, notebook, started, ended, status "
                "FROM runs ORDER BY started"
            )
        ]
        for r in data["runs"]:
            if live and r["ended"] is None and r["pid"] == live:
                r["status"] = "running"
        data["cells"] = [
            dict(
                zip(
                    (
                        "seq",
                        "run_id",
                        "cell_id",
                        "status",
                        "started",
                        "ended",
                        "steps_run",
                        "steps_replayed",
                        "source",
                        "error",
                    ),
                    r,
                    strict=True,
                )
            )
            for r in j.rows(
                "SELECT seq, run_id, cell_id, status, started, ended, steps_run, "
                "steps_replayed, source, error FROM cells ORDER BY seq"
            )
        ]
        data["steps"] = [
            dict(
                zip(
                    (
                        "seq",
                        "name",
                        "args",
                        "status",
                        "kind",
                        "attempts",
                        "error",
                        "attempt_errors",
                        "started",
                        "ended",
                        "epoch",
                    ),
                    r,
                    strict=True,
                )
            )
            for r in j.rows(
                "SELECT seq, name, args, status, kind, attempts, error, "
                "attempt_errors, started, ended, epoch FROM steps "
                "ORDER BY started, record_id"
            )
        ]
    for s in data["steps"]:
        try:
            s["attempt_errors"] = json.loads(s["attempt_errors"] or "[]")
        except ValueError:
            pass
    if args.json:
        print(json.dumps(data, indent=2, default=_jsonable))
        return OK
    _print_show(data)
    return OK


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _seconds(a: Any, b: Any) -> str:
    return f"{(b - a).total_seconds():.2f}s" if a and b else "-"


def _print_show(d: dict[str, Any]) -> None:
    trust = (
        "signed by you"
        if d["trusted"]
        else f"NOT signed by you ({d['untrusted_records']} records): pickled results and "
        f"snapshots are refused until you run durable-nb trust {d['notebook']}"
    )
    print(
        f"notebook  {d['notebook']}\njournal   {d['journal']} (schema {d['schema']}, "
        f"epoch {d['epoch']})\nstatus    {d['status']}\ntrust     {trust}"
    )
    if d.get("copy_of_live_journal"):
        print("note      read from a copy: a live kernel holds this journal")
    print(f"\nruns ({len(d['runs'])})")
    _table(
        ["RUN", "PID", "HOST", "STARTED", "ENDED", "STATUS"],
        [
            [r["run_id"], r["pid"], r["host"], _when(r["started"]), _when(r["ended"]), r["status"]]
            for r in d["runs"]
        ],
    )
    print(f"\ncells ({len(d['cells'])})")
    rows = []
    for c in d["cells"]:
        first = next((s for s in (c["source"] or "").splitlines() if s.strip()), "")
        rows.append(
            [
                c["seq"],
                c["status"],
                _when(c["started"]),
                _seconds(c["started"], c["ended"]),
                f"{c['steps_run'] or 0}/{c['steps_replayed'] or 0}",
                first[:50],
                (c["error"] or "")[:60],
            ]
        )
    _table(["SEQ", "STATUS", "STARTED", "TIME", "RAN/REPLAYED", "CELL", "ERROR"], rows)
    print(f"\nsteps ({len(d['steps'])})")
    rows = []
    for s in d["steps"]:
        rows.append(
            [
                s["seq"],
                s["name"],
                (s["args"] or "")[:40],
                s["status"],
                s["attempts"],
                _seconds(s["started"], s["ended"]),
                (s["error"] or "")[:60],
            ]
        )
        for n, a in enumerate(s["attempt_errors"] if isinstance(s["attempt_errors"], list) else []):
            if isinstance(a, dict) and a.get("error"):
                rows.append(["", "", "", f"  attempt {n + 1}", "", "", a["error"][:60]])
    _table(["SEQ", "STEP", "ARGS", "STATUS", "ATTEMPTS", "TIME", "ERROR"], rows)


# -- export, import, trust ----------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    """``durable-nb export``: the notebook, its journal and its blobs, in one signed file."""
    path = args.notebook.expanduser().resolve()
    if not path.is_file():
        raise _Stop(USAGE, f"no notebook at {path}")
    journal = _journal_path(path)
    with tempfile.TemporaryDirectory(prefix="durable-nb-export-") as tmp:
        with _open(journal, copy=args.copy) as j:
            blobs = sorted(j.referenced_blobs())
            j.rows("CHECKPOINT")  # rows() folds the log first: the .duckdb file is whole
            copy = _copy_journal(j.path, Path(tmp))
        blob_dir = journal.with_suffix(".blobs")
        missing = [b for b in blobs if not (blob_dir / b).is_file()]
        if missing:
            print(
                f"durable-nb: warning: {len(missing)} blob files the journal refers to are "
                f"missing from {blob_dir}",
                file=sys.stderr,
            )
        out = args.output.expanduser()
        size = _write_archive(
            out,
            path.name,
            path.read_bytes(),
            copy,
            [(b, blob_dir / b) for b in sorted(set(blobs) - set(missing))],
        )
    from . import trust

    print(
        f"durable-nb: exported {path.name} with its journal and {len(blobs)} blob files to "
        f"{out} ({size / 1e6:.1f} MB), signed by you (key {trust.key_id()})"
    )
    return OK


def _write_archive(
    out: Path, nb_name: str, nb_bytes: bytes, journal: Path, blobs: list[tuple[str, Path]]
) -> int:
    """Write the export zip: members, a manifest of their SHA-256, the signature as comment."""
    import hashlib
    import zipfile

    from . import trust

    stem = Path(nb_name).stem
    members: list[tuple[str, Path | bytes]] = [(nb_name, nb_bytes)]
    members.append((f"journal/{stem}.duckdb", journal))
    if Path(f"{journal}.wal").exists():
        members.append((f"journal/{stem}.duckdb.wal", Path(f"{journal}.wal")))
    members += [(f"journal/{stem}.blobs/{name}", p) for name, p in blobs]
    files = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, content in members:
            h = hashlib.sha256()
            if isinstance(content, bytes):
                h.update(content)
                z.writestr(name, content)
            else:
                info = zipfile.ZipInfo(name, time.localtime()[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(content, "rb") as f, z.open(info, "w", force_zip64=True) as dst:
                    while block := f.read(1 << 20):
                        h.update(block)
                        dst.write(block)
            files[name] = h.hexdigest()
        manifest = json.dumps(
            {
                "format": EXPORT_FORMAT,
                "version": 1,
                "notebook": nb_name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "host": socket.gethostname(),
                "signer": trust.key_id(),
                "files": files,
            },
            indent=1,
            sort_keys=True,
        ).encode()
        z.writestr("manifest.json", manifest)
        z.comment = json.dumps(
            {"signer": trust.key_id(), "sig": trust.sign_bytes(manifest)}
        ).encode()
    os.replace(tmp, out)
    return out.stat().st_size


_BLOB_NAME = re.compile(r"^[0-9a-f]{8,64}$")


def _read_archive(file: Path) -> tuple[Any, dict[str, Any], bool]:
    """Open an export, check every member against its manifest; return (zip, manifest, mine)."""
    import hashlib
    import zipfile

    from . import trust

    if not file.is_file():
        raise _Stop(USAGE, f"no file at {file}")
    try:
        z = zipfile.ZipFile(file)
        raw = z.read("manifest.json")
        manifest = json.loads(raw)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise _Stop(USAGE, f"{file} is not a file written by durable-nb export ({exc})") from None
    nb_name = manifest.get("notebook", "")
    stem = Path(nb_name).stem
    if manifest.get("format") != EXPORT_FORMAT or not re.fullmatch(r"[^/\\]+\.ipynb", nb_name):
        raise _Stop(USAGE, f"{file} is not a file written by durable-nb export")
    allowed = {nb_name, f"journal/{stem}.duckdb", f"journal/{stem}.duckdb.wal"}
    files = manifest.get("files", {})
    for name in z.namelist():
        if name == "manifest.json":
            continue
        blob = name.removeprefix(f"journal/{stem}.blobs/")
        ok = name in allowed or (blob != name and _BLOB_NAME.match(blob))
        if not ok or name not in files:
            raise _Stop(USAGE, f"{file} holds an unexpected member {name!r}; not importing it")
        h = hashlib.sha256()
        with z.open(name) as f:
            while block := f.read(1 << 20):
                h.update(block)
        if h.hexdigest() != files[name]:
            raise _Stop(USAGE, f"{file} is damaged: {name} does not match its manifest")
    if f"journal/{stem}.duckdb" not in z.namelist():
        raise _Stop(USAGE, f"{file} holds no journal")
    try:
        seal = json.loads(z.comment or b"{}")
    except ValueError:
        seal = {}
    mine = trust.verify("export", raw, seal.get("sig"))
    return z, manifest, mine


def cmd_import(args: argparse.Namespace) -> int:
    """``durable-nb import``: unpack an export beside a notebook of its name."""
    from . import trust

    file = args.file.expanduser().resolve()
    z, manifest, mine = _read_archive(file)
    nb_name = manifest["notebook"]
    folder = args.dir.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    notebook = folder / nb_name
    journal = _journal_path(notebook)
    nb_bytes = z.read(nb_name)
    if notebook.exists() and notebook.read_bytes() != nb_bytes and not args.force:
        raise _Stop(
            USAGE,
            f"{notebook} exists and differs from the one in {file}; move it aside or pass --force",
        )
    if journal.exists():
        from .errors import JournalError, JournalLocked
        from .journal import Journal

        try:
            Journal.open(journal).close()
        except JournalLocked as exc:
            raise _held(journal, exc.pid, copy_hint=False) from None
        except JournalError:
            pass
        if not args.force:
            raise _Stop(
                USAGE, f"{notebook} already has a journal ({journal}); pass --force to replace it"
            )
    journal.parent.mkdir(parents=True, exist_ok=True)
    for stale in (journal, Path(f"{journal}.wal"), journal.with_suffix(".wal")):
        stale.unlink(missing_ok=True)
    if journal.with_suffix(".blobs").is_dir():
        shutil.rmtree(journal.with_suffix(".blobs"))
    for name in z.namelist():
        if name == "manifest.json" or name == nb_name:
            continue
        target = journal.parent / name.removeprefix("journal/")
        target.parent.mkdir(parents=True, exist_ok=True)
        with z.open(name) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    if not notebook.exists() or notebook.read_bytes() != nb_bytes:
        notebook.write_bytes(nb_bytes)
    with _open(journal, copy_hint=False) as j:
        untrusted = j.untrusted()
    print(f"durable-nb: imported {nb_name} to {notebook} with its journal {journal}")
    if mine and not untrusted:
        print("durable-nb: it was signed by you: it replays and restores as is")
    else:
        who = "by you" if mine else f"by another user (key {manifest.get('signer', '?')})"
        print(
            f"durable-nb: it was exported {who} and is not trusted here: JSON results "
            "replay, pickled results and snapshots are refused; "
            + trust.HOW_TO_TRUST.format(target=notebook)
        )
    return OK


def cmd_gc(args: argparse.Namespace) -> int:
    """``durable-nb gc``: delete blob files that nothing in the journal refers to."""
    with _open(_journal_path(args.notebook), copy_hint=False) as j:
        count, freed = j.gc()
    print(f"durable-nb: removed {count} unreferenced payload files ({freed / 1e6:.1f} MB)")
    return OK


def cmd_trust(args: argparse.Namespace) -> int:
    """``durable-nb trust``: sign a journal's (or an export's) content as this user's."""
    import zipfile

    from . import trust

    target = args.target.expanduser().resolve()
    if target.suffix not in (".ipynb", ".duckdb") and zipfile.is_zipfile(target):
        z, manifest, _ = _read_archive(target)
        nb_name = manifest["notebook"]
        with tempfile.TemporaryDirectory(prefix="durable-nb-trust-") as tmp:
            z.extractall(tmp)
            z.close()
            journal = Path(tmp) / "journal" / f"{Path(nb_name).stem}.duckdb"
            from .journal import Journal

            j = Journal.open(journal)
            try:
                n = j.trust()
            finally:
                j.close()
            blob_dir = journal.with_suffix(".blobs")
            blobs = sorted(blob_dir.iterdir()) if blob_dir.is_dir() else []
            _write_archive(
                target,
                nb_name,
                (Path(tmp) / nb_name).read_bytes(),
                journal,
                [(b.name, b) for b in blobs],
            )
        print(
            f"durable-nb: trusted {target}: {n} records signed as yours "
            f"(key {trust.key_id()}); importing it now gives a trusted journal"
        )
        return OK
    if not target.exists():
        raise _Stop(USAGE, f"no notebook, journal or exported file at {target}")
    journal = _journal_path(target)
    with _open(journal, copy_hint=False) as j:
        n = j.trust()
    print(f"durable-nb: trusted {journal}: {n} records signed as yours (key {trust.key_id()})")
    return OK


if __name__ == "__main__":
    sys.exit(main())
