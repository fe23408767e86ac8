"""The append log: records reach disk here first (~0.1 ms each), and are folded into DuckDB later.

One record is ``MAGIC <u32 length> <u32 index> <u32 crc32> <pickled (kind, row)> <u32
index> <u32 crc32 of it> END``. A group, ``("group", ((kind, row), ...))``, is one record:
one crc covers its rows, so after a crash the reader finds all of them or none (a cell's
variables and its end record: :meth:`~durable_nb.store.journal.Journal.write_all`).

After a damaged record the reader finds the next MAGIC, so damage costs only the
records it touched; the indices count them (and they are said). A torn tail (a crash
mid-append) is ignored. Logs of the earliest format (no MAGIC) are still read; those of
the MAGIC-only format (never released) are not.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

from .files import not_regular, open_regular


class _PlainUnpickler(pickle.Unpickler):
    """Log records hold plain data only; refusing globals makes reading them safe."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in a journal log")


class Log:
    """An append-only record file, held open by this process.

    Parameters
    ----------
    path : Path
        The file (created if missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # Only a regular file (files.open_regular): one shipped as a link would have its
        # target emptied by the fold, a FIFO would hang the opening (review4 R4-4, R4-6).
        try:
            self.fd = open_regular(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            raise not_regular(path) from exc
        #: Records appended since the log was last emptied (by this process).
        self.count = 0
        #: Records the last :meth:`read` found damaged (skipped).
        self.damaged = 0
        self._apart, self._apart_lock = _second_description(self.fd), threading.Lock()

    def append(self, record: tuple, sync: bool) -> None:
        """Append ``record`` (plain data only); with ``sync``, fdatasync it at once."""
        data = memoryview(encode(record, self.count))
        while data:
            data = data[os.write(self.fd, data) :]
        if sync:
            os.fdatasync(self.fd)
        self.count += 1

    def sync(self) -> None:
        """Make every record appended so far durable (one fdatasync: a group commit)."""
        os.fdatasync(self.fd)

    @property
    def apart(self) -> bool:
        """Whether :meth:`sync_apart` may run beside the writer (else, :meth:`sync` it)."""
        return self._apart is not None

    def sync_apart(self) -> None:
        """:meth:`sync` through the log's second open file description, which a thread may
        call while another appends and syncs: Linux reports a failed write-back once per
        description, so this one's report never takes the writer's (its own fdatasync then
        says the error). Once the log is closed, nothing (its close synced it)."""
        with self._apart_lock:  # (a close meanwhile waits: the descriptor stays this file's)
            if self._apart is not None:
                os.fdatasync(self._apart)

    def read(self) -> list[tuple]:
        """Every intact record; :attr:`damaged` says how many damaged ones were skipped."""
        data, size = b"", os.fstat(self.fd).st_size  # the file opened, not the path again
        while len(data) < size and (part := os.pread(self.fd, size - len(data), len(data))):
            data += part
        records, self.damaged = scan(data)
        return records

    @property
    def size(self) -> int:
        """The file's size in bytes (whole records and any torn tail)."""
        return os.fstat(self.fd).st_size

    def truncate(self) -> None:
        """Empty the log (its records are folded)."""
        os.ftruncate(self.fd, 0)
        os.fsync(self.fd)
        self.count = 0

    def close(self) -> None:
        with self._apart_lock:
            apart, self._apart = self._apart, None
        if apart is not None:
            os.close(apart)
        os.close(self.fd)


#: Largest log record read back (a record holds one row; big results go to blob files).
MAX_RECORD = 1 << 26
_SCALARS = (type(None), bool, int, float, str, bytes)


#: The kind of a record that holds other records (never nested).
GROUP = "group"


def _flat(record: object) -> bool:
    """True for ``(kind, row)`` with a row of plain scalars, the shape of one row.

    A crafted record of nested, shared references (a few bytes that expand to 2**40
    items) is refused before anything walks it.
    """
    return (
        type(record) is tuple
        and len(record) == 2
        and type(record[0]) is str
        and record[0] != GROUP
        and type(record[1]) is tuple
        and all(type(v) in _SCALARS for v in record[1])
    )


def _rows(record: object) -> list[tuple] | None:
    """The rows of a record as :meth:`Log.append` writes it (one row, or a group of flat
    rows), or None for anything else."""
    if _flat(record):
        return [record]  # type: ignore[list-item]
    if (type(record) is tuple and len(record) == 2 and record[0] == GROUP
            and type(record[1]) is tuple and record[1]
            and all(_flat(r) for r in record[1])):  # fmt: skip
        return list(record[1])
    return None


def _load(payload: bytes) -> list[tuple] | None:
    """The rows in ``payload``, or None when it is not what :meth:`Log.append` writes."""
    if len(payload) > MAX_RECORD:
        return None
    try:
        record = _PlainUnpickler(io.BytesIO(payload)).load()
    except Exception:
        return None
    return _rows(record)  # anything else is damage, never data


#: Each record starts with this, so that a reader can find the next record after damage.
MAGIC = b"\xd7NB\x03"
#: And ends with this, so that a reader can tell damage at the end from a torn append.
END = b"\x03bn\xd7"
#: A record: MAGIC, payload length, its index in the log (0, 1, ...: a gap is a loss),
#: crc32 of the length, index and payload; the payload; the index again, its crc32, END.
_HEAD = struct.Struct("<4sIII")
_TAIL = struct.Struct("<II4s")
#: The frame of logs written before records had a MAGIC (still read).
_OLD = struct.Struct("<II")


def read_regular(path: Path) -> bytes:
    """The bytes of the regular file ``path`` (:func:`~.files.open_regular`)."""
    with os.fdopen(open_regular(path), "rb") as f:
        return f.read()


def encode(record: tuple, index: int = 0) -> bytes:
    """One record as appended to the log, the ``index``-th since the log was emptied."""
    payload = pickle.dumps(record, protocol=5)
    fields = struct.pack("<II", len(payload), index)
    crc = zlib.crc32(payload, zlib.crc32(fields))
    return MAGIC + fields + crc.to_bytes(4, "little") + payload + _tail(index)


def _tail(index: int) -> bytes:
    """A record's trailer: its index, the index's crc32, END."""
    return _TAIL.pack(index, zlib.crc32(index.to_bytes(4, "little")), END)


def decode(data: bytes) -> list[tuple]:
    """The intact records of ``data`` (see :func:`scan`)."""
    return scan(data)[0]


def scan(data: bytes) -> tuple[list[tuple], int]:
    """The intact records of ``data``, and how many records damage cost.

    After a damaged record the reader moves on to the next MAGIC, so damage costs only
    the records it touched; they are counted from the gaps in the records' indices. The
    bytes after the last intact record are damage when they end with a record's END (the
    last append finished), else a torn tail (a crash during that append): ignored and not
    counted.
    """
    if data[: len(MAGIC)] != MAGIC and _old_record_at_start(data):
        return _scan_old(data), 0
    out: list[tuple] = []
    lost, last, pos, rest, whole = 0, -1, data.find(MAGIC), 0, True
    while pos >= 0:
        found = _record_at(data, pos)
        if found is None:
            pos = data.find(MAGIC, pos + 1)
            continue
        rows, index, end = found  # end: where its payload ends
        lost += max(0, index - last - 1)
        last = max(last, index)
        out += rows
        whole = data[end : end + _TAIL.size] == _tail(index)
        rest = end + _TAIL.size if whole else end  # else its damaged trailer leads the rest
        # (A trailer cut short may end with the next MAGIC's first byte: search from end.)
        pos = rest if data[rest : rest + len(MAGIC)] == MAGIC else data.find(MAGIC, end)
    # A few bytes after the last record may be its own damaged trailer: then only a
    # whole trailer of a later record says that records were lost.
    sure = whole or len(data) - rest > _TAIL.size
    return out, lost + _lost_at_end(data[rest:], last, sure)


def _record_at(data: bytes, pos: int) -> tuple[list[tuple], int, int] | None:
    """``(rows, index, where its payload ends)`` for an intact record at ``pos``.

    Its trailer is not needed: a payload whose crc matches is what was written.
    """
    if pos + _HEAD.size > len(data):
        return None
    _, length, index, crc = _HEAD.unpack_from(data, pos)
    start = pos + _HEAD.size
    payload = data[start : start + length]
    if len(payload) != length or zlib.crc32(payload, zlib.crc32(data[pos + 4 : pos + 12])) != crc:
        return None
    rows = _load(payload)
    return None if rows is None else (rows, index, start + length)


def _lost_at_end(rest: bytes, last: int, sure: bool = True) -> int:
    """How many records the bytes after the last intact one held (see :func:`scan`).

    ``sure``: bytes ending with END are damage even where no whole trailer says how much.
    """
    most, final = last, None
    at = rest.find(END, 8)
    while at >= 0:
        index, check = struct.unpack_from("<II", rest, at - 8)
        if zlib.crc32(rest[at - 8 : at - 4]) == check:  # a record's end, not payload bytes
            most = max(most, index)
            final = index if at + len(END) == len(rest) else final
        at = rest.find(END, at + 1)
    if rest.endswith(END) and final is None and sure:  # the last append finished
        return max(most - last, 1)
    return most - last  # finished records, then a torn append


def _old_record_at_start(data: bytes) -> bool:
    """Whether ``data`` starts with a whole record of the pre-MAGIC format. Zeros are no
    such record (a length 0 has crc32 0): a log whose first page was zeroed (after a
    power cut) is read by MAGIC, its lost records counted, not taken for an old empty one."""
    if len(data) < _OLD.size:
        return False
    length, crc = _OLD.unpack_from(data, 0)
    payload = data[_OLD.size : _OLD.size + length]
    return 0 < length == len(payload) and zlib.crc32(payload) == crc and _load(payload) is not None


def _scan_old(data: bytes) -> list[tuple]:
    """A log written before MAGIC: whole records up to the first torn or damaged one."""
    out, pos, size = [], 0, _OLD.size
    while pos + size <= len(data):
        length, crc = _OLD.unpack_from(data, pos)
        payload = data[pos + size : pos + size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        rows = _load(payload)
        if rows is None:
            break
        out += rows
        pos += size + length
    return out


def least_size(records: list[tuple[str, tuple]]) -> int:
    """At least the bytes ``records`` take in the log: their bytes, and their text at 4
    bytes a character (UTF-8's most); numbers and framing are small next to the margin."""
    return sum(len(v) if type(v) is bytes else 4 * len(v)
               for _, record in records for v in record if type(v) in (str, bytes))  # fmt: skip


def _second_description(fd: int) -> int | None:
    """Another open file description of the file ``fd`` is open on (Linux: through
    ``/proc``, the very file even if renamed), or None (then syncs take the writer's)."""
    try:
        other = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    mine, theirs = os.fstat(fd), os.fstat(other)
    if (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
        return other
    os.close(other)
    return None
