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


def code_cells(nb: Any) -> list[Cell]:
    """The cells a run executes (nbclient skips the rest), in order."""
    from ..runtime import cell_key

    return [
        Cell(i, cell_key(c.get("id"), c.source), c.source)
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and c.source.strip()
        and "skip-execution" not in c.metadata.get("tags", [])
    ]


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
