"""The IPython extension: load/unload, the cell event hooks, and wiring to the runtime.

Unloading removes every hook, magic and input transformer that loading added.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

from . import runtime
from .runtime import FRESH_LINE, Runtime, report

_loaded: dict[int, _Extension] = {}


class _Extension:
    """What one load added to a shell, so that unload can take it all back."""

    def __init__(self, shell: Any) -> None:
        from .magics import DurableMagics

        self.shell = shell
        self.rt = Runtime(os.environ.get("JPY_SESSION_NAME") or None)
        if getattr(shell, "parent_header", None):  # loaded by %load_ext inside a cell
            self.rt.announced()
        runtime.install(self.rt)
        self.magics = DurableMagics(shell, self.rt)
        shell.register_magics(self.magics)
        shell.events.register("pre_run_cell", self.pre_run_cell)
        shell.events.register("post_run_cell", self.post_run_cell)
        shell.input_transformers_cleanup.append(strip_fresh_line)
        atexit.register(self.rt.close)

    def unload(self) -> None:
        shell = self.shell
        shell.events.unregister("pre_run_cell", self.pre_run_cell)
        shell.events.unregister("post_run_cell", self.post_run_cell)
        if strip_fresh_line in shell.input_transformers_cleanup:
            shell.input_transformers_cleanup.remove(strip_fresh_line)
        mm = shell.magics_manager
        for kind in ("line", "cell"):
            mm.magics[kind].pop("durable", None)
        mm.registry.pop(type(self.magics).__name__, None)
        atexit.unregister(self.rt.close)
        self.rt.close("unloaded")
        runtime.install(None)

    # Hooks never raise: durable_nb must not be the reason a cell fails.
    def pre_run_cell(self, info: Any) -> None:
        try:
            self.rt.begin_cell(getattr(info, "cell_id", None), info.raw_cell or "")
        except Exception as exc:
            report(f"internal error before the cell ({type(exc).__name__}: {exc})", once="pre")

    def post_run_cell(self, result: Any) -> None:
        try:
            exc = result.error_before_exec or result.error_in_exec
            if exc is None:
                status, error = "ok", None
            else:
                status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
                error = f"{type(exc).__name__}: {exc}"
            self.rt.end_cell(status, error)
        except Exception as exc:
            report(f"internal error after the cell ({type(exc).__name__}: {exc})", once="post")


def strip_fresh_line(lines: list[str]) -> list[str]:
    """Input transformer: a first line ``%%durable fresh`` only marks the cell.

    The cell runs as ordinary code (so ``await`` and display work as usual); the
    line is blanked rather than removed so tracebacks keep their line numbers.
    """
    if lines and FRESH_LINE.match(lines[0]):
        return ["\n", *lines[1:]]
    return lines


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext durable_nb``: open the journal and start recording."""
    if id(ipython) not in _loaded:
        _loaded[id(ipython)] = _Extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Called by ``%unload_ext durable_nb``: stop recording and remove every hook."""
    ext = _loaded.pop(id(ipython), None)
    if ext is not None:
        ext.unload()
