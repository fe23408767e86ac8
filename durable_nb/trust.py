"""Signing and trust of journals: a per-user secret and HMAC-SHA256 over what a load would run.

Content is signed when it is written, so a journal is trusted record by record, by construction.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
import tempfile
import threading
from pathlib import Path

#: File name of the secret in the Jupyter data folder (beside Jupyter's ``notebook_secret``).
SECRET_NAME = "durable_nb_secret"


HOW_TO_TRUST = (
    "if you trust where it came from, run `durable-nb trust {target}` (or `%durable trust` "
    "in the notebook)"
)

_lock = threading.Lock()
_secret: bytes | None = None  # read once per process: signing is on the write path


def secret_path() -> Path:
    """Where this user's secret lives: ``jupyter_data_dir()/durable_nb_secret``."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / SECRET_NAME


def secret() -> bytes:
    """This user's secret, created (mode 0600) the first time it is needed.

    When the data folder cannot be written, a secret for this process only is used
    (its signatures are not trusted by later processes) and a warning says so.
    """
    global _secret
    if _secret is not None:
        return _secret
    path = secret_path()
    with _lock:
        if _secret is not None:
            return _secret
        try:
            key = _load_or_create(path)
        except OSError as exc:
            key = os.urandom(32)
            print(
                f"durable_nb: cannot create the signing secret {path} ({exc}); journal "
                "content written now is trusted by this process only. Make the Jupyter "
                "data folder writable (or set JUPYTER_DATA_DIR).",
                file=sys.stderr,
                flush=True,
            )
        _secret = key
        return key


def _load_or_create(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    if len(data) >= 32:
        return data
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Written whole under a temporary name, then linked into place: two processes
    # creating it at once both end up with the one that won, never a partial file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".durable_nb_secret-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, os.urandom(32).hex().encode())
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path.read_bytes()


def key_id() -> str:
    """A short public name of this user's secret (safe to show; reveals nothing of it)."""
    return hmac.new(secret(), b"durable_nb key id", hashlib.sha256).hexdigest()[:16]


def sign(domain: str, data: bytes | bytearray | memoryview | str) -> str:
    """HMAC-SHA256 of ``data`` in ``domain`` with this user's secret, as hex."""
    if isinstance(data, str):
        data = data.encode()
    mac = hmac.new(secret(), domain.encode() + b"\0", hashlib.sha256)
    mac.update(data)
    return mac.hexdigest()


def verify(domain: str, data: bytes | bytearray | memoryview | str, sig: str | None) -> bool:
    """True when ``sig`` is this user's signature of ``data`` in ``domain``."""
    return bool(sig) and hmac.compare_digest(sign(domain, data), sig)


def sign_bytes(data: bytes) -> str:
    """Signature of a whole file's content (an exported notebook with its journal)."""
    return sign("export", data)
