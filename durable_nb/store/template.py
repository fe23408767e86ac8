"""The empty journal, kept between processes: a new notebook's journal is a copy of it.

Making an empty journal costs a kernel ~0.1 s of DuckDB's time (a connection, the
tables' DDL, a checkpoint). The first one this user's durable_nb makes is kept in the
Jupyter data folder, beside the signing secret, signed with it (:mod:`durable_nb.trust`)
and named after what made it (DuckDB's version, the schema's DDL, the connection's
settings): later kernels copy it once it verifies. One that does not (damaged, written
by another user or another DuckDB) is no template: the journal is made as before, and
the template written anew.

The template holds a random nonce as its close's mark (``meta.closed``, kept beside the
bytes and signed with them): a journal this process has just linked into place from it
is opened as one it closed itself (:mod:`.stamp`), its checks skipped, once DuckDB's
file is seen to hold that nonce.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .. import trust
from .files import open_regular, replace_whole
from .schema import MIGRATIONS, SAFE_CONFIG, SCHEMA_VERSION

#: The signature's domain: a template never verifies as any other signed thing.
DOMAIN = "empty-journal"
#: The file's layout: signature, nonce, journal bytes (one per line, the bytes last).
FORMAT = "signature-nonce-bytes"
#: An empty journal is ~1.3 MB: a longer file is not one (nor read whole).
MAX_BYTES = 16 << 20


def template_path(engine_version: str) -> Path:
    """Where the template made by DuckDB ``engine_version`` with today's schema is kept."""
    from jupyter_core.paths import jupyter_data_dir

    made_by = json.dumps([engine_version, SCHEMA_VERSION, MIGRATIONS, SAFE_CONFIG, FORMAT])
    key = hashlib.sha256(made_by.encode()).hexdigest()[:16]
    return Path(jupyter_data_dir()) / f"durable_nb_empty-{key}.duckdb"


def load(engine_version: str) -> tuple[bytes, str] | None:
    """The template's bytes and nonce when this user signed them, else None (no such
    regular file: a link is not followed, a FIFO not waited for, as for any side file)."""
    try:
        with os.fdopen(open_regular(template_path(engine_version)), "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError:
        return None
    sig, _, signed = raw.partition(b"\n")
    if len(raw) > MAX_BYTES or not trust.verify(DOMAIN, signed, sig.decode("ascii", "replace")):
        return None
    nonce, _, data = signed.partition(b"\n")
    return data, nonce.decode("ascii")


def save(engine_version: str, data: bytes, nonce: str) -> None:
    """Keep ``data`` (an empty journal's bytes, ``nonce`` its close's mark) as the
    template, signed, written whole, this user's only (0600). A folder that refuses it:
    the next kernel builds its own."""
    signed = nonce.encode("ascii") + b"\n" + data
    sig = trust.sign(DOMAIN, signed)  # first: the secret's folder is made with the secret
    replace_whole(template_path(engine_version), sig.encode() + b"\n" + signed)
