"""Where a journal lives and which files make it up: DuckDB's file and WAL, our log, blobs.

Path handling; copying a journal (for a read while a live kernel holds it), opening a side
file safely and replacing one whole are here too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import JournalCorrupt


def resolve_path(source: str | os.PathLike | None = None, session: str | None = None) -> Path:
    """Where the journal of ``source`` (a notebook or script path) lives.

    ``.durable/<stem>.duckdb`` beside the source; ``DURABLE_NB_DIR`` replaces the
    folder; with no source, ``.durable/<session>.duckdb`` in the working directory: a
    kernel that does not know its notebook journals apart, per kernel session (without a
    session, ``session.duckdb``).
    """
    src = Path(source).expanduser() if source else None
    stem = src.stem if src else (session or "session")
    folder = os.environ.get("DURABLE_NB_DIR")
    if folder:
        base = Path(folder).expanduser()
    else:
        base = (src.parent if src else Path.cwd()) / ".durable"
    return (base / f"{stem}.duckdb").absolute()


def log_path(journal: Path) -> Path:
    """Our append log: ``<stem>.log``."""
    return journal.with_suffix(".log")


def legacy_log_path(journal: Path) -> Path:
    """Where earlier versions kept the append log (``<stem>.wal``); folded on open."""
    return journal.with_suffix(".wal")


#: DuckDB's files beside ``<stem>.duckdb`` that an opening may read: its WAL, and (DuckDB
#: 1.4+) the WAL of a checkpoint it did not finish, which it replays when the WAL holds a
#: checkpoint marker (a read-only connection reads it in place: review4), and the one it
#: merges them into.
DUCKDB_SIDES = (".wal", ".wal.checkpoint", ".wal.recovery")


def duckdb_side_paths(journal: Path) -> list[Path]:
    """DuckDB's files beside the journal (:data:`DUCKDB_SIDES`), existing or not."""
    return [Path(f"{journal}{side}") for side in DUCKDB_SIDES]


def blobs_path(journal: Path) -> Path:
    """The folder of blob files: ``<stem>.blobs``."""
    return journal.with_suffix(".blobs")


def journal_files(journal: Path) -> list[Path]:
    """The files that hold a journal's records (without its blob folder), existing or not:
    a copy without DuckDB's checkpoint WAL would miss what was committed during the
    checkpoint a kernel holding the journal was making."""
    return [journal, *duckdb_side_paths(journal), log_path(journal), legacy_log_path(journal)]


def not_regular(path: Path) -> JournalCorrupt:
    """The error for a journal file that is a link, a pipe or a folder: never opened."""
    why = "a link, a hard link, a pipe or a folder, as a repository or an archive can carry"
    return JournalCorrupt(str(path), f"{path} is not a regular file of its own ({why}): it is "
                          "not opened, and this kernel runs un-journaled. Move it aside, then "
                          "restart the kernel.")  # fmt: skip


def check_regular(paths: list[Path]) -> None:
    """Raise :func:`not_regular`'s error for the first of ``paths`` that exists and is not a
    regular file, or (but a ``.duckdb``) has other names. DuckDB opens its files through
    links: a ``<stem>.duckdb.wal`` shipped as a link to a file of the user's had that file
    overwritten by the opening; DuckDB writes its WALs in place, and we empty the log at
    each fold, so a hard link's other name would change too. (A ``.duckdb`` is checked by
    DuckDB before it writes; a new one is linked into place: :func:`opening.create`.)"""
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode) or (st.st_nlink > 1 and path.suffix != ".duckdb"):
            raise not_regular(path)


def copy_journal(journal: Path, dest: Path, blobs: bool = False) -> Path:
    """Copy a journal's files into folder ``dest``; return the copy's ``.duckdb`` path.

    With ``blobs``, the blob folder's files are mirrored with symbolic links: blobs never
    change. Opening the copy folds the logs copied with it, so no record is missed. A
    journal file that is no regular file is not read (:func:`not_regular`).
    """
    for src in journal_files(journal):
        try:
            fd = open_regular(src)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise not_regular(src) from exc
            raise
        with os.fdopen(fd, "rb") as f, open(dest / src.name, "xb") as out:
            shutil.copyfileobj(f, out, 1 << 20)
    folder = blobs_path(journal)
    if blobs and folder.is_dir():
        mirror = dest / folder.name
        mirror.mkdir()
        for blob in folder.iterdir():
            if not blob.name.startswith(".") and blob.is_file() and not blob.is_symlink():
                (mirror / blob.name).symlink_to(blob)
    return dest / journal.name


def remove_journal(journal: Path) -> None:
    """Delete a journal's files and its blob folder (before an import replaces it); a link
    in their place is removed, never what it points to."""
    for stale in journal_files(journal):
        stale.unlink(missing_ok=True)
    folder = blobs_path(journal)
    if folder.is_symlink():
        folder.unlink()
    elif folder.is_dir():
        shutil.rmtree(folder)


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """A descriptor of ``path`` opened with ``flags``, never through a link and never
    blocking (a FIFO someone's archive carried would hang the opening: review4 R4-4, R4-6).

    Raises OSError (``EINVAL`` for a link or anything but a regular file).
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, mode)
    except OSError as exc:
        # The last part is a link, a folder (opened for writing), a FIFO (for writing).
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise OSError(errno.EINVAL, "not a regular file", str(path)) from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def replace_whole(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` whole, as :func:`write_whole`; a folder that refuses it:
    nothing is written, and the caller goes on without it."""
    with contextlib.suppress(OSError):
        write_whole(path, lambda f: f.write(data))


def write_whole(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Have ``write`` fill a new file of a random name in ``path``'s folder (this user's
    only: 0600; O_EXCL: never a link planted there, review4 R4-5), then put it at ``path``
    whole: a link at ``path`` is replaced, never written through. Raises OSError."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w+b") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_folder(folder: Path) -> None:
    """Raise when a journal's folder is a link, unless it is ``DURABLE_NB_DIR`` (the
    person's own choice): a ``.durable`` shipped as a link (``.durable -> ../..``, which a
    repository can carry) put a journal's files among the user's own, where the fold
    emptied a ``<stem>.log`` and DuckDB deleted a ``<stem>.duckdb.wal`` (helper-57)."""
    named = os.environ.get("DURABLE_NB_DIR")
    if folder.is_symlink() and not (named and folder == Path(named).expanduser().absolute()):
        raise JournalCorrupt(str(folder), f"{folder} is a link (as a repository or an archive "
                             "can carry): no journal is kept through it, and this kernel runs "
                             "un-journaled. Move it aside (DURABLE_NB_DIR keeps journals "
                             "elsewhere), then restart the kernel.")  # fmt: skip
