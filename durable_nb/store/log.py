"""The append log: records reach disk here first (~0.1 ms each), and are folded into DuckDB later.

One record is ``<u32 length><u32 crc32><pickled (kind, row tuple)>``; a torn tail is ignored.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

_HEADER = struct.Struct("<II")


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

    def append(self, record: tuple, sync: bool) -> None:
        """Append ``record`` (plain data only); with ``sync``, fdatasync it at once."""
        payload = pickle.dumps(record, protocol=5)
        data = memoryview(_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
        while data:
            data = data[os.write(self.fd, data) :]
        if sync:
            os.fdatasync(self.fd)
        self.count += 1

    def sync(self) -> None:
        """Make every record appended so far durable (one fdatasync: a group commit)."""
        os.fdatasync(self.fd)

    def read(self) -> list[tuple]:
        """Every whole record; a torn or corrupt tail (a crash mid-write) is ignored."""
        with open(self.path, "rb") as f:
            data = f.read()
        return decode(data)

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


def decode(data: bytes) -> list[tuple]:
    """The whole records at the start of ``data``, up to the first torn or corrupt one."""
    out, pos, size = [], 0, _HEADER.size
    while pos + size <= len(data):
        length, crc = _HEADER.unpack_from(data, pos)
        payload = data[pos + size : pos + size + length]
        if length > MAX_RECORD or len(payload) < length or zlib.crc32(payload) != crc:
            break
        try:
            record = _PlainUnpickler(io.BytesIO(payload)).load()
        except Exception:
            break
        if not _flat(record):  # what append writes; anything else is damage, never data
            break
        out.append(record)
        pos += size + length
    return out
