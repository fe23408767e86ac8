"""Content-addressed payload files beside the journal, for payloads too big for DuckDB.

A blob's name is the xxh3-128 of its content, so identical data is stored once; big
buffers are cut into 1 MiB chunks so that changing a slice rewrites only that slice.
"""

from __future__ import annotations

import contextlib
import functools
import mmap
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import xxhash

from .errors import BlobDamaged

#: Payloads at least this big go to blob files instead of DuckDB rows.
BLOB_THRESHOLD = 1 << 20
#: Size of the chunks big buffers are cut into (the last one may be shorter).
CHUNK = 1 << 20


#: What a blob's (or chunk's) name is: its xxh3-128 as 32 lowercase hex digits.
NAME = re.compile(r"[0-9a-f]{32}")
#: A temporary file of a write (``tempfile.mkstemp``'s names, prefix ``.tmp-``).
_TMP = re.compile(r"\.tmp-[a-z0-9_]{8}")


def is_name(name: object) -> bool:
    """True when ``name`` can be a blob's name (a journal may hold anything: check first)."""
    return type(name) is str and NAME.fullmatch(name) is not None


def referenced(stream_chunks: object, buffers: object) -> set[str]:
    """The blob names a payload row's ``stream_chunks`` and ``buffers`` columns list.

    Both are JSON a journal holds (``[size, [names]]`` and ``[[size, [names]], ...]``),
    written by anyone: malformed or deeply nested text, or names that are not content
    hashes, are left out (a load refuses that payload), never raised.
    """
    import json

    found: set[str] = set()
    for raw, many in ((stream_chunks, False), (buffers, True)):
        if type(raw) is not str or not raw or len(raw) > 1 << 26:
            continue
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        for entry in value if many and type(value) is list else [value]:
            if type(entry) is list and len(entry) == 2 and type(entry[1]) is list:
                found.update(n for n in entry[1] if is_name(n))
    return found


#: From this many chunks on, :func:`chunk_names` hashes in threads (xxhash releases the
#: GIL): a cell that reads a 200 MB array checks it in ~half the time on two cores.
PARALLEL_CHUNKS = 16


def chunk_names(data: bytes | memoryview) -> list[str]:
    """The names the chunks of ``data`` have (or would have) in the store."""
    view = memoryview(data).cast("B")

    def names(part: range) -> list[str]:
        return [xxhash.xxh3_128_hexdigest(view[i : i + CHUNK]) for i in part]

    starts = range(0, len(view), CHUNK)
    workers = min(4, os.cpu_count() or 1, len(starts) // (PARALLEL_CHUNKS // 2))
    if workers < 2:
        return names(starts)
    # Contiguous parts, one a thread; this thread hashes the first.
    step = -(-len(starts) // workers)
    parts = [starts[k : k + step] for k in range(0, len(starts), step)]
    with ThreadPoolExecutor(len(parts) - 1, thread_name_prefix="durable_nb-hash") as pool:
        rest = [pool.submit(names, part) for part in parts[1:]]
        out = names(parts[0])
        for future in rest:
            out += future.result()
    return out


#: Buffers at least this big are mapped memory, filled by the OS in one call.
MAPPED = 16 << 20


def buffer(nbytes: int) -> memoryview:
    """A writable buffer of ``nbytes`` whose content is to be overwritten whole.

    A big one is anonymous memory mapped apart. Where the OS gives transparent huge pages
    on request (Linux, ``enabled`` set to ``madvise`` or ``always``) it is asked for them
    (``MADV_HUGEPAGE``) and its pages come as the reads fill it, 2 MiB a fault: 200 MB in
    ~0.1 s, read included, against ~0.2-0.3 s for 4 KiB pages handed over at once
    (``MAP_POPULATE``, used elsewhere; both measured on this 2-core VM under load, and
    ~2x less CPU than the faults of a fresh allocation). The buffer owns the mapping: it
    is unmapped when the last array over it goes. Where neither is there (or the mapping
    is refused) and for small ones: ``np.empty``, which skips the zero-filling a
    bytearray does.
    """
    populate = getattr(mmap, "MAP_POPULATE", 0)
    huge = nbytes >= MAPPED and _huge_pages_on_request()
    if nbytes >= MAPPED and (populate or huge):
        try:
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
            if not huge:
                return memoryview(mmap.mmap(-1, nbytes, flags=flags | populate))
            mapped = mmap.mmap(-1, nbytes, flags=flags)
            with contextlib.suppress(OSError):  # a hint: 4 KiB pages otherwise
                mapped.madvise(mmap.MADV_HUGEPAGE)
            return memoryview(mapped)
        except (OSError, ValueError):
            pass  # e.g. a mapping limit reached: ordinary memory
    import numpy as np

    return memoryview(np.empty(nbytes, dtype=np.uint8)).cast("B")


@functools.cache  # read on a restore's first big buffer, not as a kernel starts
def _huge_pages_on_request() -> bool:
    """Whether this OS gives transparent huge pages to memory that asks for them."""
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        return False
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled", "rb") as f:
            mode = f.read(256)
    except OSError:
        return False
    return b"[madvise]" in mode or b"[always]" in mode


class BlobStore:
    """A folder of immutable files named by the hash of their content."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._undo: dict[int, list[str]] = {}  # thread -> blobs it wrote in undone_on_error

    def path(self, name: object) -> Path:
        """The file of blob ``name``; a name that is not a content hash is damage.

        Names come from the journal, which anyone may have written: one like
        ``../../secret`` or ``/proc/self/environ`` never leaves this folder.

        Raises
        ------
        BlobDamaged
            When ``name`` is not 32 lowercase hex digits.
        """
        if not is_name(name):
            raise BlobDamaged(f"{self.folder}/{str(name)[:80]!r} (not a blob name)")
        return self.folder / name

    def put(self, data: bytes | memoryview, name: str | None = None, sync_dir: bool = True) -> str:
        """Store ``data`` durably and return its name.

        Written to a temporary file, fsynced, renamed into place and the folder
        fsynced (at once, or by :meth:`sync_dir` after a batch), so a crash leaves
        either the whole blob or none of it.
        """
        name = name or xxhash.xxh3_128_hexdigest(data)
        if not os.path.exists(self.path(name)):
            self._put_many([(name, data)])
        if sync_dir:
            self.sync_dir()
        return name

    def _put_many(self, items: list[tuple[str, bytes | memoryview]]) -> None:
        """Write each ``(name, data)`` to a temporary file, fsync them all (in threads when
        several: the disk serves them together, ~2x faster than one after another), then
        rename each into place. The folder is not synced here."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        written: list[tuple[str, int, str]] = []  # (name, fd, temporary path)
        try:
            for name, data in items:
                fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
                written.append((name, fd, tmp))
                with memoryview(data) as view, open(fd, "wb", closefd=False) as f:
                    f.write(view)
                if os.name == "posix":  # never written again: read-only lets a restore map
                    os.fchmod(fd, 0o400)  # it (chunkmap.py), and keeps it from being cut
            if len(written) == 1:
                os.fsync(written[0][1])
            else:
                with ThreadPoolExecutor(min(8, len(written)),
                                        thread_name_prefix="durable_nb-fsync") as pool:  # fmt: skip
                    list(pool.map(os.fsync, [fd for _, fd, _ in written]))
            undo = self._undo.get(threading.get_ident())
            for name, _, tmp in written:
                os.replace(tmp, self.folder / name)
                if undo is not None:
                    undo.append(name)
        except BaseException:
            for _, _, tmp in written:
                Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            for _, fd, _ in written:
                os.close(fd)

    @contextlib.contextmanager
    def undone_on_error(self) -> Iterator[None]:
        """Remove the blobs this thread writes anew in the block if the block raises.

        For a snapshot that failed (a full disk): no row refers to its chunks yet, and
        they would only keep the disk full.
        """
        written = self._undo[threading.get_ident()] = []
        try:
            yield
        except BaseException:
            for name in written:
                with contextlib.suppress(OSError):
                    (self.folder / name).unlink()
            raise
        finally:
            self._undo.pop(threading.get_ident(), None)

    def put_chunks(self, data: bytes | memoryview, names: list[str] | None = None) -> list[str]:
        """Store ``data`` as chunks (only those not stored yet); return their names."""
        view = memoryview(data).cast("B")
        names = names or chunk_names(view)
        folder = str(self.folder)
        missing = {}  # a name met twice (equal chunks) is written once
        for i, name in enumerate(names):
            if not is_name(name):
                self.path(name)  # raises: not a content hash
            if name not in missing and not os.path.exists(os.path.join(folder, name)):
                missing[name] = view[i * CHUNK : (i + 1) * CHUNK]
        if missing:
            self._put_many(list(missing.items()))
        self.sync_dir()
        return names

    def get_chunks(self, names: list[str], nbytes: int) -> memoryview:
        """Reassemble ``nbytes`` of data from its chunks into one writable buffer.

        Each chunk is read straight into its place (or, in a big buffer, its file mapped
        there where that is safe: :mod:`~durable_nb.chunkmap`) and checked against its
        name before the buffer is returned; raises :class:`BlobDamaged` when one does
        not match.
        """
        if type(nbytes) is not int or nbytes < 0 or len(names) != -(-nbytes // CHUNK):
            raise BlobDamaged(f"{self.folder} (chunks do not match the size {nbytes!r})")
        paths = [self.path(name) for name in names]
        mapping = None
        if nbytes >= MAPPED:
            from . import chunkmap  # ctypes: not on a kernel's start

            mapping = chunkmap.region(nbytes, len(names))
        view = buffer(nbytes) if mapping is None else mapping.view

        def read(i: int) -> None:
            part, name = view[i * CHUNK : (i + 1) * CHUNK], names[i]
            with open(paths[i], "rb", buffering=0) as f:
                if mapping is None or not mapping.map(f.fileno(), i * CHUNK, len(part)):
                    if f.readinto(part) != len(part) or f.read(1):
                        raise self._damaged(name)
            if xxhash.xxh3_128_hexdigest(part) != name:  # a mapped chunk too, before use
                raise self._damaged(name)

        if len(names) < 8:
            for i in range(len(names)):
                read(i)
        else:  # reads and hashing release the GIL: overlap them
            with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
                list(pool.map(read, range(len(names))))
        return view

    def sync_dir(self) -> None:
        """fsync the folder, so that renames into it survive a power loss."""
        if not self.folder.exists():
            return
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, name: str) -> bytes:
        """Return the content of blob ``name``; raises :class:`BlobDamaged` if it is not
        what was written."""
        path = self.path(name)
        data = path.read_bytes()
        if xxhash.xxh3_128_hexdigest(data) != name:
            raise self._damaged(name)
        return data

    def _damaged(self, name: str) -> BlobDamaged:
        """Move a damaged blob aside (``.damaged-NAME``), so that storing the same content
        again writes it anew instead of keeping the damaged file; return the error."""
        path = self.folder / name
        try:
            os.replace(path, self.folder / f".damaged-{name}")
        except OSError:  # a read-only folder: it stays, and stays treated as missing
            pass
        return BlobDamaged(str(path))

    def names(self) -> set[str]:
        """Every blob stored, and temporary files left by writes a crash cut short.

        A temporary file younger than an hour may be a write under way: it is left out, and
        so is any file not named as a blob (someone's note in the folder is not ours).
        """
        if not self.folder.exists():
            return set()
        old = time.time() - 3600
        found = set()
        for p in self.folder.iterdir():
            name = p.name
            if is_name(name) or is_name(name.removeprefix(".damaged-")) or _TMP.fullmatch(name):
                st = p.lstat()  # a folder or a link of that name is not ours either
                if stat.S_ISREG(st.st_mode) and (name[:5] != ".tmp-" or st.st_mtime < old):
                    found.add(name)
        return found

    def remove(self, name: str) -> int:
        """Delete blob ``name``; return the bytes freed."""
        own = name.startswith((".tmp-", ".damaged-")) and "/" not in name  # names() lists them
        path = self.folder / name if own else self.path(name)
        size = path.stat().st_size
        path.unlink()
        return size
