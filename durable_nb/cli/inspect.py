"""``durable-nb ls`` and ``durable-nb show``: journals at a glance, and one in detail.

Both read a journal without changing it (``--copy`` reads a copy of a held one) and
print aligned tables, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .._report import printable
from ..cells import first_line
from ..errors import CommandError
from ._exit import HELD, OK, USAGE
from ._journal import journal_path, notebook_of, open_journal


def cmd_ls(args: argparse.Namespace) -> int:
    """``durable-nb ls``: one line per journal under FOLDER."""
    folder = args.folder.expanduser().resolve()
    if not folder.is_dir():
        raise CommandError(USAGE, f"no folder at {folder}")
    rows, held = [], []
    for journal in _find_journals(folder):
        try:
            with open_journal(journal, copy=args.copy) as j:
                rows.append(_overview(j, journal))
        except CommandError as stop:
            if stop.code != HELD:
                rows.append({"journal": str(journal), "error": str(stop)})
                continue
            held.append(str(stop))
            rows.append(
                {
                    "journal": str(journal),
                    "notebook": notebook_of(journal),
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
    cells = [header, *[[printable(v) for v in r] for r in rows]]
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
    notebook = notebook_of(journal)
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
    journal = journal_path(args.notebook)
    with open_journal(journal, copy=args.copy) as j:
        data = _overview(j, journal)
        if args.notebook.suffix != ".duckdb":
            data["notebook"] = str(args.notebook.expanduser().resolve())
        live = getattr(j, "copied_from", None)
        data["schema"] = j.meta("schema_version")
        data["headless"] = _plan(j.meta("headless"))
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


def _plan(raw: Any) -> Any:
    """The recorded run plan as JSON shows it (whatever a journal holds there)."""
    try:
        return json.loads(raw or "null")
    except (ValueError, TypeError, RecursionError):
        return str(raw)[:200]


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
        f"notebook  {printable(d['notebook'])}\njournal   {printable(d['journal'])} "
        f"(schema {printable(d['schema'])}, epoch {printable(d['epoch'])})\n"
        f"status    {printable(d['status'])}\ntrust     {printable(trust)}"
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
        first = first_line(c["source"])
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
