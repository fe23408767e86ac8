"""Where a journal lives and which files make it up: DuckDB's file and WAL, our log, blobs.

Pure path handling; copying a journal (for a read while a live kernel holds it) is here too.
"""

from __future__ import annotations

import os
import shutil
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


def duckdb_wal_path(journal: Path) -> Path:
    """DuckDB's own write-ahead log, ``<stem>.duckdb.wal`` (not ours)."""
    return Path(f"{journal}.wal")


def blobs_path(journal: Path) -> Path:
    """The folder of blob files: ``<stem>.blobs``."""
    return journal.with_suffix(".blobs")


def journal_files(journal: Path) -> list[Path]:
    """The files that hold a journal's records (without its blob folder), existing or not."""
    return [journal, duckdb_wal_path(journal), log_path(journal), legacy_log_path(journal)]


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
