"""Content-addressed payload files beside the journal, for payloads too big for DuckDB.

A blob's name is the xxh3-128 of its content, so identical data is stored once.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import xxhash

#: Payloads at least this big go to a blob file instead of a DuckDB row.
BLOB_THRESHOLD = 1 << 20


class BlobStore:
    """A folder of immutable files named by the hash of their content."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def put(self, data: bytes | memoryview) -> str:
        """Store ``data`` durably and return its name.

        Written to a temporary file, fsynced, renamed into place and the folder
        fsynced, so a crash leaves either the whole blob or none of it.
        """
        name = xxhash.xxh3_128_hexdigest(data)
        target = self.folder / name
        if target.exists():
            return name
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return name

    def get(self, name: str) -> bytes:
        """Return the content of blob ``name``."""
        return (self.folder / name).read_bytes()
