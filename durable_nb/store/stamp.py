"""A journal's file as this user's durable_nb closed it: opened again unchanged, it is not
checked again.

At a clean close the identity of the ``.duckdb`` file and of DuckDB's WAL beside it
(device, inode, size, change and modification times) is signed with this user's secret
(:mod:`durable_nb.trust`, with the journal's path) into ``<stem>.closed`` beside them. A
kernel opening the journal again finds the same identity: the file holds what the last
check and this user's writes left, and the check of what a journal never holds (views,
macros, triggers: ~60 ms of DuckDB's time) is skipped. Any write to either file moves its
change time, which no one can set back; a file put in its place has another inode or
change time; a stamp not signed by this user, or for another path, is no stamp. Any
mismatch: the full check.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from .. import trust

#: The signature's domain: a stamp never verifies as any other signed thing.
DOMAIN = "journal-closed"
#: A stamp is a few hundred bytes: anything longer is not one (nor read whole).
MAX_BYTES = 4096

#: What identifies the file and its WAL: per file (dev, ino, size, ctime_ns, mtime_ns)
#: or None (no such file).
Identity = tuple[tuple[int, ...] | None, ...]


def stamp_path(journal: Path) -> Path:
    """Where the stamp of ``journal`` is kept: ``<stem>.closed`` beside it."""
    return journal.with_suffix(".closed")


def identity(journal: Path) -> Identity:
    """The file's and its DuckDB WAL's identity: another file put in its place, or any
    write to it or its WAL, differs."""
    out: list[tuple[int, ...] | None] = []
    for f in (journal, Path(f"{journal}.wal")):
        try:
            st = os.stat(f)
        except FileNotFoundError:
            out.append(None)
        else:
            out.append((st.st_dev, st.st_ino, st.st_size, st.st_ctime_ns, st.st_mtime_ns))
    return tuple(out)


def _signed(journal: Path, files: list) -> str:
    return json.dumps([str(journal), files], separators=(",", ":"))


def write(journal: Path, ident: Identity) -> None:
    """Stamp ``journal`` as closed with identity ``ident`` (this user's only: 0600,
    written whole). A folder that refuses it: no stamp, the next opening checks."""
    files = [list(f) if f is not None else None for f in ident]
    text = json.dumps({"files": files, "sig": trust.sign(DOMAIN, _signed(journal, files))})
    path = stamp_path(journal)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(OSError):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def read(journal: Path) -> Identity | None:
    """The identity this user stamped ``journal`` with at its last clean close, or None
    (no stamp, a damaged one, one for another path or not signed by this user)."""
    try:
        with open(stamp_path(journal), "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        stamp = json.loads(raw) if len(raw) <= MAX_BYTES else None
    except (OSError, ValueError):
        return None
    files = stamp.get("files") if type(stamp) is dict else None
    if not (type(files) is list and len(files) == 2 and all(
        f is None or (type(f) is list and len(f) == 5 and all(type(n) is int for n in f))
        for f in files
    )):  # fmt: skip
        return None
    if not trust.verify(DOMAIN, _signed(journal, files), stamp.get("sig")):
        return None
    return tuple(tuple(f) if f is not None else None for f in files)
