"""Signing and trust of journals: a per-user secret and MACs over what a load would use.

Content is signed when it is written, so a journal is trusted record by record, by construction.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import numbers
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from ._report import report
from .errors import SecretRefused

#: What a signed record's fields may be (as DuckDB gives them back).
Field = str | bytes | bytearray | memoryview | int | None

#: Domain of the signature of ``meta.headless`` (the resume plan of ``durable-nb run``),
#: followed by the journal's id (:func:`plan_domain`).
PLAN_DOMAIN = "meta:headless"

#: What a journal's id is: 32 hex digits, random, made with the journal (``meta.journal``).
JOURNAL_ID = re.compile(r"[0-9a-f]{32}")


def new_journal_id() -> str:
    """A fresh random journal id (:data:`JOURNAL_ID`)."""
    return os.urandom(16).hex()


def plan_domain(journal: str | None) -> str:
    """The domain of the resume plan's seal in the journal ``journal`` (its id; None: in
    a journal of schema 5, whose seals named no journal)."""
    return PLAN_DOMAIN if journal is None else f"{PLAN_DOMAIN}:{journal}"


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

    A secret that could be known to someone else (too short, a symlink, readable or
    replaceable by others, not owned by this user) is refused: a weak key would let
    anyone sign a journal as you. Then, as when the data folder cannot be written, a
    key for this process only is used (foreign and earlier records are not loaded)
    and one line says what to do.
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
        except SecretRefused as exc:
            key = os.urandom(32)
            report(str(exc))
        except OSError as exc:
            key = os.urandom(32)
            report(
                f"cannot create the signing secret {path} ({exc}); journal content written "
                "now is trusted by this process only. Make the Jupyter data folder writable "
                "(or set JUPYTER_DATA_DIR)."
            )
        _secret = key
        return key


#: Random bytes a secret holds at least (it is stored as hex: twice as many characters).
MIN_BYTES = 32


def _load_or_create(path: Path) -> bytes:
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_owner(folder, os.stat(folder), "folder")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        _create(path)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SecretRefused(path, "is a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SecretRefused(path, "is not a regular file")
        _check_owner(path, st, "file")
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        raw = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raw = data
    if len(raw) < MIN_BYTES or len(set(raw)) < 8:
        raise SecretRefused(path, f"holds {len(raw)} bytes, fewer than {MIN_BYTES} random ones")
    return data


def _check_owner(path: Path, st: os.stat_result, what: str) -> None:
    """Refuse a secret (or its folder) that another user owns, reads or could replace."""
    if st.st_uid != os.getuid():
        raise SecretRefused(path, f"is a {what} owned by user id {st.st_uid}, not by you")
    if what == "file" and st.st_mode & 0o077:
        raise SecretRefused(path, f"has mode {stat.S_IMODE(st.st_mode):04o}, readable by others")
    # A group-writable folder is fine when the group is the user's own (umask 002 systems).
    writable = 0o002 if st.st_gid == os.getgid() else 0o022
    if what == "folder" and st.st_mode & writable:
        raise SecretRefused(
            path, f"is a folder with mode {stat.S_IMODE(st.st_mode):04o}, writable by others"
        )


def _create(path: Path) -> None:
    """Write a new secret whole under a temporary name, then link it into place.

    Two processes creating it at once both end up with the one that won, never a
    partial file.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".durable_nb_secret-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, os.urandom(MIN_BYTES).hex().encode())
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        Path(tmp).unlink(missing_ok=True)


def key_id() -> str:
    """A short public name of this user's secret (safe to show; reveals nothing of it)."""
    return hmac.new(secret(), b"durable_nb key id", hashlib.sha256).hexdigest()[:16]


def _keyed(prefix: bytes) -> Any:
    """A keyed BLAKE2b-256 state fed with ``prefix`` (a copy of one made once per process)."""
    key = secret()
    state = _blake.get((key, prefix))
    if state is None:
        raw = key if len(key) <= 64 else hashlib.blake2b(key).digest()  # BLAKE2b's key limit
        state = hashlib.blake2b(prefix, key=raw, digest_size=32)
        if len(_blake) > 64:  # secrets change only in tests
            _blake.clear()
        _blake[key, prefix] = state
    return state.copy()


_blake: dict[tuple[bytes, bytes], Any] = {}


class _Mac:
    """HMAC-SHA256 with this user's secret, from SHA-256 states keyed once per process.

    The same bytes as ``hmac.new(secret(), prefix + data, sha256)``, without the key setup
    ``hmac.new`` repeats on each call (a few µs each: a record is signed per step).
    """

    _states: ClassVar[dict[tuple[bytes, bytes], tuple[Any, Any]]] = {}

    def __init__(self, prefix: bytes) -> None:
        key = secret()
        found = self._states.get((key, prefix))
        if found is None:
            if len(key) > 64:  # the SHA-256 block: longer keys are hashed first (RFC 2104)
                key = hashlib.sha256(key).digest()
            pad = key.ljust(64, b"\0")
            inner = hashlib.sha256(bytes(b ^ 0x36 for b in pad))
            inner.update(prefix)
            found = (inner, hashlib.sha256(bytes(b ^ 0x5C for b in pad)))
            if len(self._states) > 64:  # secrets change only in tests
                self._states.clear()
            self._states[secret(), prefix] = found
        self._inner, self._outer = found[0].copy(), found[1]

    def update(self, data: Any) -> None:
        self._inner.update(data)

    def hexdigest(self) -> str:
        outer = self._outer.copy()
        outer.update(self._inner.digest())
        return outer.hexdigest()


def sign(domain: str, data: bytes | bytearray | memoryview | str) -> str:
    """HMAC-SHA256 of ``data`` in ``domain`` with this user's secret, as hex."""
    if isinstance(data, str):
        data = data.encode()
    mac = _Mac(domain.encode() + b"\0")
    mac.update(data)
    return mac.hexdigest()


def verify(domain: str, data: bytes | bytearray | memoryview | str, sig: str | None) -> bool:
    """True when ``sig`` is this user's signature of ``data`` in ``domain``."""
    return type(sig) is str and bool(sig) and hmac.compare_digest(sign(domain, data), sig)


def sign_fields(domain: str, fields: Iterable[Field], journal: str | None) -> str:
    """A MAC of a record's ``fields`` in ``domain`` of the journal ``journal``, each field
    typed and length-prefixed.

    Keyed BLAKE2b-256 (RFC 7693: a MAC by design, one pass, where HMAC makes two) with
    this user's secret, as hex: one per journal row written, so it must cost little. No
    two different field lists give the same bytes: ``("ab", "c")`` and ``("a", "bc")``,
    ``None`` and ``""``, ``1`` and ``"1"`` all sign differently.

    ``journal``: the journal's id (:data:`JOURNAL_ID`), so a row signed for one journal
    never verifies in another; None gives the signature of schema 5, which named no
    journal (only to carry such journals over: :meth:`~durable_nb.store.seal.Sealing.bind`).
    """
    if journal is None:
        prefix = b"fields\0" + domain.encode() + b"\0"
    else:
        prefix = b"row\0" + journal.encode() + b"\0" + domain.encode() + b"\0"
    mac = _keyed(prefix)
    # One text for the small fields (bytes formatting per field costs more than the MAC),
    # its length first; the bytes fields follow it, their lengths being in it. The common
    # types in one comprehension (a replay batch checks a row in a few µs); others below.
    fields = fields if type(fields) is list else list(fields)
    text = [
        f"S{len(v)}:{v}" if (t := type(v)) is str
        else "N" if v is None
        else f"I{v};" if t is int
        else f"B{len(v)};" if t is bytes
        else None
        for v in fields
    ]  # fmt: skip
    if None in text:
        text, data = _typed(fields)
    else:
        data = [v for v in fields if type(v) is bytes]
    head = "".join(text).encode("utf-8", "surrogatepass")
    mac.update(b"%d:" % len(head))
    mac.update(head)
    for part in data:
        mac.update(part)
    return mac.hexdigest()


def _typed(fields: list[Field]) -> tuple[list[str], list[bytes | memoryview]]:
    """:func:`sign_fields`'s text and bytes parts for fields of any type it signs."""
    text: list[str] = []
    data: list[bytes | memoryview] = []
    for value in fields:
        t = type(value)
        if t is str:
            text.append(f"S{len(value)}:{value}")
        elif t is bytes:
            text.append(f"B{len(value)};")
            data.append(value)
        elif value is None:
            text.append("N")
        elif t is int:
            text.append(f"I{value};")
        elif isinstance(value, bytearray | memoryview):
            view = memoryview(value).cast("B")
            text.append(f"B{len(view)};")
            data.append(view)
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
            text.append(f"I{int(value)};")
        else:
            raise TypeError(f"cannot sign a field of type {t.__name__}")
    return text, data


def verify_fields(domain: str, fields: Iterable[Field], sig: object, journal: str | None) -> bool:
    """True when ``sig`` is this user's :func:`sign_fields` of ``fields`` in ``domain`` of
    the journal ``journal``."""
    if type(sig) is not str or not sig:
        return False
    try:
        return hmac.compare_digest(sign_fields(domain, fields, journal), sig)
    except TypeError:  # a crafted row holds a value of another type: not signed
        return False


def seal(domain: str, text: str) -> str:
    """``text`` in a signed JSON envelope (a ``meta`` value a runner will act on)."""
    return json.dumps({"plan": text, "sig": sign(domain, text)})


def unseal(raw: object, domain: str | None) -> str | None:
    """The text in a :func:`seal` envelope: when this user signed it in ``domain``, or,
    with ``domain`` None, whoever did (to sign it again: ``durable-nb trust``)."""
    try:
        sealed = json.loads(raw) if type(raw) is str and len(raw) < 1 << 24 else None
    except (ValueError, RecursionError):
        return None
    text = sealed.get("plan") if type(sealed) is dict else None
    if type(text) is not str:
        return None
    return text if domain is None or verify(domain, text, sealed.get("sig")) else None


def sign_bytes(data: bytes) -> str:
    """Signature of a whole file's content (an exported notebook with its journal)."""
    return sign("export", data)
