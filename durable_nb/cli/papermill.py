"""The papermill engine ``durable``: ``papermill --engine durable in.ipynb out.ipynb``.

papermill's own engine (nbclient) runs the durable kernel as it runs any kernel: the
kernel does not know its notebook, cells have no identity it can use, and IPython's
history is written to disk. This engine runs the notebook as ``durable-nb run`` does:
the input path is the notebook's identity (its journal), cells are keyed by their ids
(derived from place and source for cells without), history stays in memory, and a run
after a failed one resumes: the cells that succeeded are skipped (their outputs come
from the last output notebook), the namespace is restored as of them, completed steps
replay. Registered through the ``papermill.engine`` entry point.

papermill is an optional extra: the engine class is made on first use (``DurableEngine``,
a module attribute), so importing this module never needs it.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any

import nbformat
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell

from . import plan
from .run import (
    HISTORY_IN_MEMORY,
    INJECTED,
    KERNEL,
    begin,
    code_indexes,
    keep_outputs,
    previous_outputs,
    send_cell_id,
    streams,
)

#: papermill's logger (papermill.log.logger).
logger = logging.getLogger("papermill")


def __getattr__(name: str) -> Any:
    if name == "DurableEngine":
        return _engine()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _engine() -> type:
    """The engine class; papermill is imported here."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine

    class DurableEngine(NBClientEngine):
        """papermill's nbclient engine, with the notebook's identity, cell ids and resume."""

        @classmethod
        def nb_kernel_name(cls, nb: Any, name: str | None = None) -> str:
            """The durable kernel, unless ``-k`` names another."""
            return name or KERNEL

        @classmethod
        def execute_notebook(
            cls, nb: Any, kernel_name: str, output_path: Any = None, **kwargs: Any
        ) -> Any:
            """papermill's run; the last output notebook is read before papermill rewrites it."""
            local = _local(output_path)
            kwargs["durable_previous"] = previous_outputs(local) if local is not None else {}
            return super().execute_notebook(nb, kernel_name, output_path=output_path, **kwargs)

        @classmethod
        def execute_managed_notebook(
            cls,
            nb_man: Any,
            kernel_name: str,
            log_output: bool = False,
            stdout_file: Any = None,
            stderr_file: Any = None,
            start_timeout: int = 60,
            execution_timeout: float | None = None,
            **kwargs: Any,
        ) -> Any:
            """Run ``nb_man.nb``; ``fresh=True`` (an engine argument) starts over."""
            path = _local(kwargs.pop("input_path", None))
            fresh = bool(kwargs.pop("fresh", False))
            previous = kwargs.pop("durable_previous", {})
            nb = nb_man.nb
            if path is not None:
                _file_ids(nb, path)
            for cell in nb.cells:  # papermill gives it a new random id each run
                if INJECTED in cell.metadata.get("tags", []):
                    cell.id = INJECTED
            plan.identify(nb)
            start, hidden = (0, []) if path is None else begin(path, nb, fresh, [])
            if start:
                logger.info(
                    f"durable: resuming at code cell {start + 1}: the cells before it succeeded "
                    "in an earlier run; restoring the namespace as of that run"
                )
            for name in ("timeout", "startup_timeout"):
                kwargs.pop(name, None)
            client = _Client(
                nb_man,
                kernel_name=kernel_name,
                timeout=execution_timeout or None,
                startup_timeout=start_timeout,
                log=logger,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
                extra_arguments=[HISTORY_IN_MEMORY],
                **kwargs,
            )
            client.durable = (path, hidden, set(code_indexes(nb)[:start]), previous)
            return client.execute()

    class _Client(PapermillNotebookClient):
        """Runs the hidden ``%durable`` commands first and skips cells done in an earlier run."""

        durable: tuple[Path | None, list[str], set[int], dict[str, Any]] = (None, [], set(), {})

        def execute(self, **kwargs: Any) -> Any:
            path = self.durable[0]
            if path is not None:
                kwargs.setdefault("env", dict(os.environ, JPY_SESSION_NAME=str(path)))
            self.on_cell_execute = lambda cell, cell_index: send_cell_id(self, cell)
            return super().execute(**kwargs)

        def papermill_execute_cells(self) -> None:
            _, hidden, skip, previous = self.durable
            for command in hidden:
                self._hidden(command)
            for index in sorted(skip):
                cell = self.nb.cells[index]
                self.nb_man.cell_start(cell, index)
                keep_outputs(cell, previous)
                self.nb_man.cell_complete(cell, index)
            for index, cell in enumerate(self.nb.cells):
                if index in skip:
                    continue
                try:
                    self.nb_man.cell_start(cell, index)
                    self.execute_cell(cell, index)
                except CellExecutionError as ex:
                    self.nb_man.cell_exception(self.nb.cells[index], cell_index=index, exception=ex)
                    break
                finally:
                    self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)

        def _hidden(self, command: str) -> None:
            """A ``%durable`` command run in the kernel, outside the notebook."""
            cell = new_code_cell(command)
            cell.metadata["durable_nb_hidden"] = True
            self.nb.cells.append(cell)
            try:
                self.execute_cell(cell, len(self.nb.cells) - 1, store_history=False)
            finally:
                self.nb.cells.pop()
            for text in streams(cell.outputs):
                logger.info(text)

    return DurableEngine


def _local(path: Any) -> Path | None:
    """A local file path papermill was given (not a URL, not a notebook object)."""
    if not isinstance(path, str | os.PathLike) or "://" in str(path):
        return None
    local = Path(path).expanduser().resolve()
    return local if local.is_file() or local.parent.is_dir() else None


def _file_ids(nb: Any, path: Path) -> None:
    """Give the cells the ids :func:`plan.identify` gives the file's cells.

    papermill upgrades a notebook without ids with random ones, new on every run; the ids
    derived from the file are the same on every run (and the same as ``durable-nb run``'s).
    """
    try:
        original = nbformat.read(path, as_version=4)
    except Exception:
        return

    def mine(cells: Any) -> list[Any]:
        return [c for c in cells if INJECTED not in c.get("metadata", {}).get("tags", [])]

    had = [bool(c.get("id")) for c in mine(original.cells)]
    plan.identify(original)
    ours, theirs = mine(nb.cells), mine(original.cells)
    if len(ours) != len(theirs):
        logger.warning("durable: the notebook papermill runs differs from its file; ids kept")
        return
    for cell, orig, kept in zip(ours, theirs, had, strict=True):
        if not kept:
            cell.id = orig.id
