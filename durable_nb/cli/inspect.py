"""``durable-nb ls`` and ``durable-nb show``: journals at a glance, and one in detail.

Both read a journal without changing it (``--copy`` reads a copy of a held one) and
print aligned tables, or JSON with ``--json`` (``show --html FILE``: a report page).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._report import printable
from ..cells import first_line
from ..errors import CommandError
from ._exit import HELD, OK, USAGE
from ._journal import journal_path, notebook_of, open_journal

if TYPE_CHECKING:
    from ..store import Journal, RunRow


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
                    _trust_word(r),
                ]
            )
        _table(
            ["JOURNAL", "NOTEBOOK", "LAST RUN", "STATUS", "CELLS OK", "STEPS OK", "TRUST"], table
        )
    for message in held:
        print(f"durable-nb: {message}", file=sys.stderr)
    return HELD if held else OK


def _trust_word(r: dict[str, Any]) -> str:
    """``ls``'s TRUST column: yours, foreign (records not signed by you) or withheld
    (records you signed are gone)."""
    if r["trusted"]:
        return "yours"
    return "foreign" if r["untrusted_records"] else "withheld"


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


def _overview(j: Journal, journal: Path) -> dict[str, Any]:
    """A journal in one dict: where, whose, last run, counts (for ls and show)."""
    o = j.overview()
    live = j.copied_from
    last = _run(o.runs[-1], live, _LAST_RUN_KEYS) if o.runs else None
    # Beside its journal when it is there (an imported notebook), else where it last ran.
    notebook = notebook_of(journal)
    if not Path(notebook).is_file():
        notebook = next((r.notebook for r in reversed(o.runs) if r.notebook), None) or notebook
    status = last["status"] if last else "never run"
    if o.last_cell_status not in (None, "ok") and status != "running":
        status = f"{status}, last cell {o.last_cell_status}"
    foreign = j.foreign_records()  # every record a load would use
    untrusted = sum(foreign.values())
    withheld = j.runs_problem()  # a cell execution or run of this user's gone
    return {
        "journal": str(journal),
        "notebook": notebook,
        "last_run": last,
        "status": status,
        "cells": o.cells,
        "cells_ok": o.cells_ok,
        "steps": o.steps,
        "steps_ok": o.steps_ok,
        "trusted": untrusted == 0 and withheld is None,
        "withheld": None if withheld is None else str(withheld),
        "untrusted_records": untrusted,
        "untrusted_by_table": foreign,
        "epoch": o.epoch,
        "copy_of_live_journal": bool(live),
    }


def cmd_show(args: argparse.Namespace) -> int:
    """``durable-nb show``: runs, cells and steps of one journal."""
    journal = journal_path(args.notebook)
    with open_journal(journal, copy=args.copy) as j:
        data = _overview(j, journal)
        if args.notebook.suffix != ".duckdb":
            data["notebook"] = str(args.notebook.expanduser().resolve())
        data["schema"] = j.meta("schema_version")
        data["headless"] = _plan(j.meta("headless"))
        data["runs"] = [_run(r, j.copied_from) for r in j.runs()]
        data["cells"] = [_fields(c, _CELL_KEYS) for c in j.cells()]
        data["steps"] = [_fields(s, _STEP_KEYS) for s in j.steps()]
        timeline = j.timeline() if args.html else None
        if args.outputs or args.html:
            from .. import outputs  # it imports the store: not for durable-nb --help

            recorded = j.outputs_of(c["seq"] for c in data["cells"])
            for c in data["cells"]:
                row = recorded.get(c["seq"])
                c["outputs"] = outputs.load(row)
                c["outputs_dropped"] = row.dropped if row is not None else 0
                # Shown as text, never rendered; marked when this user did not sign them.
                c["outputs_foreign"] = row is not None and not j.signed(row)
    for s in data["steps"]:
        try:
            s["attempt_errors"] = json.loads(s["attempt_errors"] or "[]")
        except ValueError:
            pass
    if args.html:
        from . import report  # plotly only when asked for

        written = report.write(args.html, data, timeline)
        print(f"durable-nb: wrote {written} (open it in a browser; it needs no network)")
        return OK
    if args.json:
        print(json.dumps(data, indent=2, default=_jsonable))
        return OK
    _print_show(data)
    if args.outputs:
        _print_outputs(data["cells"])
    return OK


def _print_outputs(cells: list[dict[str, Any]]) -> None:
    """Each cell execution's journaled outputs, as a terminal shows them."""
    from .. import outputs

    shown = [c for c in cells if c["outputs"] or c["outputs_dropped"]]
    print(f"\noutputs ({len(shown)} cell executions recorded some)")
    for c in shown:
        head = f"── {c['seq']} {c['status']}  {first_line(c['source'])[:60]}"
        if c.get("outputs_foreign"):
            head += "  (foreign: not signed by you)"
        print(printable(head + outputs.describe_dropped(c["outputs_dropped"])))
        for line in outputs.as_text(c["outputs"]).splitlines():
            print("   " + printable(line))


def _plan(raw: Any) -> Any:
    """The recorded run plan as JSON shows it (whatever a journal holds there)."""
    try:
        return json.loads(raw or "null")
    except (ValueError, TypeError, RecursionError):
        return str(raw)[:200]


#: What show prints (and --json gives) of each run, cell and step.
_RUN_KEYS = ("run_id", "pid", "host", "notebook", "started", "ended", "status")
_LAST_RUN_KEYS = ("run_id", "pid", "host", "started", "ended", "status")
_CELL_KEYS = ("seq", "run_id", "cell_id", "status", "started", "ended", "steps_run",
              "steps_replayed", "source", "error")  # fmt: skip
_STEP_KEYS = ("seq", "name", "args", "status", "kind", "attempts", "error", "attempt_errors",
              "started", "ended", "epoch")  # fmt: skip


def _run(run: RunRow, live: int | None, keys: tuple[str, ...] = _RUN_KEYS) -> dict[str, Any]:
    """A run as a dict; ``running`` while ``live``, the kernel holding the original, runs it."""
    fields = _fields(run, keys)
    if live and run.ended is None and run.pid == live:
        fields["status"] = "running"
    return fields


def _fields(row: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The ``keys`` of a typed journal row, as a dict."""
    return {k: getattr(row, k) for k in keys}


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _seconds(a: Any, b: Any) -> str:
    return f"{(b - a).total_seconds():.2f}s" if a and b else "-"


def _print_show(d: dict[str, Any]) -> None:
    trust = (
        "signed by you"
        if d["trusted"]
        else f"records you signed are missing: {d['withheld']}"
        if d.get("withheld") and not any(d["untrusted_by_table"].values())
        else f"NOT signed by you ({_counts(d['untrusted_by_table'])}): pickled results and "
        f"snapshots are refused until you run durable-nb trust {d['journal']}"
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


def _counts(by_table: dict[str, int]) -> str:
    """``3 cells, 1 steps`` (tables with records not signed by you)."""
    return ", ".join(f"{n} {table}" for table, n in by_table.items() if n)
