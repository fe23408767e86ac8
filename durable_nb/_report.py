"""One-line messages to the person: ``durable_nb: ...`` (problems on stderr, notes on stdout).

Imports nothing of the package, so any module may report without an import cycle.
"""

from __future__ import annotations

import re
import sys

#: C0 and C1 control characters (ESC, CR, backspace, CSI...), DEL, and bidi overrides.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

_reported: set[str] = set()


def report(message: str, once: str | None = None) -> None:
    """Write one ``durable_nb:`` line to stderr; with ``once``, only the first time."""
    if once is not None:
        if once in _reported:
            return
        _reported.add(once)
    print(f"durable_nb: {message}", file=sys.stderr, flush=True)


def remember(once: str) -> None:
    """Count the message of key ``once`` as reported (it is shown another way)."""
    _reported.add(once)


def printable(text: object, newlines: bool = False) -> str:
    """``text`` safe for a terminal: control characters shown as ``\\xNN`` escapes.

    Journal text may come from anyone: an escape sequence in it must not move the
    cursor, retitle the window or overwrite a line the person relies on (the trust line).
    With ``newlines``, line breaks are kept (multi-line text such as a cell's log).
    """

    def escape(m: re.Match[str]) -> str:
        c = m.group()
        if newlines and c == "\n":
            return c
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    return _CONTROL.sub(escape, str(text))


def note(message: str) -> None:
    """Write one ``durable_nb:`` line of information (not a problem) to stdout."""
    print(f"durable_nb: {message}", flush=True)
