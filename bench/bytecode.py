"""durable_nb's bytecode, compiled as an installed package has it (pip compiles at install).

An editable install compiles on first import, but not where PYTHONDONTWRITEBYTECODE is set
(as on this machine): each kernel then compiled durable_nb's ~13,000 lines again as it
started, most of it in the journal's opening thread, which the first cell waits for; no
installed copy pays that. Each bench compiles it first (the plain side is unaffected).
"""

from __future__ import annotations

import compileall
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "durable_nb"


def compile_package() -> None:
    """Write ``__pycache__`` for every module of the package (quietly; kept if current)."""
    compileall.compile_dir(str(PACKAGE), quiet=1)
