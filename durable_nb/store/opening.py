"""Connecting to a journal's DuckDB file: created atomically, or opened read-only.

A new journal is made in a temporary file beside its final name and moved into place
whole, so a full disk or a crash never leaves a 0-byte or half-made ``.duckdb`` that
every later kernel would call damaged.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import JournalCorrupt, JournalError, JournalLocked, JournalUnwritable
from . import stamp, template
from .schema import MACROS, SAFE_CONFIG, migrate


def engine() -> Any:
    """DuckDB's compiled module: ``connect``, ``Error`` and the rest the journal uses.

    DuckDB 2 ships it apart (``_duckdb``): importing it alone takes ~0.02 s, where the
    ``duckdb`` package adds ~0.07 s of a Python API the journal does not use (a notebook
    that imports ``duckdb`` gets the same module underneath). Older DuckDB: the package.
    """
    try:
        import _duckdb as duckdb
    except ImportError:
        import duckdb
    return duckdb


def connect(path: Path, read_only: bool = False) -> tuple[Any, bool]:
    """A DuckDB connection to journal ``path``; a missing (or 0-byte) file is created first.

    Returns the connection and whether the file is the one :func:`create` made just now
    (the same inode, not another kernel's), or the one this process closed last, unchanged
    since (:func:`closed`): nothing in it to check. ``read_only`` opens
    an existing file without writing anything to it or its folder. Raises OSError or
    ``duckdb.Error`` (the caller names the journal and what to do).
    """
    duckdb = engine()  # imported on first need
    # As this process, or else this user's durable_nb, last closed it (if one did).
    made = _CLOSED.pop(str(path), None) or stamp.read(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if (not path.exists() or path.stat().st_size == 0) and create(path):
            made = stamp.identity(path)  # 0 bytes hold no record: made now
    with _no_progress_widget():
        con = duckdb.connect(str(path), read_only=read_only, config=SAFE_CONFIG)
    return con, made is not None and stamp.identity(path) == made


class MacroCheck:
    """Whether a journal's file holds a macro, asked on a cursor of its own in a thread.

    DuckDB answers (:data:`~.schema.MACROS`) by listing its ~3,300 own functions, ~40 ms
    with the interpreter released: on the other core, while the opening reads the file's
    other listings and schema version. :func:`~.schema.migrate` waits for the answer
    before it writes anything, and refuses a file that holds one.
    """

    def __init__(self, con: Any) -> None:
        with _no_progress_widget():  # a cursor is a connection: no widget for it either
            self._cursor = con.cursor()
        self._found: bool | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._ask, daemon=True, name="durable_nb-check")
        self._thread.start()

    def _ask(self) -> None:
        try:
            self._found = bool(self._cursor.execute(MACROS).fetchall())
        except BaseException as exc:  # raised where the answer is read
            self._error = exc
        finally:
            with contextlib.suppress(Exception):
                self._cursor.close()

    def wait(self) -> None:
        """Return once the question is answered (or failed): the cursor is closed."""
        self._thread.join()

    def found(self) -> bool:
        """Whether the file holds a macro; raises what asking met (``duckdb.Error``)."""
        self.wait()
        if self._error is not None:
            raise self._error
        return bool(self._found)


def macros(con: Any, made_here: bool) -> MacroCheck | None:
    """The file's macros, being listed (:class:`MacroCheck`); None: nothing to check."""
    return None if made_here else MacroCheck(con)


class _NoWidgets:
    """A meta path finder refusing ``ipywidgets`` to one thread (any other imports it)."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "ipywidgets" and threading.get_ident() == self.thread:
            raise ImportError("durable_nb's journal connection shows no progress bar")


@contextlib.contextmanager
def _no_progress_widget() -> Iterator[None]:
    """Connect without DuckDB's Jupyter progress bar, and without importing ipywidgets.

    In a kernel, each new DuckDB connection imports ipywidgets (~0.08 s of the kernel's
    start) to give itself a progress bar widget, which a slow journal query would then
    show in the person's cell. Refused ipywidgets in this thread only, DuckDB turns the
    bar off for this connection; the notebook's own connections are left as they were
    (DuckDB tries the import again for each).
    """
    if "IPython" not in sys.modules or "ipywidgets" in sys.modules:
        yield  # no kernel (DuckDB shows no widget), or nothing left to save
        return
    finder = _NoWidgets()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def create(path: Path) -> bool:
    """Make an empty journal at ``path`` atomically (this user's only: 0600).

    Built and checkpointed (or copied from this user's :mod:`.template`) in
    ``.<name>.<pid>-<random>.new`` in the same folder, fsynced, then linked into place: a
    journal another kernel made meanwhile is never replaced. Whatever fails, the
    temporary files are removed. Returns False when another kernel's is used.
    """
    global _EMPTY
    duckdb = engine()
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.new")
    try:
        if _EMPTY is None:
            _EMPTY = template.load(duckdb.__version__)
        if _EMPTY is None:
            with _no_progress_widget():
                con = duckdb.connect(str(tmp), config=SAFE_CONFIG)
            try:
                migrate(path, con, made_here=True)
                con.execute("CHECKPOINT")
            finally:
                con.close()
            if not Path(f"{tmp}.wal").exists():  # all in the file: the next ones copy it
                _EMPTY = tmp.read_bytes()
                template.save(duckdb.__version__, _EMPTY)
        else:
            tmp.write_bytes(_EMPTY)
        os.chmod(tmp, 0o600)
        _fsync(tmp)
        made = True
        if path.exists() and path.stat().st_size == 0:  # left by an earlier version
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                made = False  # another kernel made it first: that one is used
            except OSError:  # a file system without hard links
                if not path.exists():
                    os.rename(tmp, path)
        _fsync(path.parent)
        return made
    finally:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            leftover.unlink(missing_ok=True)


#: Journal path -> its identity when this process closed it (:func:`closed`).
_CLOSED: dict[str, stamp.Identity] = {}
#: The bytes of an empty journal as :func:`create` first made one in this process, or as
#: this user's durable_nb did (:mod:`.template`); no id: a journal gets its own when it
#: opens. New journals are copies (~0.1 s of DuckDB's connect, DDL and checkpoint less).
_EMPTY: bytes | None = None


def closed(path: Path, stamped: bool = True) -> None:
    """Remember ``path`` as this process left it (a clean close): re-opened unchanged (no
    change time of its own or its WAL moved), it holds nothing new to check. ``stamped``:
    so for the next kernels too (:mod:`.stamp`); not for a journal opened read-only,
    whose folder is not written to."""
    with contextlib.suppress(OSError):
        _CLOSED[str(path)] = made = stamp.identity(path)
        if stamped:
            stamp.write(path, made)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_LOCK_PID = re.compile(r"\(PID (\d+)\)")


def classify(path: Path, exc: Exception) -> JournalError:
    """Turn a DuckDB or OS error met while opening into a message saying what to do."""
    msg = str(exc)
    if "Could not set lock" in msg or "Conflicting lock" in msg:
        pid = _LOCK_PID.search(msg)
        return JournalLocked(str(path), int(pid.group(1)) if pid else None)
    if isinstance(exc, OSError) or any(
        s in msg for s in ("Read-only file system", "Permission denied", "No space left")
    ):
        return JournalUnwritable.from_cause(str(path), exc)
    return JournalCorrupt.from_cause(str(path), exc)
