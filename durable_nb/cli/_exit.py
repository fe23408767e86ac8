"""The exit codes of ``durable-nb`` and what each means.

Commands end early by raising :class:`~durable_nb.errors.CommandError` with one of them.
"""

from __future__ import annotations

#: Every cell succeeded / a cell (or the command) failed / bad usage, missing or damaged
#: file / the journal is held by a live kernel (another process has it open).
OK, FAILED, USAGE, HELD = 0, 1, 2, 3

EPILOG = (
    "exit codes: 0 success; 1 a cell failed (run: run it again to resume); 2 bad usage, "
    "missing notebook or journal, damaged file; 3 the journal is held by a live kernel "
    "(stop it, or pass --copy to read a snapshot copy)"
)
