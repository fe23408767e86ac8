"""Cell outputs: what a cell execution publishes, kept for the journal (its tail, capped).

The kernel's output messages (stream, display_data, execute_result, error,
update_display_data, clear_output) become nbformat outputs, as a frontend would keep them.
A cell keeps at most ``cap`` bytes (default 1 MB): past it the oldest output is cut (a
stream from its start), and how much was dropped is counted. The runtime writes a cell's
outputs with the cell's other records (one group commit), and while a long cell runs at
most once a second (:data:`FLUSH_EVERY`), so a killed cell keeps what it printed.

Also here: outputs read back from a journal (which may come from someone else, so only
well-formed outputs and harmless mimetypes are shown again), as plain text, and their
comparison after a replay (memory addresses and timings normalised).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from .store import OutputRow

#: Bytes of outputs kept per cell execution (the tail); ``DurableNB.outputs_max_bytes``.
DEFAULT_CAP = 1_000_000
#: The most it may be set to: a row must stay readable as one log record (64 MiB; a
#: character can take 6 bytes of JSON).
MAX_CAP = 8 << 20
#: Seconds between two writes of a running cell's outputs (each one fdatasync).
FLUSH_EVERY = 1.0
#: Longest wait (s) of :meth:`Flusher.join` for a tick under way.
STOP_WAIT = 5.0
#: The kernel messages that are outputs of the cell being executed.
OUTPUT_TYPES = frozenset(
    {"stream", "display_data", "execute_result", "error", "update_display_data", "clear_output"}
)
#: What is shown again from a journal: mimetypes a frontend renders without running code
#: (HTML, SVG, JavaScript and widget views are left out: a journal may come from others).
SAFE_MIMETYPES = ("text/plain", "image/png", "image/jpeg", "image/gif", "application/json")
#: Shown again as their source text only: JupyterLab renders a kernel's markdown as trusted
#: HTML (no sanitizer, inline scripts run) and LaTeX through MathJax, so a journal's
#: ``<img onerror=...>`` in markdown would run script in the page.
AS_SOURCE = ("text/markdown", "text/latex")
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Largest outputs text read back from a journal.
MAX_READ = 1 << 26


def _size(output: dict[str, Any]) -> int:
    """An output's size in bytes, as the cap counts it (its text and data)."""
    kind = output["output_type"]
    if kind == "stream":
        return len(output["text"].encode())
    if kind == "error":
        return sum(len(str(x).encode()) for x in [output["ename"], output["evalue"],
                                                   *output["traceback"]])  # fmt: skip
    return sum(
        len(v.encode()) if isinstance(v, str) else len(json.dumps(v))
        for v in output["data"].values()
    )


def _output(msg_type: str, content: dict[str, Any]) -> dict[str, Any] | None:
    """The nbformat output of one kernel message (None for what is not an output)."""
    if msg_type == "stream":
        return {"output_type": "stream", "name": str(content.get("name", "stdout")),
                "text": str(content.get("text", ""))}  # fmt: skip
    if msg_type == "error":
        return {"output_type": "error", "ename": str(content.get("ename", "")),
                "evalue": str(content.get("evalue", "")),
                "traceback": [str(t) for t in content.get("traceback") or []]}  # fmt: skip
    if msg_type in ("display_data", "execute_result", "update_display_data"):
        out = {"output_type": "display_data" if msg_type != "execute_result" else msg_type,
               "data": dict(content.get("data") or {}),
               "metadata": dict(content.get("metadata") or {})}  # fmt: skip
        if msg_type == "execute_result":
            out["execution_count"] = content.get("execution_count")
        return out
    return None


class Buffer:
    """The outputs of one cell execution so far: the tail under ``cap`` bytes.

    ``add`` is called from whichever thread the kernel publishes on; every method holds
    the buffer's lock.
    """

    def __init__(self, exec_id: str, seq: int, cap: int = DEFAULT_CAP) -> None:
        self.exec_id, self.seq, self.cap = exec_id, seq, cap
        self.outputs: list[dict[str, Any]] = []
        self.nbytes = 0  # of what ``outputs`` holds
        self.dropped = 0  # cut from the start to stay under the cap
        self.dirty = False  # published since the last row
        self.written = 0.0  # when the last row was made (monotonic)
        self._displays: dict[str, list[dict[str, Any]]] = {}  # display id -> its outputs
        self._clear_next = False
        self._lock = threading.Lock()

    def add(self, msg_type: str, content: dict[str, Any]) -> None:
        """Keep what one kernel message published (see :data:`OUTPUT_TYPES`)."""
        with self._lock:
            if msg_type == "clear_output":
                if content.get("wait"):
                    self._clear_next = True
                else:
                    self._clear()
                return
            out = _output(msg_type, content)
            if out is None:
                return
            if self._clear_next:
                self._clear()
            display_id = (content.get("transient") or {}).get("display_id")
            if msg_type == "update_display_data":
                for shown in self._displays.get(display_id, ()):
                    self.nbytes -= _size(shown)
                    shown["data"], shown["metadata"] = out["data"], out["metadata"]
                    self.nbytes += _size(shown)
            else:
                last = self.outputs[-1] if self.outputs else None
                if out["output_type"] == "stream" and last and last["output_type"] == "stream" \
                        and last["name"] == out["name"]:  # fmt: skip
                    last["text"] += out["text"]  # as a frontend shows it: one stream output
                else:
                    self.outputs.append(out)
                    if isinstance(display_id, str):
                        self._displays.setdefault(display_id, []).append(out)
                self.nbytes += _size(out)
            self._trim()
            self.dirty = True

    def _clear(self) -> None:
        self.outputs, self.nbytes, self._clear_next = [], 0, False
        self._displays.clear()

    def _trim(self) -> None:
        """Cut the oldest outputs (a stream from its start) until the cap holds."""
        while self.nbytes > self.cap and self.outputs:
            head = self.outputs[0]
            excess = self.nbytes - self.cap
            size = _size(head)
            if head["output_type"] == "stream" and size > excess:
                head["text"] = head["text"].encode()[excess:].decode(errors="ignore")
                cut = size - _size(head)
            else:
                self.outputs.pop(0)
                for shown in self._displays.values():
                    if head in shown:
                        shown.remove(head)
                cut = size
            self.nbytes -= cut
            self.dropped += cut

    def row(self) -> OutputRow:
        """The journal row of the outputs so far (clears :attr:`dirty`)."""
        with self._lock:
            self.dirty = False
            self.written = time.monotonic()
            return OutputRow(self.exec_id, self.seq, json.dumps(self.outputs), self.nbytes,
                             self.dropped)  # fmt: skip

    def due(self) -> bool:
        """Whether a running cell's outputs should be written now (new, and not too often)."""
        return self.dirty and time.monotonic() - self.written >= FLUSH_EVERY

    def tail(self, lines: int = 8, width: int = 160) -> str:
        """The last ``lines`` lines of what the cell printed, for the live status view."""
        with self._lock:  # widget views (this status view among them) are no text
            shown = [o for o in self.outputs[-lines:] if _WIDGET_VIEW not in o.get("data", ())]
            text = as_text(shown)
        return "\n".join(line[:width] for line in text.splitlines()[-lines:])


class Flusher:
    """A daemon thread that calls ``flush()`` every :data:`FLUSH_EVERY` seconds until stopped."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="durable_nb-outputs", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_EVERY):
            try:
                self._flush()
            except Exception:  # the next cell end writes them; never kill the thread
                pass

    def stop(self) -> None:
        """Stop the thread: it ends once a tick under way is done (:meth:`join`)."""
        self._stop.set()

    def join(self) -> None:
        """Wait for the stopped thread to end, up to :data:`STOP_WAIT` s (a tick held by a
        slow disk goes on alone), so an unload leaves no thread behind."""
        if self._thread is not threading.current_thread():
            self._thread.join(STOP_WAIT)


# -- outputs read back ---------------------------------------------------------------------


def load(row: OutputRow | None) -> list[dict[str, Any]]:
    """The well-formed outputs of a journal row (a row from elsewhere may hold anything)."""
    if row is None or type(row.outputs) is not str or len(row.outputs) > MAX_READ:
        return []
    try:
        found = json.loads(row.outputs)
    except (ValueError, RecursionError):
        return []
    return [out for out in found if _well_formed(out)] if isinstance(found, list) else []


def _well_formed(out: Any) -> bool:
    if not isinstance(out, dict):
        return False
    kind = out.get("output_type")
    if kind == "stream":
        return out.get("name") in ("stdout", "stderr") and isinstance(out.get("text"), str)
    if kind == "error":
        tb = out.get("traceback")
        return (isinstance(out.get("ename"), str) and isinstance(out.get("evalue"), str)
                and isinstance(tb, list) and all(isinstance(t, str) for t in tb))  # fmt: skip
    if kind in ("display_data", "execute_result"):
        return isinstance(out.get("data"), dict) and isinstance(out.get("metadata", {}), dict)
    return False


def safe(out: dict[str, Any]) -> dict[str, Any]:
    """``out`` (well formed) with only the mimetypes in :data:`SAFE_MIMETYPES`."""
    if out["output_type"] not in ("display_data", "execute_result"):
        return out
    data = {k: v for k, v in out["data"].items()
            if k in SAFE_MIMETYPES and (isinstance(v, str) or k == "application/json")}  # fmt: skip
    source = next((out["data"][k] for k in AS_SOURCE if isinstance(out["data"].get(k), str)), None)
    if source is not None:  # more telling than a repr like <IPython...Markdown object>
        data["text/plain"] = source
    if not data:
        kinds = ", ".join(sorted(out["data"]))[:200]
        data = {"text/plain": f"[{kinds}: not shown again from the journal]"}
    meta = out.get("metadata") or {}
    return {**out, "data": data, "metadata": {k: meta[k] for k in data if k in meta}}


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def as_text(outputs: list[dict[str, Any]]) -> str:
    """Outputs as a terminal shows them: streams, text/plain, tracebacks (colours removed)."""
    parts = []
    for out in outputs:
        kind = out["output_type"]
        if kind == "stream":
            parts.append(out["text"])
        elif kind == "error":
            parts.append("\n".join(out["traceback"]) or f"{out['ename']}: {out['evalue']}")
            parts.append("\n")
        else:
            plain = out["data"].get("text/plain")
            if isinstance(plain, list):  # nbformat may split text in lines
                plain = "".join(map(str, plain))
            shown = plain if isinstance(plain, str) else f"[{', '.join(sorted(out['data']))}]"
            parts.append(shown + "\n")
    return _ANSI.sub("", "".join(parts))


def describe_dropped(dropped: int) -> str:
    """``" (1.2 MB from its start were dropped: ...)"`` or ``""``."""
    if not dropped:
        return ""
    return (f" ({dropped / 1e6:.1f} MB from its start were dropped: a cell keeps the last "
            f"{DEFAULT_CAP / 1e6:.0f} MB by default, DurableNB.outputs_max_bytes)")  # fmt: skip


# -- comparison after a replay ------------------------------------------------------------

_NORMALISE = [
    (re.compile(r"0x[0-9a-fA-F]{4,}"), "0x…"),  # memory addresses
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:?\d\d|Z)?"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)?(e-?\d+)?\s?(ns|µs|us|ms|s|sec|secs|seconds|min|h)\b"), "<dur>"),
]


def comparable(outputs: list[dict[str, Any]]) -> list[str]:
    """The lines of ``outputs`` that a replay must reproduce, normalised.

    Memory addresses, dates and durations are masked; durable_nb's own lines (which say
    what replayed) and the views of widgets are left out.
    """
    lines = []
    for line in as_text([safe(o) for o in outputs]).splitlines():
        if line.startswith(("durable_nb:", "durable-nb:")) or not line.strip():
            continue
        for pattern, mask in _NORMALISE:
            line = pattern.sub(mask, line)
        lines.append(line.rstrip())
    return lines


def difference(recorded: list[dict[str, Any]], replayed: list[dict[str, Any]]) -> str | None:
    """Where the replay's outputs differ from the recorded ones, in one phrase; None if equal."""
    a, b = comparable(recorded), comparable(replayed)
    if a == b:
        return None
    for n, (x, y) in enumerate(zip(a, b, strict=False), 1):
        if x != y:
            return f"line {n}: recorded {x[:80]!r}, replay {y[:80]!r}"
    n = min(len(a), len(b)) + 1
    if len(a) > len(b):
        return f"line {n}: recorded {a[n - 1][:80]!r}, the replay printed no more"
    return f"line {n}: the replay printed {b[n - 1][:80]!r}, not recorded"


def show_again(outputs: list[dict[str, Any]]) -> None:
    """Publish well-formed ``outputs`` again in the current cell (harmless mimetypes only)."""
    import sys

    from IPython.display import publish_display_data

    for out in map(safe, outputs):
        kind = out["output_type"]
        if kind == "stream":
            getattr(sys, out["name"]).write(out["text"])
        elif kind == "error":
            sys.stderr.write("\n".join(out["traceback"]) or f"{out['ename']}: {out['evalue']}")
            sys.stderr.write("\n")
        else:
            publish_display_data(out["data"], out.get("metadata") or {})
    sys.stdout.flush()
    sys.stderr.flush()


def show_journaled(journal: Any, seq: int, notebook: str | None) -> bool:
    """Print a heading for cell execution ``seq`` and show its journaled outputs again.

    False when the journal has no such cell execution.
    """
    from .cells import label
    from .trust import HOW_TO_TRUST

    cells = journal.cells([seq])
    if not cells:
        return False
    c = cells[0]
    row = journal.outputs(seq)
    if row is not None and not journal.signed(row):  # its HTML could run in this page
        print(
            f"durable_nb: the outputs journaled for cell execution {seq} are not signed "
            "by you: not shown; " + HOW_TO_TRUST.format(target=notebook or journal.path)
        )
        return True
    found = load(row)
    when = c.started.astimezone().strftime("%Y-%m-%d %H:%M") if c.started else "?"
    name = label({"source": c.source, "cell_id": c.cell_id}, notebook)
    what = f"cell execution {seq}, {name}, {c.status}, started {when}"
    if not found:
        print(f"durable_nb: {what}: no outputs were journaled")
        return True
    print(f"durable_nb: outputs of {what}{describe_dropped(row.dropped or 0)}:", flush=True)
    show_again(found)
    return True
