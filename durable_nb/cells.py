"""What durable_nb reads in a cell's source: its key, the ``%%durable fresh`` mark, its first line.

Imports nothing of the package: the runtime, the extension, the magics and the CLI share it.
"""

from __future__ import annotations

import re

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
