"""``durable-nb run`` and ``durable-nb replay``: execute a notebook headless in one kernel.

nbclient drives the kernel; hidden ``%durable`` commands (restore, fresh, replay) run
before the notebook's cells and never appear in it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cells import first_line
from ..errors import CommandError
from . import plan
from ._exit import FAILED, OK, USAGE
from ._journal import held, journal_path, open_journal

if TYPE_CHECKING:
    from ..store import Journal

#: The kernelspec shipped in jupyter-config/ and installed with the package.
KERNEL = "python3-durable"

#: What jupyter_client gives the kernels it knows as IPython's (python3): history in
#: memory, no history file written and no thread saving it. It does not know ours.
HISTORY_IN_MEMORY = "--HistoryManager.hist_file=:memory:"

#: The id and tag of the cell that ``-p`` injects (as papermill does).
INJECTED = "injected-parameters"


def cmd_run(args: argparse.Namespace) -> int:
    """``durable-nb run``: execute headless, resuming after the last cell that succeeded."""
    path, nb = _load_notebook(args.notebook, args.kernel)
    params = _inject(nb, args.parameter)
    start, hidden = begin(path, nb, args.fresh, args.parameter)
    print(f"durable-nb: running {path} in kernel {args.kernel}" + (params and f" with {params}"))
    if start:
        print(
            f"durable-nb: resuming at code cell {start + 1}: the cells before it succeeded "
            "in an earlier run; restoring the namespace as of that run"
        )
    env = dict(os.environ)
    if args.answer:  # read by dnb.ask in the kernel (durable_nb.answers.ANSWERS_ENV)
        env["DURABLE_NB_ANSWERS"] = json.dumps(args.answer)
    runner = _Runner(path, nb, args.kernel, args.timeout, env)
    journaled = journaled_outputs(path, nb, start) if args.output is not None else {}
    code = runner.run(hidden, set(code_indexes(nb)[:start]), args.output, journaled)
    if code == FAILED and runner.started_cells:
        print(
            "durable-nb: fix the cause and run again: it resumes from the failed cell, "
            "and completed steps replay.",
            file=sys.stderr,
        )
    return code


def begin(path: Path, nb: Any, fresh: bool, parameters: list[list[str]]) -> tuple[int, list[str]]:
    """Where a run starts: the code cells left done, the hidden commands to run first.

    Returns how many code cells (a prefix) an earlier run left done, and the hidden
    ``%durable`` commands that bring the namespace back as of them. Records the plan in
    the journal (``meta.headless``) so the next run knows which cells it may skip;
    shared by ``durable-nb run`` and the papermill engine.
    """
    from ..errors import JournalError, JournalLocked
    from ..store import Journal

    cells = plan.code_cells(nb)
    journal = journal_path(path)
    start, restore_at = 0, None
    try:
        j = Journal.open(journal)
    except JournalLocked as exc:
        raise held(journal, exc.pid, copy_hint=False, notebook=path) from None
    except JournalError as exc:  # the kernel will say so too, and run un-journaled
        print(f"durable-nb: {exc}", file=sys.stderr)
    else:
        try:
            done = [] if fresh else _resume_plan(j, cells)
            start = len(done)
            restore_at = done[-1]["seq"] if done else None
            # What this run starts from, so the next one knows which cells it may skip.
            _write_plan(j, plan.record(done, parameters))
        finally:
            j.close()
    if fresh:
        return start, ["%durable fresh"]
    # Only ever an int (plan.parse checked it): nothing read from a journal is pasted here.
    return start, [f"%durable restore --at {int(restore_at)}"] if restore_at is not None else []


def journaled_outputs(path: Path, nb: Any, start: int) -> dict[str, Any]:
    """What the first ``start`` code cells (done by earlier runs, maybe killed ones) output,
    as the journal has it, by cell id: the cells as :func:`keep_outputs` takes them."""
    import nbformat

    from .. import outputs
    from ..errors import JournalError
    from ..store import Journal

    cells = plan.code_cells(nb)[:start]
    if not cells:
        return {}
    try:
        j = Journal.open(journal_path(path))
    except JournalError:
        return {}
    try:
        found = j.latest_outputs(c.key for c in cells)
        foreign = {key for key, row in found.items() if not j.signed(row)}
    finally:
        j.close()
    if foreign:  # their HTML would run when the notebook is opened
        from .. import trust

        print(f"durable-nb: {len(foreign)} journaled cell outputs are not signed by you: "
              "left out of the notebook written; " + trust.HOW_TO_TRUST.format(target=path),
              file=sys.stderr)  # fmt: skip
        found = {key: row for key, row in found.items() if key not in foreign}
    done = {}
    for c in cells:
        if c.key in found:
            kept = [{"metadata": {}, **o} if "data" in o else o for o in outputs.load(found[c.key])]
            node = nb.cells[c.index]
            done[node.get("id")] = nbformat.from_dict(
                {"source": node.source, "outputs": kept, "execution_count": None}
            )
    return done


def code_indexes(nb: Any) -> list[int]:
    """The notebook indexes of the cells a run executes (:func:`plan.code_cells`), in order."""
    return [cell.index for cell in plan.code_cells(nb)]


def send_cell_id(client: Any, cell: Any) -> None:
    """nbclient's ``on_cell_execute``: send the cell's id as ``cellId``, as JupyterLab does.

    The kernel keys steps by it; session metadata goes with every request, so a cell
    without one (or a hidden command) clears it.
    """
    meta = client.kc.session.metadata
    if cell.get("id") and not cell.metadata.get("durable_nb_hidden"):
        meta["cellId"] = cell.id
    else:
        meta.pop("cellId", None)


def cmd_replay(args: argparse.Namespace) -> int:
    """``durable-nb replay``: strict replay on a private copy of the journal."""
    from .. import trust

    path, nb = _load_notebook(args.notebook, args.kernel)
    journal = journal_path(path)
    with open_journal(journal, copy=args.copy) as j:
        recorded = (_read_plan(j, path) or {}).get("parameters") or []
        untrusted = j.untrusted()
        # What each cell output when it last succeeded: the replay's must be the same.
        outputs_then = j.latest_outputs(c.key for c in plan.code_cells(nb))
        outputs_then = {k: row for k, row in outputs_then.items() if j.signed(row)}
    if untrusted:
        print(
            f"durable-nb: {untrusted} records of this journal are not signed by you: JSON "
            "results replay, pickled ones are refused; " + trust.HOW_TO_TRUST.format(target=path),
            file=sys.stderr,
        )
    params = _inject(nb, args.parameter or recorded)
    with tempfile.TemporaryDirectory(prefix="durable-nb-replay-") as tmp:
        from ..store import copy_journal

        copy_journal(journal, Path(tmp), blobs=True)
        env = dict(os.environ, DURABLE_NB_DIR=tmp)
        print(
            f"durable-nb: replaying {path} from its journal (nothing external is called)"
            + (params and f" with {params}")
        )
        runner = _Runner(path, nb, args.kernel, args.timeout, env)
        runner.recorded = outputs_then
        code = runner.run(["%durable replay"], set(), args.output)
    compared = runner.compared
    differ = [str(n) for n, same in compared if same is False]
    if differ:
        print(f"durable-nb: the outputs of {len(differ)} of {len(compared)} code cells differ "
              f"from the recorded run: cells {', '.join(differ)}")  # fmt: skip
        if args.check:
            return code or FAILED
    elif compared:
        unknown = sum(same is None for _, same in compared)
        print(f"durable-nb: outputs equal the recorded ones in {len(compared) - unknown} code "
              "cells" + (f"; {unknown} had none recorded" if unknown else ""))  # fmt: skip
    return code


def _without_iri_grammars() -> None:
    """Leave jsonschema's optional IRI format checker out of this process.

    nbformat imports jsonschema, which imports ``rfc3987_syntax`` when it is installed
    (jupyter_events' ``format-nongpl`` extra brings it); that compiles ~40 Lark grammars
    at import: ~3.5 CPU-s of every ``durable-nb run``. Notebook validation checks no
    string formats, so nothing changes but the start.
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # None: its import fails at once


def _load_notebook(given: Path, kernel: str) -> tuple[Path, Any]:
    _without_iri_grammars()
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    path = given.expanduser().resolve()
    if not path.is_file():
        raise CommandError(USAGE, f"no notebook at {path}")
    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise CommandError(
            USAGE,
            f"kernel {kernel!r} is not installed; reinstall durable_nb "
            "(pip install durable_nb) or pass --kernel",
        ) from None
    nb = nbformat.read(path, as_version=4)
    # Cells without ids (nbformat < 4.5) get ids derived from place and source, in memory
    # only: the kernel keys them apart, and the file changes only if -o writes it.
    plan.identify(nb)
    return path, nb


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
            raise CommandError(USAGE, f"-p {name}: a parameter name must be a Python identifier")
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


def _write_plan(j: Journal, text: str) -> None:
    """Record the plan with this user's signature: the next run trusts only its own plans."""
    from .. import trust

    j.write_meta("headless", trust.seal(trust.plan_domain(j.id), text))


def _read_plan(j: Journal, notebook: Path | None = None) -> dict[str, Any] | None:
    """The plan the last run recorded, when this user signed it and it is well formed.

    Any other plan (foreign, unsigned, damaged, written before plans were signed) is
    ignored with one line: the run then executes every cell, which is always safe.
    """
    from .. import trust

    raw = j.meta("headless")
    if raw is None:
        return None
    text = trust.unseal(raw, trust.plan_domain(j.id))
    why = "is not signed by you"
    if text is not None:
        try:
            return plan.parse(text)
        except plan.BadPlan as exc:
            why = f"is malformed ({exc})"
    print(
        f"durable-nb: the resume plan recorded in {notebook or 'the journal'} {why}: "
        "ignoring it, every cell runs",
        file=sys.stderr,
    )
    return None


def _resume_plan(j: Journal, cells: list[plan.Cell]) -> list[plan.Done]:
    """The cells the last ``durable-nb run`` of this journal left done (:func:`plan.resume`)."""
    previous = _read_plan(j)
    if not previous:
        return []
    # The kernel of that run is the first run to open the journal after it started:
    # the CLI wrote the plan just before starting it, and a journal has one holder.
    problem = j.runs_problem()
    if problem is not None:  # which cells ran cannot be told: all run, steps replay
        print(f"durable-nb: {problem}; the resume plan is ignored, every cell runs",
              file=sys.stderr)  # fmt: skip
        return []
    first = j.first_run_since(previous["started"])
    executed = []
    if first is not None:
        executed = [  # a cell this user did not sign as it is never counts as done
            plan.Executed(c.cell_key, c.seq, c.source, c.status, c.error)
            for c in j.cells_of_run(first)
            if j.signed(c)
        ]
    try:
        return plan.resume(previous, executed, cells)
    except plan.BadPlan as exc:
        print(f"durable-nb: the journal's cells are malformed ({exc}): all run", file=sys.stderr)
        return []


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
            extra_arguments=[HISTORY_IN_MEMORY],
            resources={"metadata": {"path": str(path.parent)}},
        )
        self.code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        self.started_cells = 0
        #: Replay: each cell's recorded outputs by key; what was compared, ``(n, same)``.
        self.recorded: dict[str, Any] | None = None
        self.compared: list[tuple[int, bool | None]] = []
        self._t0 = 0.0
        self.client.on_cell_start = self._on_start
        self.client.on_cell_execute = self._on_execute
        self.client.on_cell_executed = self._on_done

    def _on_start(self, cell: Any, cell_index: int) -> None:
        self._t0 = time.monotonic()

    def _on_execute(self, cell: Any, cell_index: int) -> None:
        send_cell_id(self.client, cell)

    def _on_done(self, cell: Any, cell_index: int, execute_reply: Any) -> None:
        if cell.metadata.get("durable_nb_hidden"):
            return
        status = execute_reply["content"]["status"]
        n = self.code.index(cell_index) + 1
        _summary(cell, n, len(self.code), status, time.monotonic() - self._t0)
        if self.recorded is not None:
            self._compare(cell, n)

    def _compare(self, cell: Any, n: int) -> None:
        """Replay: say whether the cell's outputs equal those recorded when it last succeeded."""
        from .. import outputs
        from ..cells import cell_key

        row = self.recorded.get(cell_key(cell.get("id"), cell.source))
        if row is None:
            self.compared.append((n, None))
            print("        outputs: none recorded to compare with", flush=True)
            return
        diff = outputs.difference(outputs.load(row), cell.get("outputs", []))
        self.compared.append((n, diff is None))
        said = "same as recorded" if diff is None else f"DIFFER from the recorded run, {diff}"
        print(f"        outputs: {said}", flush=True)

    def run(self, hidden: list[str], skip: set[int], output: Path | None,
            journaled: dict[str, Any] | None = None) -> int:  # fmt: skip
        """Run ``hidden`` commands, then every code cell not in ``skip``; write ``output``.

        A skipped cell shows its ``journaled`` outputs, else those of the last ``output``.
        """
        import asyncio

        previous = {**previous_outputs(output), **(journaled or {})}
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
        except CommandError as stop:
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
            raise CommandError(
                FAILED,
                f"{command} failed in the kernel: {ename + ': ' if ename else ''}{evalue}\n"
                "durable-nb: run with --fresh to start over instead.",
            ) from None
        finally:
            self.nb.cells.pop()
        for text in streams(cell.outputs):
            print(_indent(text, 2), flush=True)

    def _skipped(self, cell: Any, index: int, previous: dict) -> None:
        """A cell done in an earlier run: a progress line; its outputs from the last --output."""
        keep_outputs(cell, previous)
        if cell.cell_type == "code":
            first = first_line(cell.source)
            n = self.code.index(index) + 1
            print(f"[{n}/{len(self.code)}] done    (earlier run)  {first[:60]}", flush=True)


async def _maybe(value: Any) -> Any:
    return await value if hasattr(value, "__await__") else value


def keep_outputs(cell: Any, previous: dict[str, Any]) -> None:
    """A cell skipped as done shows its outputs from the last output notebook, if unchanged."""
    old = previous.get(cell.get("id"))
    if old is not None and old.source == cell.source:
        cell.outputs = old.get("outputs", [])
        cell.execution_count = old.get("execution_count")


def previous_outputs(output: Path | None) -> dict[str, Any]:
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
    first = first_line(cell.source)
    print(f"[{n}/{total}] {status:<5} {seconds:6.2f}s  {first[:70]}", flush=True)
    for text in streams(cell.get("outputs", [])):
        print(_indent(text, 8), flush=True)


def streams(outs: list[Any]) -> list[str]:
    """The texts of a cell's stream outputs as a frontend shows them, trailing space cut.

    ipykernel's flush timer can split one ``print`` into two stream messages (two
    outputs); consecutive outputs of one stream are joined, so lines stay whole. Any other
    output between them (or the other stream) starts a new text. Blank texts are left out.
    """
    texts: list[str] = []
    last = None
    for out in outs:
        name = out.get("name") if out.get("output_type") == "stream" else None
        if name is not None and name == last:
            texts[-1] += out.get("text", "")
        elif name is not None:
            texts.append(out.get("text", ""))
        last = name
    return [t.rstrip() for t in texts if t.strip()]


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line for line in text.splitlines())
