"""Two users on one machine: Alice crafts a journal, Bob (own HOME, own secret) uses it.

Real ``durable-nb`` processes and real kernels; the crafted files are written with DuckDB
directly, as an attacker would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
from nbformat import write
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent.parent
_BESIDE = Path(sys.executable).with_name("durable-nb")
DURABLE_NB = _BESIDE if _BESIDE.exists() else ROOT / ".venv" / "bin" / "durable-nb"
CRASH = re.compile(r'Traceback \(most recent call last\):\n\s+File "')
TIMEOUT = 120  # seconds for one CLI process: a hang fails the test instead of the suite


def env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of the user whose HOME is ``home`` (own Jupyter data dir, own secret)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}
    home.mkdir(parents=True, exist_ok=True)
    base.update(HOME=str(home), JUPYTER_DATA_DIR=str(home / "jupyter-data"), **extra)
    return base


def cli(*args: str | Path, home: Path, cwd: Path | None = None, **extra: str):
    """Run ``durable-nb ARGS`` as the user of ``home``; never a traceback, never a hang."""
    proc = subprocess.run(
        [str(DURABLE_NB), *map(str, args)],
        env=env(home, **extra), cwd=cwd or home, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    # The CLI's own traceback (a cell's error, shown by nbclient, is not one).
    assert not CRASH.search(proc.stderr + proc.stdout), show(proc)
    return proc


def show(proc) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def notebook(path: Path, *sources: str) -> Path:
    """A notebook of code cells with ids ``cell-0``, ``cell-1``..."""
    nb = new_notebook()
    nb.cells = [new_code_cell(s, id=f"cell-{i}") for i, s in enumerate(sources)]
    nb.metadata["kernelspec"] = {"name": "python3-durable", "display_name": "durable"}
    path.parent.mkdir(parents=True, exist_ok=True)
    write(nb, path)
    return path


def journal_of(nb: Path) -> Path:
    return nb.parent / ".durable" / f"{nb.stem}.duckdb"


def tamper(nb: Path, *statements: tuple[str, list]) -> None:
    """Alice edits her journal by hand (after folding its log: the kernel has exited)."""
    con = duckdb.connect(str(journal_of(nb)))
    try:
        for sql, params in statements:
            con.execute(sql, params)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def query(nb: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(journal_of(nb)), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def share(alice: Path, nb: Path, bob: Path) -> Path:
    """Alice exports ``nb``; Bob imports it into his HOME; Bob's copy of the notebook."""
    archive = alice / f"{nb.stem}.dnb"
    out = cli("export", nb, "-o", archive, home=alice)
    assert out.returncode == 0, show(out)
    got = cli("import", archive, "--dir", bob / "shared", home=bob)
    assert got.returncode == 0, show(got)
    return bob / "shared" / nb.name


def marker_code(marker: Path) -> str:
    """Python that proves it ran by creating ``marker``."""
    return f"open({str(marker)!r}, 'w').close()"
