"""The ``durable-nb`` parser and dispatch: one sub-command per ``cmd_*`` function.

Each sub-parser names its function (``set_defaults(func=...)``); :func:`main` calls it
and turns a :class:`~durable_nb.errors.CommandError` (or a damaged journal's
:class:`~durable_nb.errors.JournalError`) into one line and its exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import CommandError, JournalError
from ._exit import EPILOG, USAGE
from .inspect import cmd_ls, cmd_show
from .run import KERNEL, cmd_replay, cmd_run
from .share import cmd_export, cmd_gc, cmd_import, cmd_trust


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``durable-nb``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CommandError as stop:
        print(f"durable-nb: {stop}", file=sys.stderr, flush=True)
        return stop.code
    except JournalError as exc:  # a journal damaged (or refused) where no command caught it
        print(f"durable-nb: {exc}", file=sys.stderr, flush=True)
        return USAGE


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``durable-nb`` and its sub-commands."""
    top = argparse.ArgumentParser(
        prog="durable-nb",
        description="Durable notebooks: run, inspect, share and replay journals.",
        epilog=EPILOG,
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    run.add_argument(
        "-a",
        "--answer",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=_answer,
        help="answer dnb.ask/dnb.confirm KEY (its key=, else its prompt) with VALUE "
        "(yes/no for confirm); a journaled answer replays without it",
    )
    run.set_defaults(func=cmd_run)

    ls = sub.add_parser("ls", help="journals under a folder: notebook, last run, status")
    ls.add_argument("folder", type=Path, nargs="?", default=Path("."), help="default: here")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument("--copy", action="store_true", help="read held journals from a copy")
    ls.set_defaults(func=cmd_ls)

    show = sub.add_parser("show", help="a journal's runs, cells and steps (attempts, errors)")
    show.add_argument("notebook", type=Path, help="the notebook (or its .duckdb journal)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="write a self-contained HTML report (timeline, runs, cells, steps)",
    )
    show.add_argument("--copy", action="store_true", help="read a copy if the journal is held")
    show.add_argument(
        "--outputs", action="store_true", help="also what each cell execution output (its tail)"
    )
    show.set_defaults(func=cmd_show)

    export = sub.add_parser(
        "export", help="one signed file: the notebook, its journal and the blobs it refers to"
    )
    export.add_argument("notebook", type=Path, help="the .ipynb file")
    export.add_argument("-o", "--output", type=Path, required=True, help="the file to write")
    export.add_argument("--copy", action="store_true", help="export a copy if it is held")
    export.set_defaults(func=cmd_export)

    imp = sub.add_parser("import", help="unpack an exported file beside a notebook of its name")
    imp.add_argument("file", type=Path, help="a file written by durable-nb export")
    imp.add_argument("-d", "--dir", type=Path, default=Path("."), help="where (default: here)")
    imp.add_argument("--force", action="store_true", help="replace an existing journal")
    imp.set_defaults(func=cmd_import)

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
    replay.add_argument(
        "--check",
        action="store_true",
        help="exit 1 also when a cell's outputs differ from the recorded ones",
    )
    _kernel_args(replay)
    replay.set_defaults(func=cmd_replay)

    gc = sub.add_parser("gc", help="delete payload files no snapshot or step refers to")
    gc.add_argument("notebook", type=Path, help="the notebook (or its .duckdb journal)")
    gc.set_defaults(func=cmd_gc)

    trust = sub.add_parser(
        "trust", help="trust a journal (or an exported file): sign its content as yours"
    )
    trust.add_argument("target", type=Path, help="a notebook, its .duckdb journal, or an export")
    trust.set_defaults(func=cmd_trust)
    return top


def _answer(text: str) -> str:
    """KEY=VALUE, kept whole: a key (a prompt) may itself hold '=' (the kernel matches)."""
    if "=" not in text[1:]:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return text


def _kernel_args(p: argparse.ArgumentParser) -> None:
    """Options of the commands that start a kernel (run, replay)."""
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
