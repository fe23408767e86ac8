"""Small helpers shared by the kernel tests: a step cell that counts its real runs."""

from __future__ import annotations

import uuid
from pathlib import Path

STEPS = """
import durable_nb as dnb

@dnb.step
def effect(i):
    with open({out!r}, "a") as f:
        f.write(f"{{i}}\\n")
    return i * 10

vals = [effect(i) for i in range({n})]
print("vals", vals)
"""


def steps_cell(out: Path, n: int = 3) -> str:
    """A cell that calls a step ``n`` times; each real run appends a line to ``out``."""
    return STEPS.format(out=str(out), n=n)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def dnb_lines(text: str) -> list[str]:
    """The ``durable_nb:`` lines of a cell's stderr."""
    return [line for line in text.splitlines() if line.startswith("durable_nb:")]


def cell(k, code: str, cell_id: str | None = None):
    """Run a cell that must succeed, with a cell id as JupyterLab sends one."""
    return k.ok(code, cell_id=cell_id or f"cell-{uuid.uuid4().hex[:8]}")
