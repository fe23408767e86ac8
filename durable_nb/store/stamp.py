"""A journal's file as this user's durable_nb closed it (or last left it): opened again
unchanged, it is not checked again.

At a clean close, and by a running kernel once DuckDB's file was written and a second
passed with nothing more appended (``Journal.stamp``: a kernel killed then), a random
nonce is written into the journal (``meta.closed``, its last write), and the identity of
the ``.duckdb`` file and of the WALs DuckDB reads beside it
(:data:`DUCKDB_SIDES`; device, inode, size, change and modification times, or absent) is
signed with it and with this user's secret (:mod:`durable_nb.trust`, with the journal's
path) into ``<stem>.closed``. A kernel opening the journal again that finds the same
identity, and then reads the same nonce *through its connection*
(:func:`~.opening.connect`: the file DuckDB opened, not only the path stat() saw: review4
R4-1, R4-2), skips the check of what a journal never holds (views, macros, triggers: ~60
ms of DuckDB's time). Any write to one of these files moves its change time, which no
one can set back; a file put in its place (during a session too: the nonce went into the
file this process had open) has another inode, change time or no such nonce; a stamp not
signed by this user, or for another path, is no stamp. Any mismatch: the full check.

A journal :func:`~.opening.create` has just linked into place from this user's signed
template (the inode it wrote, holding the template's nonce, no side file DuckDB would
replay beside it) counts as one this process closed.

Only a folder no one else can change has an identity (:func:`private`): in one another
user can write to, they could put a WAL or another file in place between the identity's
look and DuckDB's open (review4). Its journals are checked in full at every opening
(never refused for it), and get no stamp.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

from .. import trust
from .files import DUCKDB_SIDES, duckdb_side_paths, open_regular, replace_whole

#: The signature's domain: a stamp never verifies as any other signed thing.
DOMAIN = "journal-closed"
#: The ``meta`` key of the nonce a clean close writes last (not signed: nothing loads it).
CLOSED_KEY = "closed"
#: A stamp is a few hundred bytes: anything longer is not one (nor read whole).
MAX_BYTES = 4096


#: What identifies the file and its side files: per file (dev, ino, size, ctime_ns,
#: mtime_ns) or None (no such file); last, the folder's (dev, ino). (-1, a random number)
#: for what cannot be vouched for: a folder others can change, a file stat() fails on.
Identity = tuple[tuple[int, ...] | None, ...]
#: Links followed at most while a folder's path is checked (Linux's own limit).
MAX_LINKS = 40


def stamp_path(journal: Path) -> Path:
    """Where the stamp of ``journal`` is kept: ``<stem>.closed`` beside it."""
    return journal.with_suffix(".closed")


def identity(journal: Path) -> Identity:
    """The file's and its DuckDB side files' identity: another file put in place of one,
    any write to one, or one that appears or goes, differs."""
    out: list[tuple[int, ...] | None] = []
    for f in (journal, *duckdb_side_paths(journal)):
        try:
            st = os.stat(f)
        except FileNotFoundError:
            out.append(None)
        except OSError:  # there, but stat() fails on it (a link to itself): unknown
            out.append(_unknown())
        else:
            out.append((st.st_dev, st.st_ino, st.st_size, st.st_ctime_ns, st.st_mtime_ns))
    folder = private(journal.parent)
    # A folder others can change: an identity never given twice, so no stamp (nor this
    # process's memory of its close) vouches for what is in it.
    out.append((folder.st_dev, folder.st_ino) if folder else _unknown())
    return tuple(out)


def _unknown() -> tuple[int, int]:
    """An identity of nothing anyone can vouch for: never the same twice."""
    return (-1, secrets.randbits(62))


def private(folder: Path) -> os.stat_result | None:
    """The folder's stat when no other user can change what ``folder`` names, else None.

    ``folder`` is this user's and no one else may write to it (group or others: a sticky
    bit does not help, since the side files DuckDB reads are mostly absent, and anyone may
    create them). Every folder on the way to it, and every link followed, is this user's
    or root's, and others may write to such a folder only when it is sticky (``/tmp``:
    they cannot rename what they do not own). POSIX ACLs show in the group bits.
    """
    uid = os.geteuid()
    todo = list(reversed(folder.absolute().parts))
    at = Path(todo.pop())  # the root
    links = 0
    try:
        st = os.stat(at)
        while todo:
            if not _ours_or_roots(st, uid):  # ``at``, where the next part is looked up
                return None
            part = todo.pop()
            if part == "..":  # ``at`` has no link in it: its parent was checked on the way
                at = at.parent
                st = os.stat(at)
                continue
            entry = os.lstat(at / part)
            if stat.S_ISLNK(entry.st_mode):  # its target's parts are walked in turn
                links += 1
                if links > MAX_LINKS or entry.st_uid not in (uid, 0):
                    return None
                target = Path(os.readlink(at / part))
                todo.extend(reversed(target.parts[1:] if target.is_absolute() else target.parts))
                if target.is_absolute():
                    at = Path(target.anchor)
                    st = os.stat(at)
                continue
            if not stat.S_ISDIR(entry.st_mode):
                return None
            at, st = at / part, entry
    except OSError:
        return None
    return st if st.st_uid == uid and not st.st_mode & 0o022 else None


def _ours_or_roots(st: os.stat_result, uid: int) -> bool:
    """Whether only this user or root can change what the folder ``st`` holds: others
    may write to it only when it is sticky."""
    return st.st_uid in (uid, 0) and (not st.st_mode & 0o022 or bool(st.st_mode & stat.S_ISVTX))


def _signed(journal: Path, files: list, nonce: str) -> str:
    return json.dumps([str(journal), files, nonce], separators=(",", ":"))


def write(journal: Path, ident: Identity, nonce: str) -> None:
    """Stamp ``journal`` as closed with identity ``ident`` and the ``nonce`` its file holds
    (this user's only: 0600, written whole). A folder that refuses it, or that others can
    change (:func:`private`): no stamp, the next opening checks."""
    if ident[-1] is None or any(f is not None and f[0] < 0 for f in ident):
        return
    files = [list(f) if f is not None else None for f in ident]
    sig = trust.sign(DOMAIN, _signed(journal, files, nonce))
    text = json.dumps({"files": files, "nonce": nonce, "sig": sig})
    replace_whole(stamp_path(journal), text.encode())


def read(journal: Path) -> tuple[Identity, str] | None:
    """The identity and nonce this user stamped ``journal`` with at its last clean close,
    or None (no stamp, a damaged one, one for another path or not signed by this user)."""
    try:
        with os.fdopen(open_regular(stamp_path(journal)), "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        stamp = json.loads(raw) if len(raw) <= MAX_BYTES else None
    except (OSError, ValueError):
        return None
    files = stamp.get("files") if type(stamp) is dict else None
    if not (type(files) is list and len(files) == 2 + len(DUCKDB_SIDES) and all(
        f is None or (type(f) is list and len(f) == 5 and all(type(n) is int for n in f))
        for f in files[:-1]
    ) and type(files[-1]) is list and len(files[-1]) == 2 and all(
        type(n) is int and n >= 0 for n in files[-1]
    )):  # fmt: skip
        return None
    nonce = stamp.get("nonce")
    if type(nonce) is not str or not trust.verify(DOMAIN, _signed(journal, files, nonce),
                                                   stamp.get("sig")):  # fmt: skip
        return None
    return tuple(tuple(f) if f is not None else None for f in files), nonce
