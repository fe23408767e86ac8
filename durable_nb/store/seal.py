"""What a record's signature binds: its table, its key and every column a load uses.

A signed row's ``sig`` is this user's MAC (:func:`durable_nb.trust.sign_fields`) of the
row's table and its :data:`BOUND` columns, so a signed value copied onto another row, a
variable re-pointed to another payload, a chunk list swapped or a status changed no longer
verifies. Content kept in blob files (a big step result, a chunked pickle stream) is bound
by its name in the row and also signed itself: ``sig`` is then ``<row>:<content>``, and the
row part alone can be checked without reading the files (``durable-nb ls``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import trust
from ..blobs import BlobStore
from ..errors import UntrustedJournal
from .schema import TABLES, CellRow, PayloadRow, StepRow, VariableRow, rollback

#: Table -> the columns its signature binds (the key first). Not bound: times (shown, and
#: the order of two results of one call), counts and texts that are only shown (args,
#: attempts, a cell's error), and the ``runs`` and ``meta`` tables (see README, Trust).
BOUND: dict[str, tuple[str, ...]] = {
    "cells": ("exec_id", "seq", "run_id", "cell_id", "cell_key", "source", "status"),
    "steps": ("record_id", "identity", "epoch", "status", "kind", "result", "blob", "error"),
    "variables": VariableRow._fields[:-1],
    "payloads": PayloadRow._fields[:-1],
}
#: Row type -> (its table, the positions of its bound columns).
_WHERE = {
    t: (TABLES[t][1], tuple(t._fields.index(c) for c in BOUND[TABLES[t][1]]))
    for t in (CellRow, StepRow, VariableRow, PayloadRow)
}


def in_blobs(row: Any) -> bool:
    """Whether what loading ``row`` unpickles lives in blob files (its sig has two parts)."""
    if type(row) is StepRow:
        return row.blob is not None
    return type(row) is PayloadRow and row.stream is None and row.stream_chunks is not None


def fields(row: Any) -> list[Any]:
    """The values ``row``'s signature binds, in :data:`BOUND` order."""
    _, where = _WHERE[type(row)]
    return [row[i] for i in where]


def sign(row: Any, content: Any = None) -> str:
    """This user's signature of ``row`` (``content``: its blob content, when :func:`in_blobs`)."""
    table, _ = _WHERE[type(row)]
    sig = trust.sign_fields(table, fields(row))
    return sig if content is None else f"{sig}:{trust.sign('payload', content)}"


def verify(row: Any, content: Any = None, quick: bool = False) -> bool:
    """Whether this user signed ``row`` as it is.

    Content in blob files must be given as ``content`` (read and checked against its name),
    unless ``quick``: then only the row is checked (a look that reads no files).
    """
    table, _ = _WHERE[type(row)]
    sig = row[-1] if type(row[-1]) is str else ""
    mine, _, part = sig.partition(":")
    if not trust.verify_fields(table, fields(row), mine):
        return False
    if not in_blobs(row):
        return not part
    return bool(part) if quick else content is not None and trust.verify("payload", content, part)


def select(row_type: type, where: str = "") -> str:
    """``SELECT`` of ``row_type``'s rows with only the bound columns and ``sig`` (the others
    NULL): what :func:`verify` reads, without converting times no signature covers."""
    table, _ = _WHERE[row_type]
    read = {*BOUND[table], "sig"}
    columns = [c if c in read else f"NULL AS {c}" for c in row_type._fields]
    return f"SELECT {', '.join(columns)} FROM {table} {where}".rstrip()


class Sealing:
    """The journal's side of trust (mixed into :class:`~durable_nb.store.journal.Journal`):
    signing rows as they are written, checking them as they load, ``durable-nb trust``."""

    path: Path
    blobs: BlobStore
    _con: Any
    _lock: Any
    _notebook: str | None

    def fold(self) -> None:
        raise NotImplementedError

    def _select(self, sql: str, params: Iterable[Any] | None = None) -> list[tuple]:
        raise NotImplementedError

    _index: Any
    epoch: int

    def _sign(self, row: Any) -> str:
        """This user's signature of ``row``: its table, key and every column a load uses."""
        return sign(row, self._content(row) if in_blobs(row) else None)

    def _content(self, row: StepRow | PayloadRow) -> bytes | memoryview:
        """What loading ``row`` unpickles, read from its blob files (checked against names)."""
        if type(row) is StepRow:
            return self.blobs.get(row.blob)
        size, names = json.loads(row.stream_chunks)
        return self.blobs.get_chunks(names, size)

    def signed(self, row: Any, content: Any = None) -> bool:
        """Whether this user signed ``row`` (a cell, step, variable or payload) as it is.

        ``content``: what it holds in blob files, read by the caller; without it only the
        row is checked (:func:`verify`).
        """
        return verify(row, content, quick=content is None)

    def check(self, row: Any, what: str, content: Any = None, quick: bool = False) -> None:
        """Raise :class:`UntrustedJournal` unless this user signed ``row`` (and ``content``:
        its blob content, when it has some, unless ``quick``) as it is."""
        if not verify(row, content, quick):
            raise self._untrusted(what)

    def _untrusted(self, what: str) -> UntrustedJournal:
        return UntrustedJournal(
            str(self.path),
            f"journal {self.path} holds {what} not signed by you (written by another user, "
            "by a durable_nb that signed content only, or changed since): it is not loaded, "
            "since loading it could run code or give a value to the wrong name; "
            + trust.HOW_TO_TRUST.format(target=self._notebook or self.path),
        )

    def check_restorable(self, variables: Iterable[VariableRow] = ()) -> None:
        """Raise :class:`UntrustedJournal` unless what a restore may use is signed by this user.

        That is every cell (re-run to recompute values, or resumed) and the ``variables``
        rows the restore uses (which payload, module or cell each name comes from); payloads
        are checked one by one as they load.
        """
        cells = self._select(select(CellRow))
        if not all(verify(CellRow._make(r)) for r in cells):
            raise self._untrusted("cell code")
        if not all(map(verify, variables)):
            raise self._untrusted("variables (the value, module or cell each name comes from)")

    def foreign_records(self) -> dict[str, int]:
        """Table -> how many of its records this user did not sign (a load refuses them).

        Every record a load would use: cells, steps (JSON results too), variables and
        payloads. Blob files are not read: their content is checked as it loads.
        """
        counts = {}
        with self._lock:
            self.fold()
            for row_type in (CellRow, StepRow, VariableRow, PayloadRow):
                cursor, bad = self._con.execute(select(row_type)), 0
                while batch := cursor.fetchmany(4096):
                    bad += sum(not verify(row_type._make(r), quick=True) for r in batch)
                counts[TABLES[row_type][1]] = bad
        return counts

    def untrusted(self) -> int:
        """How many records a load would use are not signed by this user (``ls``/``show``)."""
        return sum(self.foreign_records().values())

    def trust(self) -> int:
        """Sign every record and the resume plan for this user (``durable-nb trust``).

        Returns how many records were signed; one whose blob files are missing or damaged,
        or that no durable_nb could have written, stays unsigned (and unloadable).
        """
        import numpy as np

        signed: dict[str, tuple[str, list[tuple[str, str]]]] = {}
        with self._lock:
            self.fold()
            for row_type in (CellRow, StepRow, VariableRow, PayloadRow):
                out: list[tuple[str, str]] = []
                signed[TABLES[row_type][1]] = (row_type._fields[0], out)
                cursor = self._con.execute(select(row_type))
                while batch := cursor.fetchmany(4096):
                    for row in map(row_type._make, batch):
                        try:
                            out.append((row[0], self._sign(row)))
                        except (OSError, ValueError, TypeError, RecursionError):
                            pass  # a missing blob, a crafted column: that record stays unloadable
            con = self._con
            con.execute("BEGIN")
            try:
                for table, (key, pairs) in signed.items():
                    if not pairs:
                        continue
                    keys, sigs = (np.array(c, dtype=object) for c in zip(*pairs, strict=True))
                    con.register("_dnb_sig", {"k": keys, "sig": sigs})
                    try:
                        con.execute(
                            f"UPDATE {table} SET sig = _dnb_sig.sig FROM _dnb_sig "
                            f"WHERE {table}.{key} = _dnb_sig.k"
                        )
                    finally:
                        con.unregister("_dnb_sig")
                plan = con.execute("SELECT value FROM meta WHERE key = 'headless'").fetchone()
                if plan is not None and type(plan[0]) is str:  # sealed, or from before seals
                    text = trust.unseal(plan[0], None) or plan[0]
                    con.execute(
                        "UPDATE meta SET value = ? WHERE key = 'headless'",
                        [trust.seal(trust.PLAN_DOMAIN, text)],
                    )
                con.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('trusted_by', ?)", [trust.key_id()]
                )
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise
            self._index.reset(self.epoch)
        return sum(len(pairs) for _, pairs in signed.values())

    def _resign_crashed(self) -> None:
        """The cells a dead process left running become crashed: those it signed stay signed
        (the status is bound), those it did not stay unsigned."""
        rows = self._con.execute(select(CellRow, "WHERE status = 'running'")).fetchall()
        for row in map(CellRow._make, rows):
            if verify(row):
                sig = sign(row._replace(status="crashed"))
                self._con.execute("UPDATE cells SET sig = ? WHERE exec_id = ?", [sig, row.exec_id])
