"""The resume plan of ``durable-nb run``: which cells an earlier run left done.

Pure functions over the notebook's cells and rows read from the journal; no kernel, no I/O.
Each run records the plan it starts from (``meta.headless``), so the next one knows which
cells it may skip and as of which cell execution to restore the namespace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any, NamedTuple, TypedDict


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
    from ..runtime import cell_key

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


def parse(raw: str | None) -> dict[str, Any] | None:
    """The plan an earlier run recorded (``meta.headless``), or None."""
    return json.loads(raw or "null") or None


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
        skipped as done) succeeded with the same source; the prefix ends at the first
        cell that is not, and its executions must increase (the restore is as of the
        last one). When every cell is done, the last run finished: start over (``[]``).
    """
    if not previous:
        return []
    done = {e["key"]: e for e in previous.get("done", [])}
    for key, seq, source, status in executed:
        if status == "ok":
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
