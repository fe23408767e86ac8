"""What a record's signature binds: its table, its key and every column a load uses.

Every table is signed: cells, steps, variables and payloads (what a load unpickles, runs or
imports), and runs, ``meta`` and outputs (which notebook a cell's work is, the epoch, the
names left out of snapshots, what a cell printed); only two ``meta`` rows are not
(:data:`UNSIGNED_META`). What a cell execution wrote is counted in its signed manifest
(:mod:`.manifest`), so a signed record deleted is seen too.

A signed row's ``sig`` is this user's MAC (:func:`durable_nb.trust.sign_fields`) of the
journal's id (:mod:`.binding`), the row's table and its :data:`BOUND` columns, so a signed
value copied onto another row, a variable re-pointed to another payload, a chunk list
swapped, a status changed or a row copied from another journal no longer verifies.
Content kept in blob files (a big step result, a chunked pickle stream) is bound by its
name in the row and also signed itself: ``sig`` is then ``<row>:<content>``, and the row
part alone can be checked without reading the files (``durable-nb ls``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .. import trust
from ..blobs import BlobStore
from ..errors import UntrustedJournal
from . import manifest
from .schema import (
    KINDS,
    TABLES,
    CellRow,
    MetaRow,
    OutputRow,
    PayloadRow,
    RunRow,
    StepRow,
    VariableRow,
    meta_int,
    rollback,
)
from .stamp import CLOSED_KEY

#: Table -> the columns its signature binds (the key first). Not bound: times but a run's
#: start (shown only, or the order of two results of one call), counts and texts that are
#: only shown (args, attempts, a cell's error, a run's pid and host).
BOUND: dict[str, tuple[str, ...]] = {
    "meta": ("key", "value"),
    "runs": ("run_id", "notebook", "started"),
    "cells": ("exec_id", "seq", "run_id", "cell_id", "cell_key", "source", "status", "manifest"),
    "steps": (
        *("record_id", "identity", "epoch", "status", "kind", "result", "blob", "error"),
        *("name", "cell_key", "seq", "key", "n"),  # where replay finds it, its place there
    ),
    "variables": VariableRow._fields[:-1],
    "payloads": PayloadRow._fields[:-1],
    "outputs": OutputRow._fields[:-1],
}
#: Every signed row type, in the order ``durable-nb trust`` signs them.
SIGNED_ROWS = (MetaRow, RunRow, CellRow, StepRow, VariableRow, PayloadRow, OutputRow)
#: Row type -> (its table, the positions of its bound columns).
_WHERE = {
    t: (TABLES[t][1], tuple(t._fields.index(c) for c in BOUND[TABLES[t][1]])) for t in SIGNED_ROWS
}
#: ``meta`` keys no signature covers: read before anything else (by the migration), or
#: only written (who last ran ``durable-nb trust``).
UNSIGNED_META = ("schema_version", "trusted_by", CLOSED_KEY)
#: The ``meta`` key of the journal's id (:data:`durable_nb.trust.JOURNAL_ID`): random, made
#: with the journal, inside every row signature, so a row signed in one journal never
#: verifies in another (:mod:`.binding`). Its own row is signed as any other.
ID_KEY = "journal"
_SIGNED_META = f"WHERE key NOT IN {UNSIGNED_META}"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def microseconds(value: Any) -> Any:
    """A time as whole microseconds since 1970 (what a signature binds of a run's start):
    float seconds as written, a datetime as read back, an int as ``epoch_us`` gives it."""
    if type(value) is float:
        return round(value * 1e6)  # as DuckDB's to_timestamp rounds
    if isinstance(value, datetime):
        return (value - _EPOCH) // timedelta(microseconds=1)
    return value


def in_blobs(row: Any) -> bool:
    """Whether what loading ``row`` unpickles lives in blob files (its sig has two parts)."""
    if type(row) is StepRow:
        return row.blob is not None
    return type(row) is PayloadRow and row.stream is None and row.stream_chunks is not None


def fields(row: Any) -> list[Any]:
    """The values ``row``'s signature binds, in :data:`BOUND` order."""
    _, where = _WHERE[type(row)]
    if type(row) is RunRow:
        return [row.run_id, row.notebook, microseconds(row.started)]
    return [row[i] for i in where]


def sign(row: Any, journal: str | None, content: Any = None) -> str:
    """This user's signature of ``row`` in the journal ``journal`` (its id; None: the
    signature of schema 5, which named no journal); ``content``: its blob content, when
    :func:`in_blobs`."""
    table, _ = _WHERE[type(row)]
    sig = trust.sign_fields(table, fields(row), journal)
    return sig if content is None else f"{sig}:{trust.sign('payload', content)}"


def verify(row: Any, journal: str | None, content: Any = None, quick: bool = False) -> bool:
    """Whether this user signed ``row`` as it is, in the journal ``journal`` (its id).

    Content in blob files must be given as ``content`` (read and checked against its name),
    unless ``quick``: then only the row is checked (a look that reads no files).
    """
    table, _ = _WHERE[type(row)]
    sig = row[-1] if type(row[-1]) is str else ""
    mine, _, part = sig.partition(":")
    if not trust.verify_fields(table, fields(row), mine, journal):
        return False
    if not in_blobs(row):
        return not part
    return bool(part) if quick else content is not None and trust.verify("payload", content, part)


def content_signed(sig: str | None, content: Any) -> bool:
    """Whether the content part of ``sig`` (a record whose content is in blob files) is
    this user's signature of ``content``."""
    _, _, part = (sig or "").partition(":")
    return bool(part) and trust.verify("payload", content, part)


def select(row_type: type, where: str = "") -> str:
    """``SELECT`` of ``row_type``'s rows with only the bound columns and ``sig`` (the others
    NULL): what :func:`verify` reads, without converting times no signature covers."""
    table, _ = _WHERE[row_type]
    read = {*BOUND[table], "sig"}
    columns = [c if c in read else f"NULL AS {c}" for c in row_type._fields]
    if row_type is RunRow:
        columns[RunRow._fields.index("started")] = "epoch_us(started) AS started"
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
    _refused: str | None
    #: Why no result replays: this user's signed cell records name another journal id
    #: than the id row's (:mod:`.binding`); None otherwise. Cleared only by a new id.
    _id_refused: str | None = None
    _cells_checked: bool
    epoch: int

    _warn: Any  # ``warn(message, once)``: the journal's
    #: The journal's id, inside every row signature; None only while a journal of schema
    #: 5 (whose signatures named no journal) is carried over (:mod:`.binding`).
    id: str | None = None

    def _write_id(self, new: str) -> None:
        """Make ``new`` the journal's id: its signed ``meta`` row (in the caller's
        transaction); rows signed for another id no longer verify."""
        row = MetaRow(ID_KEY, new)
        self._con.execute(
            "INSERT OR REPLACE INTO meta (key, value, sig) VALUES (?, ?, ?)",
            [*row[:-1], sign(row, new)],
        )
        self.id, self._id_refused = new, None

    def _sign(self, row: Any, content: Any = None) -> str:
        """This user's signature of ``row``: its table, key and every column a load uses.

        ``content``: what its blob files hold, when the writer has it in memory (the
        snapshot's stream: not read back); otherwise read from them."""
        if not in_blobs(row):
            return sign(row, self.id)
        return sign(row, self.id, self._content(row) if content is None else content)

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
        return verify(row, self.id, content, quick=content is None)

    def check(self, row: Any, what: str, content: Any = None, quick: bool = False) -> None:
        """Raise :class:`UntrustedJournal` unless this user signed ``row`` (and ``content``:
        its blob content, when it has some, unless ``quick``) as it is."""
        if not verify(row, self.id, content, quick):
            raise self._untrusted(what)

    def _untrusted(self, what: str) -> UntrustedJournal:
        return self._refusal(
            f"holds {what} not signed by you (written by another user, by a durable_nb that "
            "signed content only, or changed since): it is not loaded, since loading it could "
            "run code or give a value to the wrong name; "
            + trust.HOW_TO_TRUST.format(target=self._notebook or self.path)
        )

    def _withheld(self, what: str) -> UntrustedJournal:
        return self._refusal(
            f"lacks {what} that you recorded (deleted or withheld since: the records of each "
            "cell execution are counted in its signed record): nothing runs in their place, "
            "since it may have been done already; restore the journal from a copy, or, to "
            f"accept it as it is, run `durable-nb trust {self._notebook or self.path}` "
            "(or `%durable trust`)"
        )

    def _refusal(self, text: str) -> UntrustedJournal:
        return UntrustedJournal(str(self.path), f"journal {self.path} {text}")

    # -- meta ------------------------------------------------------------------------

    def _read_epoch(self) -> None:
        """Read the epoch: only this user's replays. An epoch row not signed, or one older
        than a signed record's epoch (set back, or deleted), makes every lookup refuse."""
        row = self._con.execute(select(MetaRow, "WHERE key = 'epoch'")).fetchone()
        if row is None:
            self.epoch, self._refused = 0, None
        else:
            self._epoch_is(MetaRow._make(row))
        if self._refused is None:
            self._check_epoch_not_set_back()
        if self._refused is None:
            self._refused = self._id_refused
        if self._refused is not None:
            self._warn(self._refused, f"epoch:{self.path}")

    def _epoch_is(self, row: MetaRow) -> None:
        self.epoch = meta_int(self.path, "epoch", row.value)
        self._refused = None
        if not verify(row, self.id):
            self._refused = (
                f"journal {self.path} records an epoch (which step results replay) not signed "
                "by you: no result replays and no step runs in their place; "
                + trust.HOW_TO_TRUST.format(target=self._notebook or self.path)
            )

    def _newest_signed(self, row_type: type, where: str, params: list,
                       signed: Any = None) -> Any:  # fmt: skip
        """The first record of ``row_type`` in ``where``'s order that this user signed
        (``signed(row)``; by default for this journal), or None. Read in windows (each
        twice the last: top-N, no full sort when one verifies early) until one does:
        unsigned rows put first (padding) never push a signed one out of sight."""
        signed = signed or (lambda row: verify(row, self.id, quick=True))
        query, offset, size = select(row_type, f"{where} LIMIT ? OFFSET ?"), 0, 64
        while batch := self._con.execute(query, [*params, size, offset]).fetchall():
            offset, size = offset + len(batch), min(size * 2, 1 << 16)
            for row in map(row_type._make, batch):
                if signed(row):
                    return row
        return None

    def _check_epoch_not_set_back(self) -> None:
        cell = self._newest_signed(CellRow, "ORDER BY seq DESC NULLS LAST", [])
        later = manifest.parse(cell.manifest).get("e") if cell is not None else None
        if (type(later) is int and later > self.epoch) or self._newest_signed(
            StepRow, "WHERE epoch > ? ORDER BY epoch DESC", [self.epoch]
        ) is not None:
            self._refused = (
                f"journal {self.path} records epoch {self.epoch}, older than records you "
                "signed in a later epoch (its epoch row was set back or deleted): no result "
                "replays and no step runs in their place; restore the journal from a copy, "
                "or " + trust.HOW_TO_TRUST.format(target=self._notebook or self.path)
            )

    def trusted_meta(self, key: str) -> str | None:
        """The value of ``key`` in ``meta`` when this user signed it; one not signed is
        left out (None), and one line says so."""
        rows = self._select(select(MetaRow, "WHERE key = ?"), [key])
        if not rows:
            return None
        row = MetaRow._make(rows[0])
        if verify(row, self.id):
            return row.value
        self._warn(
            f"journal {self.path} records {key!r} not signed by you: it is ignored; "
            + trust.HOW_TO_TRUST.format(target=self._notebook or self.path),
            f"meta:{key}:{self.path}",
        )
        return None

    def damaged_seqs(self) -> set[int]:
        """Cell executions whose records a damaged log may have lost (this user's record of
        it): a gap in what they wrote is damage, their steps run again, as after a crash."""
        row = self._con.execute(select(MetaRow, "WHERE key = 'damaged'")).fetchone()
        if row is None or not verify(MetaRow._make(row), self.id):
            return set()
        try:
            found = json.loads(row[1])
        except (ValueError, TypeError, RecursionError):
            return set()
        return {s for s in found if type(s) is int} if type(found) is list else set()

    def _note_damaged(self, latest: dict[str, dict[Any, tuple]]) -> None:
        """Add to a fold (``latest``: kind -> key -> record) the cell executions of the
        records a damaged log still holds, as signed ``meta.damaged``.

        Only records this user signed, of cell executions not finished in what is folded
        (the log holds the work since the last fold): a planted log names no other.
        """
        seqs = self.damaged_seqs()
        [(done,)] = self._con.execute(
            "SELECT coalesce(max(seq), 0) FROM cells WHERE status <> 'running'"
        ).fetchall()
        for kind in ("cell", "step", "variable"):
            at, row_type = KINDS[kind]._fields.index("seq"), KINDS[kind]
            seqs.update(r[at] for r in latest[kind].values()
                        if type(r[at]) is int and r[at] > done
                        and verify(row_type._make(r), self.id, quick=True))  # fmt: skip
        row = MetaRow("damaged", json.dumps(sorted(seqs)))
        latest["meta"]["damaged"] = (*row[:-1], sign(row, self.id))
        self._index.damaged = seqs

    # -- restore and resume ----------------------------------------------------------

    def check_restorable(
        self, variables: Iterable[VariableRow] = (), at: int | None = None
    ) -> None:
        """Raise :class:`UntrustedJournal` unless what a restore may use is signed by this
        user and none of it was deleted.

        That is every cell (re-run to recompute values, or resumed), every run (which
        notebook each cell's work belongs to), the ``variables`` rows the restore uses
        (which payload, module or cell each name comes from) and, up to cell execution
        ``at``, every variable row a cell's manifest counts; payloads are checked one by
        one as they load.
        """
        cells = [CellRow._make(r) for r in self._select(select(CellRow))]
        if not all(verify(c, self.id) for c in cells):
            raise self._untrusted("cell code")
        problem = self.runs_problem(cells)
        if problem:
            raise problem
        if not all(verify(v, self.id) for v in variables):
            raise self._untrusted("variables (the value, module or cell each name comes from)")
        if at is not None:
            rows = self._select("SELECT seq, entry_id FROM variables WHERE seq <= ?", [at])
            damaged = self._index.damaged
            if manifest.variables_missing(rows, [c for c in cells if c.seq <= at
                                                 and c.seq not in damaged]):  # fmt: skip
                raise self._withheld("variable records")

    def rows_lost_upto(self, at: int) -> int | None:
        """The first cell execution up to ``at`` whose variable records a damaged log lost
        (its signed manifest counts rows that are not there), or None: a restore as of it
        or later would give the values from before it under its name."""
        damaged = sorted(s for s in self._index.damaged if s <= at)
        if not damaged:
            return None
        # Only its own run's: a later kernel's save after a restore holds the whole namespace.
        cells = [CellRow._make(r) for r in self._select(
            select(CellRow, "WHERE seq IN (SELECT unnest(?::BIGINT[])) AND run_id = "
                   "(SELECT run_id FROM cells WHERE seq = ?)"), [damaged, at])]  # fmt: skip
        cells = [c for c in cells if verify(c, self.id)]
        damaged = [c.seq for c in cells]
        rows = self._select("SELECT seq, entry_id FROM variables WHERE seq IN "
                            "(SELECT unnest(?::BIGINT[]))", [damaged])  # fmt: skip
        lost = manifest.variables_missing(rows, cells)
        return min(lost) if lost else None

    def runs_problem(self, cells: list[CellRow] | None = None) -> UntrustedJournal | None:
        """Why the journal's runs and cells cannot be relied on (a run not signed by this
        user, a cell whose run or whose predecessor is gone), or None."""
        if cells is None:
            cells = [c for c in map(CellRow._make, self._select(select(CellRow)))
                     if verify(c, self.id)]  # fmt: skip
        runs = [RunRow._make(r) for r in self._select(select(RunRow))]
        if not all(verify(r, self.id) for r in runs):
            return self._untrusted("runs (which notebook each cell's work belongs to)")
        known = {r.run_id for r in runs}
        if any(c.run_id not in known for c in cells):
            return self._withheld("runs")
        return self.cells_withheld(cells)

    def cells_withheld(
        self, cells: list[CellRow] | None = None, seqs: set[int] | None = None
    ) -> UntrustedJournal | None:
        """Why the journal cannot be relied on when a cell execution this user signed is
        gone (a signed cell names, as the one before it, a cell that is not there), or
        None. ``cells``: the signed ones (read here when None); ``seqs``: those of every
        cell record there (by default of ``cells``)."""
        if cells is None:
            cells = [c for c in map(CellRow._make, self._select(select(CellRow)))
                     if verify(c, self.id)]  # fmt: skip
        there = {c.seq for c in cells} if seqs is None else seqs
        if set(manifest.gaps(cells, there)) - self._index.damaged:
            return self._withheld("cell executions")
        return None

    def foreign_records(self) -> dict[str, int]:
        """Table -> how many of its records this user did not sign (a load refuses them).

        Every record a load, run or show would use (all but :data:`UNSIGNED_META`).
        Blob files are not read: their content is checked as it loads.
        """
        counts = {}
        with self._lock:
            self.fold()
            for row_type in SIGNED_ROWS:
                counts[TABLES[row_type][1]] = sum(
                    not verify(row, self.id, quick=True)
                    for batch in self._signed_rows(row_type) for row in batch
                )  # fmt: skip
        return counts

    def _signed_rows(self, row_type: type) -> Iterator[list[Any]]:
        """The records of ``row_type``'s table a signature covers, in batches (the bound
        columns and ``sig``: :func:`select`)."""
        where = _SIGNED_META if row_type is MetaRow else ""
        cursor = self._con.execute(select(row_type, where))
        while batch := cursor.fetchmany(4096):
            yield list(map(row_type._make, batch))

    def untrusted(self) -> int:
        """How many records a load would use are not signed by this user (``ls``/``show``)."""
        return sum(self.foreign_records().values())

    def trust(self) -> int:
        """Accept the journal as it is now for this user (``durable-nb trust``): sign every
        record, the resume plan, and manifests made again from the records there.

        Returns how many records were signed; one whose blob files are missing or damaged,
        or that no durable_nb could have written, stays unsigned (and unloadable).
        The journal gets a new id: what was signed for the old one (in a copy of this
        file, or planted from one) no longer verifies here.
        """
        return self._signing_again(self._accept)

    def _accept(self) -> int:
        """:meth:`trust`'s work, in its transaction."""
        con = self._con
        self._write_id(trust.new_journal_id())
        # A cell whose run is gone: its run is not known (a notebook of its own).
        con.execute(
            "INSERT INTO runs (run_id, started, ended, status) SELECT run_id, "
            "min(started), max(ended), 'unknown' FROM cells WHERE run_id NOT IN "
            "(SELECT run_id FROM runs) GROUP BY run_id"
        )
        self._rebuild_manifests()
        plan = con.execute("SELECT value FROM meta WHERE key = 'headless'").fetchone()
        if plan is not None and type(plan[0]) is str:  # sealed, or from before seals
            text = trust.unseal(plan[0], None) or plan[0]
            con.execute(
                "UPDATE meta SET value = ? WHERE key = 'headless'",
                [trust.seal(trust.plan_domain(self.id), text)],
            )
        con.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('trusted_by', ?)",
            [trust.key_id()],
        )
        # Accepted as it is, an epoch set back (or deleted) is not: no result of an
        # epoch older than a record there replays.
        [(newest,)] = con.execute("SELECT coalesce(max(epoch), 0) FROM steps").fetchall()
        if newest > self.epoch:
            con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?)",
                        [str(newest)])  # fmt: skip
        return sum(self._sign_all(row_type) for row_type in SIGNED_ROWS)

    def _signing_again(self, work: Any) -> int:
        """Run ``work()`` (it signs records again, maybe for a new id) in one transaction
        over the folded journal, then read the epoch and forget what was loaded; its
        result. On failure nothing changed, the id included."""
        with self._lock:
            self.fold()
            done = self._transaction(work)
            self._read_epoch()
            self._index.reset(self.epoch, self.id)
            self._cells_checked = False
        return done

    def _transaction(self, work: Any) -> Any:
        """``work()`` in one transaction (on failure nothing changed, the id included)."""
        con, old = self._con, self.id
        con.execute("BEGIN")
        try:
            done = work()
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            self.id = old
            raise
        return done

    def _rebuild_manifests(self) -> None:
        """Number the completed results of each cell execution's batches 1..n again, and
        make each cell's manifest say what is there now."""
        con = self._con
        con.execute(
            "UPDATE steps SET n = r.place FROM (SELECT record_id, row_number() OVER ("
            "PARTITION BY seq, epoch, CASE WHEN key IS NULL THEN 'c:' || cell_key "
            "ELSE 'k:' || name END ORDER BY n NULLS LAST, ended, record_id) AS place "
            "FROM steps WHERE status = 'ok') r WHERE steps.record_id = r.record_id"
        )
        con.execute("UPDATE steps SET n = NULL WHERE status <> 'ok'")
        results: dict[int, dict[str, int]] = {}
        for seq, epoch, cell_key, name, key, count in con.execute(
            "SELECT seq, epoch, cell_key, name, key, count(*) FROM steps WHERE status = 'ok' "
            "GROUP BY ALL"
        ).fetchall():
            which = manifest.entry(epoch, manifest.batch(cell_key, name, key))
            found = results.setdefault(seq, {})
            found[which] = found.get(which, 0) + count
        variables: dict[int, list[str]] = {}
        for seq, entry_id in con.execute("SELECT seq, entry_id FROM variables").fetchall():
            variables.setdefault(seq, []).append(entry_id)
        cells = [CellRow._make(r) for r in con.execute(select(CellRow)).fetchall()]
        made = manifest.rebuild(cells, self.epoch, results, variables, self.id)
        self._update(con, "cells", "exec_id", "manifest", list(made.items()))

    def _sign_all(self, row_type: type) -> int:
        """Sign every record of ``row_type``'s table; how many were signed."""
        table = TABLES[row_type][1]
        out: list[tuple[Any, str]] = []
        for batch in self._signed_rows(row_type):
            for row in batch:
                if row_type is MetaRow and row.key == ID_KEY:
                    continue  # signed as it was made (_write_id)
                try:
                    out.append((row[0], self._sign(row)))
                except (OSError, ValueError, TypeError, RecursionError):
                    pass  # a missing blob, a crafted column: that record stays unloadable
        self._update(self._con, table, row_type._fields[0], "sig", out)
        return len(out)

    @staticmethod
    def _update(con: Any, table: str, key: str, column: str, pairs: list[tuple[Any, str]]) -> None:
        """Set ``column`` of the rows whose ``key`` is each pair's first value."""
        if not pairs:
            return
        import numpy as np

        keys, values = (np.array(c, dtype=object) for c in zip(*pairs, strict=True))
        con.register("_dnb_set", {"k": keys, "v": values})
        try:
            con.execute(
                f"UPDATE {table} SET {column} = _dnb_set.v FROM _dnb_set "
                f"WHERE {table}.{key} = _dnb_set.k"
            )
        finally:
            con.unregister("_dnb_set")

    def _resign_crashed(self) -> None:
        """The cells a dead process left running become crashed: those it signed stay signed
        (the status is bound), those it did not stay unsigned."""
        rows = self._con.execute(select(CellRow, "WHERE status = 'running'")).fetchall()
        for row in map(CellRow._make, rows):
            if verify(row, self.id):
                sig = sign(row._replace(status="crashed"), self.id)
                self._con.execute("UPDATE cells SET sig = ? WHERE exec_id = ?", [sig, row.exec_id])
