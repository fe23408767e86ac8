"""What durable_nb reads in a cell's source: its key, the ``%%durable fresh`` mark, its first line.

Also how a person finds a journaled cell in the notebook: its place and first line (the
journal's run numbers match neither the ``[n]`` prompts nor the cell's place).

Imports nothing of the package: the runtime, the extension, the magics and the CLI share it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import xxhash

#: A cell whose first line is this re-runs its steps instead of replaying them.
FRESH_LINE = re.compile(r"^\s*%%durable\s+fresh\s*(#.*)?$")


def first_line(source: str | None) -> str:
    """The first line of ``source`` that is not blank, as written; ``""`` when none is."""
    return next((line for line in (source or "").splitlines() if line.strip()), "")


def is_fresh(source: str | None) -> bool:
    """Whether the cell starts with ``%%durable fresh`` (blank lines before it aside)."""
    return bool(FRESH_LINE.match(first_line(source)))


def cell_key(cell_id: str | None, source: str) -> str:
    """The cell's identity: the frontend's cell id, else a hash of its source.

    The hash leaves out surrounding blank space and a ``%%durable fresh`` first line,
    so marking a cell fresh (or unmarking it) does not change which cell it is.
    """
    if cell_id:
        return cell_id
    lines = source.strip().splitlines()
    if lines and FRESH_LINE.match(lines[0]):
        lines = lines[1:]
    return "src:" + xxhash.xxh3_64_hexdigest("\n".join(lines).strip().encode())


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def position(notebook: str | None, cell_id: str | None) -> int | None:
    """The 1-based place of code cell ``cell_id`` among the saved notebook's code cells."""
    if not notebook or not cell_id or not notebook.endswith(".ipynb"):
        return None
    try:
        with open(notebook, encoding="utf-8") as f:
            cells = json.load(f).get("cells", [])
        code = [c.get("id") for c in cells if c.get("cell_type") == "code"]
    except (OSError, ValueError, AttributeError):
        return None
    return code.index(cell_id) + 1 if cell_id in code else None


def label(cell: dict[str, Any], notebook: str | None) -> str:
    """``the 3rd code cell ('progress = []')``, or ``the cell 'progress = []'``."""
    first = first_line(cell.get("source"))
    shown = repr(first.strip()[:60])
    n = position(notebook, cell.get("cell_id"))
    return f"the {_ordinal(n)} code cell ({shown})" if n else f"the cell starting {shown}"
