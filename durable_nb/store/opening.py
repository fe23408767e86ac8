"""Connecting to a journal's DuckDB file: created atomically, or opened read-only.

A new journal is made in a temporary file beside its final name and moved into place
whole, so a full disk or a crash never leaves a 0-byte or half-made ``.duckdb`` that
every later kernel would call damaged.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import JournalCorrupt, JournalError, JournalLocked, JournalUnwritable
from . import files, stamp, template
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

    Returns the connection and whether the file is the one this user's durable_nb closed
    last, unchanged since (:func:`closed`, :mod:`.stamp`: its identity, and its nonce read
    through the connection): nothing in it to check. ``read_only`` opens an existing file
    without writing anything to it or its folder. Raises OSError or ``duckdb.Error`` (the
    caller names the journal and what to do).
    """
    duckdb = engine()  # imported on first need
    # DuckDB follows links: none where it or the log reads or writes (files.check_regular).
    files.check_folder(path.parent)
    files.check_regular(files.journal_files(path))
    # As this process, or else this user's durable_nb, last closed it (if one did).
    made = _CLOSED.pop(str(path), None) or stamp.read(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # A journal made now is taken as one this process closed (~60 ms less): a copy of
        # this user's signed template, holding its nonce, with no side file beside it,
        # that only this user could have replaced since (an identity only a private
        # folder gives; compared again once DuckDB has it open, below).
        if not path.exists() or path.stat().st_size == 0:
            made = create(path) or made
    with _no_progress_widget():
        con = duckdb.connect(str(path), read_only=read_only, config=SAFE_CONFIG)
    if made is None or stamp.identity(path) != made[0]:
        return con, False
    # The file DuckDB opened, not only the one stat() found at the path: it holds the
    # nonce written at the close the stamp vouches for (review4 R4-1, R4-2).
    return con, _closed_with(con, made[1])


def _closed_with(con: Any, nonce: str) -> bool:
    """Whether the open file holds ``nonce`` as its close's mark (a file that does not,
    or cannot say, is checked in full)."""
    try:
        ask = "SELECT value FROM main.meta WHERE key = ?"
        row = con.execute(ask, [stamp.CLOSED_KEY]).fetchone()
    except Exception:  # no such table, or a crafted one: the full check says what it is
        return False
    return row is not None and row[0] == nonce


def mark_closed(con: Any) -> str | None:
    """Write a fresh nonce into the journal as its last write before a clean close; None
    when it cannot be written (the next opening checks the file in full)."""
    nonce = secrets.token_hex(16)
    try:
        mark = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
        con.execute(mark, [stamp.CLOSED_KEY, nonce])
    except Exception:
        return None
    return nonce


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


def create(path: Path) -> tuple[stamp.Identity, str] | None:
    """Make an empty journal at ``path`` atomically (this user's only: 0600).

    Copied from this user's :mod:`.template` (or built and checkpointed) in
    ``.<name>.<pid>-<random>.new`` in the same folder, fsynced, then linked into place: a
    journal another kernel made meanwhile is never replaced. Whatever fails, the
    temporary files are removed. Returns, when the file at ``path`` is the copy of the
    template this call linked into place, its identity and the nonce it holds as its
    close's mark (as :func:`closed` remembers a journal); else None (another kernel's is
    used, the template was built in place, the file was replaced since).
    """
    placed, nonce = _place(path)
    if placed is None or nonce is None:
        return None
    made = stamp.identity(path)
    if made[0] is None or made[0][:2] != placed:  # not the inode this call wrote
        return None
    # A side file already there (a WAL unpacked beside it) is replayed by DuckDB's open:
    # what it holds was never this process's (review65 H1). The full check reads it.
    if any(side is not None for side in made[1:-1]):
        return None
    return made, nonce


def _empty(path: Path, duckdb: Any) -> tuple[bytes, str] | None:
    """The empty journal new ones copy (:data:`_EMPTY`): this process's, else this user's
    template, else built now and kept as the template; None when DuckDB left part of it
    in a WAL. Under :data:`TEMPLATE_LOCK`: one thread reads, builds or keeps it at a time."""
    global _EMPTY
    with TEMPLATE_LOCK:
        if _EMPTY is None:
            _EMPTY = template.load(duckdb.__version__)
        if _EMPTY is None:
            _EMPTY = _build_empty(path, duckdb)
            if _EMPTY is not None:  # all in the file: the next ones copy it
                template.save(duckdb.__version__, *_EMPTY)
        return _EMPTY


def _place(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """:func:`create`'s file, linked into place: the (device, inode) it wrote, or None
    when another kernel's is used (:func:`create` compares it with what is there); and the
    nonce the copy holds as its close's mark (None: built in place)."""
    duckdb = engine()
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.new")
    try:
        empty = _empty(path, duckdb)
        if empty is None:  # DuckDB left part of it in a WAL: built in place, each time
            _build(tmp, path, duckdb)
        else:
            tmp.write_bytes(empty[0])
        os.chmod(tmp, 0o600)
        _fsync(tmp)
        st = os.stat(tmp)
        placed: tuple[int, int] | None = st.st_dev, st.st_ino
        if path.exists() and path.stat().st_size == 0:  # left by an earlier version
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                placed = None  # another kernel made it first: that one is used
            except OSError:  # a file system without hard links
                if not path.exists():
                    os.rename(tmp, path)
        _fsync(path.parent)
        return placed, None if empty is None else empty[1]
    finally:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            leftover.unlink(missing_ok=True)


def _build_empty(path: Path, duckdb: Any) -> tuple[bytes, str] | None:
    """An empty journal's bytes and the nonce it holds as its close's mark, built in a
    folder of this process's own (never read back from the journal's folder, where
    another user could put a file in its place: review4 R4-3), or None when DuckDB left
    part of it in a WAL."""
    nonce = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="durable_nb-empty-") as folder:
        built = Path(folder) / "empty.duckdb"
        _build(built, path, duckdb, nonce)
        return None if Path(f"{built}.wal").exists() else (built.read_bytes(), nonce)


def _build(at: Path, path: Path, duckdb: Any, nonce: str | None = None) -> None:
    """Make the empty journal of ``path`` at ``at``: its tables (and ``nonce`` as its
    close's mark), checkpointed."""
    with _no_progress_widget():
        con = duckdb.connect(str(at), config=SAFE_CONFIG)
    try:
        migrate(path, con, made_here=True)
        if nonce is not None:
            con.execute("INSERT INTO meta (key, value) VALUES (?, ?)", [stamp.CLOSED_KEY, nonce])
        con.execute("CHECKPOINT")
    finally:
        con.close()


#: Journal path -> its identity when this process closed it (:func:`closed`).
_CLOSED: dict[str, tuple[stamp.Identity, str]] = {}
#: The bytes of an empty journal and its nonce as :func:`create` first made one in this
#: process, or as this user's durable_nb did (:mod:`.template`); no id: a journal gets
#: its own when it opens. New journals are copies (~0.1 s of DuckDB's connect, DDL and
#: checkpoint less).
_EMPTY: tuple[bytes, str] | None = None
#: Held while :data:`_EMPTY` is read, built or kept (:func:`_empty`); a test that sets it
#: anew holds it too, so that no other thread's opening comes between.
TEMPLATE_LOCK = threading.RLock()


def closed(path: Path, nonce: str | None) -> None:
    """Remember ``path`` as this process left it (a clean close that wrote ``nonce`` into
    it: :func:`mark_closed`): re-opened unchanged (no change time of its own or its WAL
    moved, the nonce read back through the connection), it holds nothing new to check;
    so for the next kernels too (:mod:`.stamp`). None (a journal opened read-only, whose
    folder is not written to, or a close that could not write it): nothing remembered."""
    if nonce is None:
        return
    with contextlib.suppress(OSError):
        made = stamp.identity(path)
        _CLOSED[str(path)] = made, nonce
        stamp.write(path, made, nonce)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_LOCK_PID = re.compile(r"\(PID (\d+)\)")


def classify(path: Path, exc: Exception) -> JournalError:
    """Turn a DuckDB or OS error met while opening into a message saying what to do
    (DuckDB's word for a Ctrl-C is raised as one: :meth:`JournalCorrupt.from_cause`)."""
    msg = str(exc)
    if "Could not set lock" in msg or "Conflicting lock" in msg:
        pid = _LOCK_PID.search(msg)
        return JournalLocked(str(path), int(pid.group(1)) if pid else None)
    if isinstance(exc, OSError) or any(
        s in msg for s in ("Read-only file system", "Permission denied", "No space left")
    ):
        return JournalUnwritable.from_cause(str(path), exc)
    return JournalCorrupt.from_cause(str(path), exc)
