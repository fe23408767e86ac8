"""The append log: records reach disk here first (~0.1 ms each), and are folded into DuckDB later.

One record is ``MAGIC <u32 length> <u32 crc32 of length and payload> <pickled (kind, row)>``.
After a damaged record the reader finds the next MAGIC, so damage costs only the records
it touched (they are counted, and said); a torn tail (a crash mid-append) is ignored.
Logs of the earlier format (no MAGIC) are still read.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any


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
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        #: Records appended since the log was last emptied (by this process).
        self.count = 0
        #: Damaged records the last :meth:`read` skipped.
        self.damaged = 0

    def append(self, record: tuple, sync: bool) -> None:
        """Append ``record`` (plain data only); with ``sync``, fdatasync it at once."""
        data = memoryview(encode(record))
        while data:
            data = data[os.write(self.fd, data) :]
        if sync:
            os.fdatasync(self.fd)
        self.count += 1

    def sync(self) -> None:
        """Make every record appended so far durable (one fdatasync: a group commit)."""
        os.fdatasync(self.fd)

    def read(self) -> list[tuple]:
        """Every intact record; :attr:`damaged` says how many damaged ones were skipped."""
        with open(self.path, "rb") as f:
            data = f.read()
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
        os.close(self.fd)


#: Largest log record read back (a record holds one row; big results go to blob files).
MAX_RECORD = 1 << 26
_SCALARS = (type(None), bool, int, float, str, bytes)


def _flat(record: object) -> bool:
    """True for ``(kind, row)`` with a row of plain scalars, the only shape a log holds.

    A crafted record of nested, shared references (a few bytes that expand to 2**40
    items) is refused before anything walks it.
    """
    return (
        type(record) is tuple
        and len(record) == 2
        and type(record[0]) is str
        and type(record[1]) is tuple
        and all(type(v) in _SCALARS for v in record[1])
    )


def _load(payload: bytes) -> tuple | None:
    """The record in ``payload``, or None when it is not what :meth:`Log.append` writes."""
    if len(payload) > MAX_RECORD:
        return None
    try:
        record = _PlainUnpickler(io.BytesIO(payload)).load()
    except Exception:
        return None
    return record if _flat(record) else None  # anything else is damage, never data


#: Each record starts with this, so that a reader can find the next record after damage.
MAGIC = b"\xd7NB\x02"
#: A record: MAGIC, payload length, crc32 of the length's bytes and the payload, payload.
_FRAME = struct.Struct("<4sII")
#: The frame of logs written before records had a MAGIC (still read).
_OLD = struct.Struct("<II")


def encode(record: tuple) -> bytes:
    """One record as appended to the log."""
    payload = pickle.dumps(record, protocol=5)
    length = len(payload).to_bytes(4, "little")
    return _FRAME.pack(MAGIC, len(payload), zlib.crc32(payload, zlib.crc32(length))) + payload


def decode(data: bytes) -> list[tuple]:
    """The intact records of ``data`` (see :func:`scan`)."""
    return scan(data)[0]


def scan(data: bytes) -> tuple[list[tuple], int]:
    """The intact records of ``data``, and how many damaged records were skipped.

    After a damaged record the reader moves on to the next MAGIC, so damage costs only
    the records it touched. A record cut short at the very end (a crash during its
    append) and bytes after the last record that hold no MAGIC are a torn tail: ignored
    and not counted.
    """
    if data[: len(MAGIC)] != MAGIC and _old_record_at_start(data):
        return _scan_old(data), 0
    out: list[tuple] = []
    damaged, pos, size, after_good = 0, 0, len(data), True
    while pos < size:
        at_magic = data[pos : pos + len(MAGIC)] == MAGIC
        whole = False  # the bytes here hold one whole frame, up to the end or beyond
        if pos + _FRAME.size <= size:
            _, length, crc = _FRAME.unpack_from(data, pos)
            end = pos + _FRAME.size + length
            whole = end <= size
            payload = data[pos + _FRAME.size : end]
            ok = whole and zlib.crc32(payload, zlib.crc32(data[pos + 4 : pos + 8])) == crc
            record = _load(payload) if at_magic and ok else None
            if record is not None:
                out.append(record)
                pos, after_good = end, True
                continue
        nxt = data.find(MAGIC, pos + 1)
        # Damaged: a whole record that fails its check, a record cut short with more
        # after it, or (right after an intact record) one whose MAGIC was hit. A record
        # cut short at the very end, or bytes with no MAGIC after the last record, are a
        # torn tail (a crash during an append): ignored. (A hit MAGIC in the last record
        # is told from a tail by its frame reaching exactly the end.)
        if at_magic and (whole or nxt >= 0):
            damaged += 1
        elif after_good and (nxt >= 0 or (whole and end == size)):
            damaged += 1
        if nxt < 0:
            break
        pos, after_good = nxt, False
    return out, damaged


def _old_record_at_start(data: bytes) -> bool:
    if len(data) < _OLD.size:
        return False
    length, crc = _OLD.unpack_from(data, 0)
    return _OLD.size + length <= len(data) and zlib.crc32(data[8 : 8 + length]) == crc


def _scan_old(data: bytes) -> list[tuple]:
    """A log written before MAGIC: whole records up to the first torn or damaged one."""
    out, pos, size = [], 0, _OLD.size
    while pos + size <= len(data):
        length, crc = _OLD.unpack_from(data, pos)
        payload = data[pos + size : pos + size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        record = _load(payload)
        if record is None:
            break
        out.append(record)
        pos += size + length
    return out
