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
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
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


def decode(data: bytes) -> list[tuple]:
    """The whole records at the start of ``data``, up to the first torn or corrupt one."""
    out, pos, size = [], 0, _HEADER.size
    while pos + size <= len(data):
        length, crc = _HEADER.unpack_from(data, pos)
        payload = data[pos + size : pos + size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        try:
            out.append(_PlainUnpickler(io.BytesIO(payload)).load())
        except Exception:
            break
        pos += size + length
    return out
