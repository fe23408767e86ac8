"""One-line messages to the person, on stderr: ``durable_nb: ...``.

Imports nothing of the package, so any module may report without an import cycle.
"""

from __future__ import annotations

import sys

_reported: set[str] = set()


def report(message: str, once: str | None = None) -> None:
    """Write one ``durable_nb:`` line to stderr; with ``once``, only the first time."""
    if once is not None:
        if once in _reported:
            return
        _reported.add(once)
    print(f"durable_nb: {message}", file=sys.stderr, flush=True)
