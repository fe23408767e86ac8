"""The resume plan of ``durable-nb run``: which cells an earlier run left done.

Pure functions over the notebook's cells and rows read from the journal; no kernel, no I/O.
Each run records the plan it starts from (``meta.headless``), so the next one knows which
cells it may skip and as of which cell execution to restore the namespace. A plan is read
from a file anyone may have written: :func:`parse` accepts only the exact shape
:func:`record` writes (integers are integers, keys and hashes are short strings), and the
runner uses it only when it carries this user's signature (run.py).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from typing import Any, NamedTuple, TypedDict

from ..cells import cell_key


class Cell(NamedTuple):
    """A code cell a run executes: its index in the notebook, identity and source."""

    index: int
    key: str
    source: str


class Executed(NamedTuple):
    """A cell execution of the earlier run's kernel, as the journal's ``cells`` table has it."""

    key: str
    seq: int
    source: str | None
    status: str
    #: Beside ``ok``: its snapshot did not complete (store.UNSAVED), so it is not done.
    error: str | None = None


class Done(TypedDict):
    """A cell left done: its identity, the execution to restore as of, its source hash."""

    key: str
    seq: int
    hash: str


def identify(nb: Any) -> int:
    """Give each cell without an id (nbformat < 4.5) or with a repeated one an id of its own.

    The id is derived from the cell's place among the cells of its kind and its source
    (``code-3-1a2b3c4d``): the same file gets the same ids on every run, and two cells with
    equal sources never share one. Changes ``nb`` in memory (upgraded to nbformat 4.5);
    returns how many ids it gave.

    Parameters
    ----------
    nb : NotebookNode
        The notebook as read from its file (before parameters are injected).
    """
    seen: set[str] = set()
    places: dict[str, int] = {}
    given = 0
    for cell in nb.cells:
        kind = cell.get("cell_type", "cell")
        places[kind] = place = places.get(kind, 0) + 1
        cid = cell.get("id")
        if not cid or cid in seen:
            cid = base = f"{kind[:8]}-{place}-{source_hash(_text(cell.get('source')))[:8]}"
            n = 1
            while cid in seen:  # only a hand-made id can clash with a derived one
                n += 1
                cid = f"{base}-{n}"
            cell["id"] = cid
            given += 1
        seen.add(cid)
    if nb.get("nbformat") == 4 and nb.get("nbformat_minor", 0) < 5:
        nb["nbformat_minor"] = 5
    return given


def _text(source: Any) -> str:
    return "".join(source) if isinstance(source, list) else source or ""


def code_cells(nb: Any) -> list[Cell]:
    """The cells a run executes (nbclient skips the rest), in order.

    A cell's key is its id (:func:`identify` gives one to cells without); equal keys would
    make one cell of two, so a repeated key is refused.
    """
    cells = [
        Cell(i, cell_key(c.get("id"), c.source), c.source)
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and c.source.strip()
        and "skip-execution" not in c.metadata.get("tags", [])
    ]
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError("two code cells share an identity: call identify(nb) first")
    return cells


def source_hash(source: str | None) -> str:
    """The hash a plan keeps of a cell's source, to tell an edited cell."""
    import xxhash

    return xxhash.xxh3_64_hexdigest((source or "").encode())


class BadPlan(ValueError):
    """A recorded plan that is not what :func:`record` writes (damaged or crafted)."""


#: Longest cell key a plan holds (a frontend's cell id, or ``src:`` and a hash).
MAX_KEY = 128
#: Most cells a plan lists, and longest parameter text (a plan is a small record).
MAX_CELLS = 100_000
MAX_TEXT = 1 << 16

_HASH = re.compile(r"[0-9a-f]{16}")


def _int(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value < 1 << 62:
        raise BadPlan(f"{what} is not a cell execution number")
    return value


def _short(value: Any, limit: int, what: str) -> str:
    if type(value) is not str or len(value) > limit:
        raise BadPlan(f"{what} is not a short string")
    return value


def parse(raw: str | None) -> dict[str, Any] | None:
    """The plan an earlier run recorded (``meta.headless``), validated; None when there is none.

    Raises
    ------
    BadPlan
        When it is not exactly what :func:`record` writes.
    """
    if raw is None:
        return None
    if type(raw) is not str or len(raw) > MAX_CELLS * 256:
        raise BadPlan("the plan is not a short JSON text")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadPlan(f"the plan is not JSON ({exc})") from None
    if data is None:
        return None
    if type(data) is not dict or set(data) != {"started", "done", "parameters"}:
        raise BadPlan("the plan does not have the fields started, done, parameters")
    started = data["started"]
    if type(started) not in (int, float) or not 0 <= started < 1e11:
        raise BadPlan("the plan's start time is not a time")
    done, parameters = data["done"], data["parameters"]
    if type(done) is not list or len(done) > MAX_CELLS:
        raise BadPlan("the plan's done cells are not a list")
    if type(parameters) is not list or len(parameters) > MAX_CELLS:
        raise BadPlan("the plan's parameters are not a list")
    checked: list[Done] = []
    for e in done:
        if type(e) is not dict or set(e) != {"key", "seq", "hash"}:
            raise BadPlan("a done cell of the plan does not have the fields key, seq, hash")
        h = _short(e["hash"], 16, "a source hash")
        if not _HASH.fullmatch(h):
            raise BadPlan("a source hash of the plan is not 16 hex digits")
        key = _short(e["key"], MAX_KEY, "a cell key")
        checked.append({"key": key, "seq": _int(e["seq"], "seq"), "hash": h})
    params = []
    for p in parameters:
        if type(p) is not list or len(p) != 2:
            raise BadPlan("a parameter of the plan is not a [name, value] pair")
        name, value = (_short(v, MAX_TEXT, "a parameter") for v in p)
        if not name.isidentifier():
            raise BadPlan("a parameter name of the plan is not an identifier")
        params.append([name, value])
    return {"started": float(started), "done": checked, "parameters": params}


def record(done: list[Done], parameters: list[list[str]]) -> str:
    """The plan this run starts from, as recorded in ``meta.headless``."""
    return json.dumps({"started": time.time(), "done": done, "parameters": parameters})


def resume(
    previous: dict[str, Any] | None, executed: Iterable[Executed], cells: list[Cell]
) -> list[Done]:
    """The cells the last run left done, as the prefix of ``cells``.

    Parameters
    ----------
    previous
        The plan that run started from (:func:`parse`), or None for no earlier run.
    executed
        The cell executions of that run's kernel, by ``seq``.
    cells
        The cells this run executes (:func:`code_cells`).

    Returns
    -------
    list of Done
        A cell is done when its last execution in that run (or a cell the run itself
        skipped as done) succeeded, its namespace saved, with the same source; the
        prefix ends at the first cell that is not, and its executions must increase (the
        restore is as of the last one). When every cell is done, the last run finished:
        start over (``[]``).
    """
    if not previous:
        return []
    done = {e["key"]: e for e in previous.get("done", [])}
    for key, seq, source, status, error in executed:
        if type(seq) is not int or type(key) is not str:
            raise BadPlan("a cell execution of the journal is not (key, seq)")
        if status == "ok" and error is None:  # and its namespace saved: restored as of it
            done[key] = {"key": key, "seq": seq, "hash": source_hash(source)}
        else:
            done.pop(key, None)
    prefix: list[Done] = []
    for _, key, source in cells:
        e = done.get(key)
        if e is None or e["hash"] != source_hash(source):
            break
        if prefix and e["seq"] <= prefix[-1]["seq"]:
            break
        prefix.append({"key": key, "seq": e["seq"], "hash": e["hash"]})
    return [] if len(prefix) == len(cells) else prefix
