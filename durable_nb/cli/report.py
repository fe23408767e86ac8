"""``durable-nb show NB --html FILE``: one self-contained HTML page about a journal.

The page holds the timeline (plotly, its JavaScript inlined, so it opens offline), the
tables ``show`` prints (runs, cells, steps with each attempt's error) and each cell
execution's journaled outputs as text. Journal text
may come from anyone: every piece of it is HTML-escaped.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from .. import outputs
from ..cells import first_line
from ..errors import CommandError, ExtraMissing
from ..timeline import CONFIG, figure
from ._exit import USAGE

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
td.error { color: #b00; }
code { font-size: 0.95em; }
pre { background: #f7f7f7; padding: 0.5em; overflow-x: auto; font-size: 0.85em; }
"""


def write(path: Path, data: dict[str, Any], timeline: Any) -> Path:
    """Write the report of ``data`` (what ``show --json`` gives) and ``timeline`` to ``path``."""
    try:
        fig = figure(timeline, title="every run: cells and steps over time")
    except ExtraMissing as exc:
        raise CommandError(USAGE, str(exc)) from None
    picture = fig.to_html(full_html=False, include_plotlyjs=True, default_width="100%",
                          config=CONFIG)  # fmt: skip
    e = html.escape
    runs = _table(["run", "pid", "host", "started", "ended", "status"],
                  [[r["run_id"], r["pid"], r["host"], r["started"], r["ended"], r["status"]]
                   for r in data["runs"]])  # fmt: skip
    cells = _table(["seq", "status", "started", "ended", "ran / replayed", "cell", "error"],
                   [[c["seq"], c["status"], c["started"], c["ended"],
                     f"{c['steps_run'] or 0} / {c['steps_replayed'] or 0}",
                     first_line(c["source"])[:80], c["error"] or ""]
                    for c in data["cells"]])  # fmt: skip
    shown = [c for c in data["cells"] if c.get("outputs") or c.get("outputs_dropped")]
    printed = "".join(
        f"<details><summary>[{c['seq']}] {e(c['status'])} · "
        f"<code>{e(first_line(c['source'])[:80])}</code>"
        f"{e(outputs.describe_dropped(c['outputs_dropped']))}"
        f"{' (foreign: not signed by you)' if c.get('outputs_foreign') else ''}</summary>"
        f"<pre>{e(outputs.as_text(c['outputs']))}</pre></details>"
        for c in shown
    )  # fmt: skip
    steps = _table(["seq", "step", "args", "status", "attempts", "started", "ended", "error"],
                   [[s["seq"], s["name"], s["args"] or "", s["status"], s["attempts"],
                     s["started"], s["ended"], _errors(s)]
                    for s in data["steps"]])  # fmt: skip
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>durable_nb: {e(str(data["notebook"]))}</title><style>{_STYLE}</style></head>
<body>
<h1>{e(Path(str(data["notebook"])).name)}</h1>
<p>journal <code>{e(str(data["journal"]))}</code> · status {e(str(data["status"]))} ·
{len(data["cells"])} cell executions · {len(data["steps"])} step records ·
{"signed by you" if data["trusted"] else "NOT signed by you"}</p>
<h2>Timeline</h2>
{picture}
<h2>Runs</h2>{runs}
<h2>Cells</h2>{cells}
<h2>Steps</h2>{steps}
<h2>Outputs</h2>
<p>What each cell execution printed and displayed, as journaled (text only).</p>{printed}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path


def _errors(step: dict[str, Any]) -> str:
    """The step's final error, else the errors of the attempts that failed."""
    if step["error"]:
        return step["error"]
    log = step["attempt_errors"] if isinstance(step["attempt_errors"], list) else []
    errors = [a["error"] for a in log if isinstance(a, dict) and a.get("error")]
    return "; ".join(f"attempt: {str(x)[:120]}" for x in errors)


_CLASS = ' class="error"'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td{_CLASS if h == "error" and v else ""}>{e(_text(v))}</td>'
            for h, v in zip(header, row, strict=True)
        ) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "astimezone"):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return str(value)
