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
from pathlib import Path


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


def copy_journal(journal: Path, dest: Path, blobs: bool = False) -> Path:
    """Copy a journal's files into folder ``dest``; return the copy's ``.duckdb`` path.

    With ``blobs``, the blob folder is mirrored with symbolic links: blobs never change.
    Opening the copy folds the logs copied with it, so no record is missed.
    """
    for src in journal_files(journal):
        if src.exists():
            shutil.copyfile(src, dest / src.name)
    folder = blobs_path(journal)
    if blobs and folder.is_dir():
        mirror = dest / folder.name
        mirror.mkdir()
        for blob in folder.iterdir():
            if not blob.name.startswith("."):
                (mirror / blob.name).symlink_to(blob)
    return dest / journal.name


def remove_journal(journal: Path) -> None:
    """Delete a journal's files and its blob folder (before an import replaces it)."""
    for stale in journal_files(journal):
        stale.unlink(missing_ok=True)
    if blobs_path(journal).is_dir():
        shutil.rmtree(blobs_path(journal))


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """A descriptor of ``path`` opened with ``flags``, never through a link and never
    blocking (a FIFO someone's archive carried would hang the opening: review4 R4-4, R4-6).

    Raises OSError (``EINVAL`` for a link or anything but a regular file).
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the last part is a link
            raise OSError(errno.EINVAL, "not a regular file", str(path)) from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def replace_whole(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` whole (this user's only: 0600) through a new file of a
    random name in its folder (O_EXCL: never a link planted there, review4 R4-5). A
    folder that refuses it: nothing is written, and the caller goes on without it."""
    tmp = None
    with contextlib.suppress(OSError):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
