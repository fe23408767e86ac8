"""The timeline picture: every run, cell execution and step attempt of a journal over time.

:func:`segments` turns what the journal holds (a :class:`~durable_nb.store.Timeline`)
into rows of bars and marks; :func:`figure` draws them with plotly (the optional extra
``durable_nb[timeline]``): one row per cell and per step call, a bar per attempt (the
gaps between are backoff waits), failures in red, a person's decisions as marks, the
waits for them as bars of their own, and cells whose steps replayed drawn apart from
cells that ran. ``%durable timeline`` shows it; ``durable-nb show --html`` embeds it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NamedTuple

from .cells import first_line
from .errors import ExtraMissing

__all__ = ["COLORS", "CONFIG", "Mark", "Picture", "Segment", "figure", "segments"]

#: Bar kind -> colour (and the legend's order).
COLORS = {
    "run": "#9e9e9e",
    "cell": "#4c78a8",
    "replayed": "#c7d5e6",
    "attempt": "#54a24b",
    "failed": "#e45756",
    "suspended": "#f58518",
    "interrupted": "#8c1c13",
}


#: plotly's display options: the mouse wheel zooms (thousands of steps), no logo.
CONFIG = {"scrollZoom": True, "displaylogo": False}


class Segment(NamedTuple):
    """A bar: on ``row``, from ``start`` to ``end`` (epoch seconds)."""

    row: str
    kind: str  # a key of COLORS
    start: float
    end: float
    text: str  # what hovering shows


class Mark(NamedTuple):
    """A point in time on ``row``: a person's decision (Retry / Skip)."""

    row: str
    at: float
    text: str


def segments(timeline: Any) -> tuple[list[str], list[Segment], list[Mark]]:
    """The rows (top to bottom), bars and marks of a journal's timeline.

    Parameters
    ----------
    timeline : durable_nb.store.Timeline
        Runs, cell executions and step records, as ``Journal.timeline()`` reads them.
    """
    rows: dict[str, None] = {}  # insertion-ordered set
    bars: list[Segment] = []
    marks: list[Mark] = []
    # A run or cell with no end (it died, or still runs) is drawn up to the last thing
    # it is known to have done.
    by_run: dict[str, float] = {}
    by_seq: dict[int, float] = {}
    for x in [*timeline.cells, *timeline.steps]:
        t = _t(x.ended) or _t(x.started)
        if t is not None:
            by_run[x.run_id] = max(by_run.get(x.run_id, t), t)
            by_seq[x.seq] = max(by_seq.get(x.seq, t), t)
    for n, run in enumerate(timeline.runs, 1):
        start = _t(run.started)
        if start is None:
            continue
        end = _t(run.ended) or max(by_run.get(run.run_id, start), start)
        row = "runs"
        rows[row] = None
        bars.append(Segment(row, "run", start, end,
                            f"run {n}: pid {run.pid} on {run.host}, {run.status}"))  # fmt: skip
    cell_rows: dict[str, str] = {}
    for c in timeline.cells:
        start = _t(c.started)
        if start is None:
            continue
        if c.cell_key not in cell_rows:
            cell_rows[c.cell_key] = f"cell {len(cell_rows) + 1}: {first_line(c.source)[:40]}"
        row = cell_rows[c.cell_key]
        rows[row] = None
        ran, replayed = c.steps_run or 0, c.steps_replayed or 0
        if c.ended is None:
            kind, end = "interrupted", max(by_seq.get(c.seq, start), start)
        elif c.status == "error":
            kind, end = "failed", _t(c.ended)
        else:
            kind, end = ("replayed" if replayed and not ran else "cell"), _t(c.ended)
        text = f"[{c.seq}] {c.status}: {ran} steps ran, {replayed} replayed"
        if c.error:
            text += f"<br>{c.error[:200]}"
        bars.append(Segment(row, kind, start, end or start, text))
    step_rows: dict[str, str] = {}
    taken: set[str] = set()
    times: dict[str, int] = {}  # label -> how many calls have it (distinct identities)
    for s in _latest(timeline.steps):
        if s.identity not in step_rows:
            label = f"{s.name}{(s.args or '')[:40]}"
            unique = label
            while unique in taken:
                times[label] = times.get(label, 1) + 1
                unique = f"{label} #{times[label]}"
            taken.add(unique)
            step_rows[s.identity] = unique
        row = step_rows[s.identity]
        rows[row] = None
        _step(s, row, bars, marks)
    return list(rows), bars, marks


def _latest(steps: list[Any]) -> list[Any]:
    """One record per call: a failure journaled before a person's Retry is a prefix of the
    record that follows it (same identity, run and start), so the later one is kept."""
    kept: dict[tuple, Any] = {}
    for s in steps:
        k = (s.identity, s.run_id, _t(s.started))
        if k not in kept or (_t(s.ended) or 0) >= (_t(kept[k].ended) or 0):
            kept[k] = s
    return list(kept.values())


def _step(s: Any, row: str, bars: list[Segment], marks: list[Mark]) -> None:
    """The bars (attempts, waits for a person) and marks (decisions) of one step record."""
    try:
        log = json.loads(s.attempt_errors or "[]")
    except ValueError:
        log = []
    what = f"{s.name}{s.args or ''}"
    previous_end = _t(s.started)
    n = 0
    for entry in log if isinstance(log, list) else []:
        if not isinstance(entry, dict):
            continue
        if "decision" in entry and _num(entry.get("at")):
            at = float(entry["at"])
            if previous_end is not None and at > previous_end:
                bars.append(Segment(row, "suspended", previous_end, at,
                                    f"{what}: suspended, waiting for a person"))  # fmt: skip
            marks.append(Mark(row, at, f"{what}: {entry['decision']}"))
            previous_end = at
        elif _num(entry.get("started")) and _num(entry.get("seconds")):
            n += 1
            start, end = float(entry["started"]), float(entry["started"]) + float(entry["seconds"])
            error = entry.get("error")
            text = f"{what}: attempt {n}, {float(entry['seconds']):.2f} s"
            if error:
                text += f"<br>{str(error)[:200]}"
            bars.append(Segment(row, "failed" if error else "attempt", start, end, text))
            previous_end = end
    if n == 0:  # no attempt log: the call as one bar
        start, end = _t(s.started), _t(s.ended)
        if start is not None:
            kind = "attempt" if s.status == "ok" else "failed"
            bars.append(Segment(row, kind, start, end or start, f"{what}: {s.status}"))


def figure(timeline: Any, title: str = "durable_nb timeline") -> Any:
    """A plotly figure of ``timeline`` (zoom with the mouse; hover for details).

    Raises
    ------
    ExtraMissing
        plotly is not installed (``pip install "durable_nb[timeline]"``).
    """
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ExtraMissing("the timeline", "plotly", "timeline") from None
    rows, bars, marks = segments(timeline)
    fig = go.Figure()
    span = max((b.end for b in bars), default=0.0) - min((b.start for b in bars), default=0.0)
    least = span / 400  # a call of a millisecond stays visible beside one of an hour
    for kind, color in COLORS.items():
        mine = [b for b in bars if b.kind == kind]
        if not mine:
            continue
        fig.add_trace(go.Bar(
            name=kind, orientation="h", y=[b.row for b in mine],
            base=[_when(b.start) for b in mine],
            x=[max(b.end - b.start, least) * 1000 for b in mine],  # a date axis counts in ms
            marker_color=color, hovertext=[b.text for b in mine], hoverinfo="text",
        ))  # fmt: skip
    if marks:
        fig.add_trace(go.Scatter(
            name="decision", mode="markers", y=[m.row for m in marks],
            x=[_when(m.at) for m in marks], hovertext=[m.text for m in marks],
            hoverinfo="text", marker={"symbol": "diamond", "size": 11, "color": "#000000"},
        ))  # fmt: skip
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "y": 0.995, "yanchor": "top",
               "yref": "container"},
        barmode="overlay", bargap=0.3, dragmode="zoom",
        height=200 + 22 * min(len(rows), 40), margin={"l": 10, "r": 10, "t": 100, "b": 30},
        legend={"orientation": "h", "y": 1.01, "yanchor": "bottom", "x": 0, "xanchor": "left"},
    )  # fmt: skip
    fig.update_xaxes(type="date")
    fig.update_yaxes(categoryorder="array", categoryarray=rows, autorange="reversed",
                     automargin=True)  # fmt: skip
    return fig


class Picture:
    """What ``%durable timeline`` shows: the figure (``.figure``) as plotly's mimetype.

    Displaying a plotly figure directly goes through plotly's renderer selection, which
    imports nbformat and jsonschema (seconds); the mimetype needs only the figure's JSON,
    which JupyterLab and Notebook 7 render with plotly's extension.
    """

    def __init__(self, fig: Any) -> None:
        self.figure = fig

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        spec = {**json.loads(self.figure.to_json()), "config": CONFIG}
        rows = len(self.figure.layout.yaxis.categoryarray or ())
        text = f"durable_nb timeline: {rows} rows (a frontend with plotly's extension draws it)"
        return {"application/vnd.plotly.v1+json": spec, "text/plain": text}


def _t(value: Any) -> float | None:
    """Epoch seconds of a journal time (a datetime read back, or float seconds)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value) if _num(value) else None


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _when(seconds: float) -> datetime:
    """Local wall-clock time, as the person reads it."""
    return datetime.fromtimestamp(seconds)
