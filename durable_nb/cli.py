"""``durable-nb``: the command line. ``run`` executes a notebook headless, resumably.

Heavy imports (nbclient, nbformat) happen inside the command that needs them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

#: The kernelspec shipped in jupyter-config/ and installed with the package.
KERNEL = "python3-durable"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``durable-nb``; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="durable-nb", description="Durable notebooks: run, inspect and replay journals."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="execute a notebook headless; running it again replays completed steps",
        description="Execute NOTEBOOK in the durable kernel, cell by cell, printing a line "
        "per cell. Exit code 0 when every cell succeeded, 1 when one failed. Running "
        "it again after a failure or a kill replays the steps that completed.",
    )
    run.add_argument("notebook", type=Path, help="the .ipynb file")
    run.add_argument("--kernel", default=KERNEL, help=f"kernelspec name (default {KERNEL})")
    run.add_argument(
        "--timeout", type=float, default=None, help="seconds a cell may run (default: no limit)"
    )
    args = parser.parse_args(argv)
    return run_notebook(args.notebook, kernel=args.kernel, timeout=args.timeout)


def run_notebook(path: Path, kernel: str = KERNEL, timeout: float | None = None) -> int:
    """Execute the notebook at ``path`` headless; return 0 when every cell succeeded."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = path.expanduser().resolve()
    if not path.is_file():
        print(f"durable-nb: no notebook at {path}", file=sys.stderr)
        return 2
    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        print(
            f"durable-nb: kernel {kernel!r} is not installed; reinstall durable_nb "
            "(pip install durable_nb) or pass --kernel",
            file=sys.stderr,
        )
        return 2
    nb = nbformat.read(path, as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    client = NotebookClient(
        nb, kernel_name=kernel, timeout=timeout, allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )  # fmt: skip
    started: dict[int, float] = {}

    def on_start(cell, cell_index: int) -> None:
        started[cell_index] = time.monotonic()

    def on_execute(cell, cell_index: int) -> None:
        # The kernel keys steps by the frontend's cell id, as JupyterLab sends it.
        if cell.get("id"):
            client.kc.session.metadata["cellId"] = cell.id

    def on_done(cell, cell_index: int, execute_reply) -> None:
        status = execute_reply["content"]["status"]
        seconds = time.monotonic() - started.pop(cell_index, time.monotonic())
        _summary(cell, code.index(cell_index) + 1, len(code), status, seconds)

    client.on_cell_start = on_start
    client.on_cell_execute = on_execute
    client.on_cell_executed = on_done
    print(f"durable-nb: running {path} in kernel {kernel}")
    env = dict(os.environ, JPY_SESSION_NAME=str(path))
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        print(f"durable-nb: stopped at a failing cell.\n{_indent(str(exc), 4)}", file=sys.stderr)
        print("durable-nb: fix the cause and run again: completed steps replay.", file=sys.stderr)
        return 1
    except (CellTimeoutError, DeadKernelError) as exc:
        print(f"durable-nb: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"durable-nb: all {len(code)} code cells succeeded")
    return 0


def _summary(cell, n: int, total: int, status: str, seconds: float) -> None:
    first = next((s for s in cell.source.splitlines() if s.strip()), "")
    print(f"[{n}/{total}] {status:<5} {seconds:6.2f}s  {first[:70]}", flush=True)
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("text", "").strip():
            print(_indent(out["text"].rstrip(), 8), flush=True)


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line for line in text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
