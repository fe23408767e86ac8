"""The journal: a DuckDB file beside the notebook, fed through an append log.

Each record (run, cell, step, variable, payload) is appended to ``<stem>.log`` and
fdatasync'd (~0.1 ms), then folded into DuckDB in batches (~3 µs/row), because a DuckDB
commit per step costs ~0.9 ms here. Replay is served from batches loaded on first need
(:mod:`.replay`): opening reads no step. Errors are raised as JournalError; nothing here
prints.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .. import trust
from ..blobs import BLOB_THRESHOLD, BlobStore
from ..codec import JSON
from ..errors import (
    JournalError,
    JournalUnwritable,
    UntrustedJournal,
    describe,
)
from . import files, opening
from .binding import Binding
from .log import GROUP, Log, least_size, read_regular, scan
from .manifest import Written
from .reads import Reads, writes
from .replay import Hit, ReplayIndex, count
from .schema import (
    KINDS,
    SCHEMA_VERSION,
    SIGNED,
    TABLES,
    CellRow,
    MetaRow,
    Row,
    StepRow,
    VariableRow,
    migrate,
    rollback,
    upgrade,
)
from .seal import ID_KEY, content_signed, select, verify
from .upsert import bulk_upsert

#: Fold the log into DuckDB once it holds this many records.
FOLD_EVERY = 4096
#: ... or once it is this big after a cell's outputs were written (they are rewritten,
#: up to their cap, while a cell runs).
FOLD_BYTES = 64 << 20

#: The most bytes of rows written as one log record (the reader takes records up to
#: ``log.MAX_RECORD``, 64 MiB): a cell that saves more writes them ahead.
GROUP_BYTES = 16 << 20

#: ``warn(message, once)``: how the journal tells of trouble that loses nothing.
Warn = Callable[[str, str | None], None]


class Journal(Reads, Binding):
    """An open journal, held by this process until :meth:`close`.

    Use :meth:`open`; errors arrive as :class:`~durable_nb.errors.JournalError`.
    Reads are named methods (see :class:`~durable_nb.store.reads.Reads`).
    """

    def __init__(self, path: Path, con: Any, log: Log, warn: Warn | None,
                 notebook: str | None, copied_from: int | None = None) -> None:  # fmt: skip
        self.path = path
        self.blobs = BlobStore(files.blobs_path(path))
        #: The pid of the live process holding the original, when this is a copy of it.
        self.copied_from = copied_from
        self._con = con
        self._log = log
        self._warn = warn or (lambda message, once=None: None)
        self._notebook = notebook
        self._lock = threading.RLock()
        self._index = ReplayIndex(self._query_as_is)
        self.epoch = 0
        self._seq = 0
        self._fold_at = FOLD_EVERY
        self._written = Written(0)
        #: Why no result replays (an epoch not signed by this user, or set back), or None.
        self._refused: str | None = None
        #: Whether rows were appended since the last fdatasync (see :meth:`sync`).
        self.unsynced = False
        self._appended = 0  # log records written by this process (what a sync covered)
        self._unstamped, self._idle_at = True, -1  # DuckDB written since it was vouched for
        #: Whether the signed cell executions were checked for one deleted (first miss).
        self._cells_checked = False
        self._cells_gap: UntrustedJournal | None = None

    # -- opening -------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, warn: Warn | None = None, notebook: str | None = None,
             copied_from: int | None = None, read_only: bool = False) -> Journal:  # fmt: skip
        """Open (creating if needed) the journal at ``path`` and recover it.

        Recovery folds the log left by the last run (and a ``<stem>.wal`` log of an
        earlier version) and marks cells and runs a dead process left ``running`` as
        ``crashed``.

        Parameters
        ----------
        path : path
            The ``.duckdb`` file.
        warn : callable, optional
            ``warn(message, once)`` is told (one sentence) of trouble that loses nothing
            (a failed fold in passing: the records stay in the log; a missing blob file);
            ``once``: None, or a key told once. :func:`durable_nb._report.report` fits.
        notebook : str, optional
            What to name in messages that ask the person to run ``durable-nb trust``;
            the journal's path by default.
        copied_from : int, optional
            When ``path`` is a copy of a journal a live process holds (``durable-nb
            --copy``), that process's pid: its runs without an end are still running.
        read_only : bool
            Open an existing journal without writing to it (a read-only file, folder or
            full disk): its completed steps replay, :meth:`write` raises
            :class:`JournalUnwritable`, and the log's records are read but not folded.
        """
        duckdb = opening.engine()  # imported on first need

        path = Path(path)
        try:
            con, made_here = opening.connect(path, read_only)
        except JournalError:
            raise
        except (OSError, duckdb.Error) as exc:
            raise opening.classify(path, exc) from exc
        try:
            version = migrate(path, con, read_only, made_here, opening.macros(con, made_here))
            log = None if read_only else Log(files.log_path(path))
        except (OSError, duckdb.Error) as exc:
            con.close()
            raise opening.classify(path, exc) from exc
        except BaseException:  # a JournalError, a Ctrl-C: nothing is left open
            with contextlib.suppress(Exception):  # (a cursor still running: helper-106 F2)
                con.close()
            raise
        self = cls(path, con, log, warn, notebook, copied_from)
        try:
            self._recover(version) if log is not None else self._load_read_only()
        except (OSError, duckdb.Error) as exc:
            self.abandon()
            raise opening.classify(path, exc) from exc
        except BaseException:
            self.abandon()
            raise
        return self

    def _recover(self, version: int) -> None:
        with self._lock:
            known = self._open_id(version)  # the fold signs meta.damaged for it
            self._fold_legacy()
            self.fold()
            con = self._con
            con.execute("BEGIN")
            self._resign_crashed()
            con.execute("UPDATE cells SET status = 'crashed' WHERE status = 'running'")
            con.execute("UPDATE runs SET status = 'crashed' WHERE ended IS NULL")
            con.execute("COMMIT")
            self._bind(version, known)
            self._read_epoch()
            newest = self._number_after()
            self._written = Written(newest)
            self._index.reset(self.epoch, self.id)
            self._index.damaged = self.damaged_seqs()

    def _number_after(self) -> int:
        """Number the next cell execution after every one the journal has a row of (its
        newest cell record is returned): a kernel killed while it wrote a big cell's
        variables ahead of its end record left rows of a number no cell record has, which
        a later cell must not take."""
        newest, rows = self._con.execute(
            "SELECT (SELECT coalesce(max(seq), 0) FROM cells), greatest("
            "(SELECT coalesce(max(seq), 0) FROM variables), "
            "(SELECT coalesce(max(seq), 0) FROM steps))"
        ).fetchone()
        self._seq = max(newest, rows)
        return newest

    def _load_read_only(self) -> None:
        """Read without writing: the tables, then the records the last run left in the log."""
        self._open_id(SCHEMA_VERSION)  # one not signed by this user: nothing verifies
        self._read_epoch()
        self._number_after()
        self._index.reset(self.epoch, self.id)
        self._index.damaged = self.damaged_seqs()
        try:
            records, damaged = scan(read_regular(files.log_path(self.path)))
        except OSError:  # no log (a clean close), or one this user cannot read
            return
        self._tell_damaged(files.log_path(self.path), damaged)
        width = len(StepRow._fields)
        epoch = self.epoch
        for kind, row in records:  # folded in order, as a fold would
            if kind == "meta" and row[:1] == ("epoch",) and 2 <= len(row) <= 3:
                meta = MetaRow._make(upgrade(kind, row))
                if str(meta.value).isdigit() and int(meta.value) != self.epoch:
                    self._epoch_is(meta)
                    self._index.reset(self.epoch, self.id)
            elif kind == "step" and 12 <= len(row) <= width:
                s = StepRow._make(upgrade(kind, row))
                if s.status == "ok" and s.epoch == self.epoch:  # kept: never folded here
                    self._index.add(s.identity, s.cell_key, s.name, s.key, Hit.of(s, self.id))
        if self.epoch != epoch:  # an old signed epoch record in the log is a set-back too
            if self._refused is None:
                self._check_epoch_not_set_back()
            if self._refused is not None:
                self._warn(self._refused, f"epoch:{self.path}")

    def stop_writing(self) -> None:
        """Write nothing more (the disk refused a write); the next open folds the log."""
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    @property
    def read_only(self) -> bool:
        """True when nothing is written (opened ``read_only``, or :meth:`stop_writing`)."""
        return self._log is None

    def _fold_legacy(self) -> None:
        """Fold (then delete) the ``<stem>.wal`` log an earlier version left, oldest log first."""
        legacy = files.legacy_log_path(self.path)
        if not legacy.exists():
            return
        old = Log(legacy)
        try:
            logs = [old, self._log]
            logs.sort(key=lambda log: os.fstat(log.fd).st_mtime)
            for log in logs:
                self._fold_log(log)
        finally:
            old.close()
        legacy.unlink()

    # -- writing -------------------------------------------------------------

    def write(self, row: Row, sync: bool = True, content: Any = None) -> None:
        """Append a typed row (:class:`~durable_nb.store.schema.StepRow`, ...).

        A later row with the same first column replaces the earlier one. Cells, steps,
        variables and payloads are signed here (seal.py: the row's table, key and every
        column a load uses), one keyed BLAKE2b a row; ``content``: what the row's blob
        files hold, when the caller has it in memory (else they are read back to sign).
        Raises :class:`JournalUnwritable` when the disk refuses the write.
        """
        self.write_all([(row, content)], sync)

    def write_all(self, rows: list[tuple[Row, Any]], sync: bool = True) -> None:
        """Append ``(row, content)`` pairs as :meth:`write` does, as one log record: after a
        crash or a torn write the log holds all of them or none (a cell's variables and
        its end record, with no fdatasync between).

        Rows too big for one record (over :data:`GROUP_BYTES`) are written one by one, all
        but the last fdatasync'd before it: the last (an end record) is then never on disk
        without the others.
        """
        if self._log is None:
            raise JournalUnwritable(str(self.path), f"journal {self.path} is open read-only")
        try:
            with self._lock:
                placed: list[tuple[str, Row, tuple]] = []
                try:
                    for row, content in rows:
                        placed.append(self._record(row, content))
                    self._append(placed, sync)
                except BaseException:  # an error, or Ctrl-C: a torn record is damage
                    self._written.undo(row for _, row, _ in placed)
                    raise
                self.unsynced = not sync  # an fdatasync covers every earlier append
                self._appended += 1
                outputs = False
                for kind, row, record in placed:
                    outputs = outputs or kind == "output"
                    if kind == "step" and row.status == "ok":
                        hit = Hit(row.kind, row.result, row.blob, record[-1], True)
                        self._index.add(row.identity, row.cell_key, row.name, row.key, hit)
                grown = outputs or len(placed) > 1  # rewritten outputs, a cell's variables
                if self._log.count >= self._fold_at or (grown and self._log.size >= FOLD_BYTES):
                    self._fold_in_passing()
        except OSError as exc:
            raise JournalUnwritable.from_cause(str(self.path), exc) from exc

    def _append(self, placed: list[tuple[str, Row, tuple]], sync: bool) -> None:
        """Append placed rows: one record, a group, or (over :data:`GROUP_BYTES`) one by
        one with an fdatasync before the last."""
        records = [(kind, record) for kind, _, record in placed]
        if len(records) == 1:
            self._log.append(records[0], sync)
        elif least_size(records) <= GROUP_BYTES:
            self._log.append((GROUP, tuple(records)), sync)
        else:
            last = placed[-1][1]
            if type(last) is CellRow:  # its start first, so a kill meanwhile shows it crashed
                kind, _, start = self._record(last._replace(status="running", ended=None), None)
                records.insert(0, (kind, start))
            for record in records[:-1]:
                self._log.append(record, False)
            self._log.sync()
            self._log.append(records[-1], sync)

    def _record(self, row: Row, content: Any) -> tuple[str, Row, tuple]:
        """``(kind, row placed, record)``: ``row`` as the log holds it, placed and signed."""
        kind = TABLES[type(row)][0]
        if type(row) is StepRow:  # its place in its batch (manifest.py)
            row = self._written.step(row)
        elif type(row) is CellRow:  # what it wrote, once it ended
            row = self._written.cell(row, self.epoch, self.id)
        elif type(row) is VariableRow:
            self._written.variable(row)
        try:
            signed = (*row[:-1], self._sign(row, content)) if kind in SIGNED else tuple(row)
            return kind, row, signed
        except BaseException:
            self._written.undo([row])
            raise

    def write_meta(self, key: str, value: str, sync: bool = True) -> None:
        """Set ``key`` in the ``meta`` table: ``write(MetaRow(key, value))``."""
        self.write(MetaRow(key, value), sync)

    def _fold_in_passing(self) -> None:
        """Fold a long log; the rows are already durable in it, so a failure only warns."""
        duckdb = opening.engine()

        try:
            self.fold()
            self._fold_at = FOLD_EVERY
        except (duckdb.Error, OSError) as exc:
            self._fold_at = self._log.count + FOLD_EVERY
            self._warn(
                f"could not fold the journal log into {self.path} ({describe(exc)}); the "
                "records are safe in the log, and the next open folds them",
                f"fold:{self.path}",
            )

    def sync(self) -> None:
        """Make every row written with ``sync=False`` durable (one fdatasync: group commit),
        outside the lock where the log has a second description (:meth:`Log.sync_apart`):
        rows written meanwhile (a cell's end at its reply) wait for no disk (a network file
        system's: tens of ms), and leave the journal unsynced."""
        try:
            with self._lock:
                log, appended = self._log, self._appended
                if log is None or not log.apart:
                    if log is not None:
                        log.sync()
                        self.unsynced = False
                    return
            log.sync_apart()
        except OSError as exc:
            raise JournalUnwritable.from_cause(str(self.path), exc) from exc
        with self._lock:
            self.unsynced = self.unsynced and self._appended != appended

    def put_payload(self, payload: bytes) -> tuple[bytes | None, str | None]:
        """Place a result payload: inline when small, else in a blob file."""
        if len(payload) < BLOB_THRESHOLD:
            return payload, None
        try:
            return None, self.blobs.put(payload)
        except OSError as exc:
            raise JournalUnwritable.from_cause(str(self.path), exc) from exc

    def new_epoch(self) -> int:
        """Start a new epoch: earlier step results no longer replay."""
        with self._lock:
            self.epoch += 1
            self.write_meta("epoch", str(self.epoch))
            # Only results of the new epoch replay: this user's own (unless the journal's
            # id is in doubt: only a new id, by trust, clears that).
            self._refused = self._id_refused
            self._index.reset(self.epoch, self.id)
            return self.epoch

    @property
    def seq(self) -> int:
        """The sequence number of the last cell execution recorded."""
        return self._seq

    def next_seq(self) -> int:
        """The next cell execution's sequence number (journal-wide, increasing)."""
        with self._lock:
            self._seq += 1
            return self._seq

    # -- replay ----------------------------------------------------------------

    def lookup(
        self, identity: str, cell_key: str | None = None, name: str | None = None
    ) -> tuple[str, bytes] | None:
        """The completed result of step ``identity`` as ``(kind, payload)``, or None.

        ``cell_key`` and ``name``: the asking cell and step. Given, the results of that
        cell (and the ``key=`` calls of that step) are read in one query and kept for the
        next lookups; otherwise this identity alone is read. Raises
        :class:`UntrustedJournal` for a result that needs unpickling and was not signed by
        this user as the result of this call (its row: identity, epoch, kind, content). A
        JSON result needs no signature: one not signed replays, and one line says so (once).
        Also raised, rather than the step running again, when results this user signed are
        missing from the cell's batch (deleted since: :mod:`.manifest`), or when the
        journal's epoch is not this user's (:meth:`_read_epoch`).

        Signatures were checked as the batch loaded: a lookup checks a flag (and the
        content of a result kept in a blob file, which it reads).
        """
        if self._refused is not None:
            raise UntrustedJournal(str(self.path), self._refused)
        with self._lock:
            hit = self._index.get(identity, cell_key, name)
            if hit is None and cell_key is not None and name is not None:
                if self._index.incomplete & {("cell", cell_key), ("key", name)}:
                    raise self._withheld(f"results of the steps of cell {cell_key}")
            if hit is None:  # a whole cell execution gone took its steps' results along
                if not self._cells_checked:
                    cells = list(map(CellRow._make, self._query_as_is(select(CellRow), [])))
                    # A signed cell naming one that is not signed: that one is gone (an
                    # unsigned record in a chain of this user's is one of his, changed).
                    self._cells_gap = self.cells_withheld([c for c in cells if verify(c, self.id)])
                    self._cells_checked = True
                if self._cells_gap is not None:
                    raise self._cells_gap
        if hit is None:
            return None
        try:
            payload = hit.inline if hit.blob is None else self.blobs.get(hit.blob)
        except OSError as exc:  # a partial copy, a lost file: the step runs again
            self._warn(
                f"a recorded step result is missing ({describe(exc)}); the step runs again", None
            )
            return None
        signed = hit.signed and (hit.blob is None or content_signed(hit.sig, payload))
        if hit.kind != JSON and not signed:
            raise self._untrusted("a step result")
        if not signed:
            self._warn(
                f"journal {self.path} holds step results not signed by you: JSON ones replay "
                "as recorded, pickled ones are refused; "
                + trust.HOW_TO_TRUST.format(target=self._notebook or self.path),
                f"foreign-json:{self.path}",
            )
        return hit.kind, payload

    @property
    def completed(self) -> int:
        """How many step results can replay (in the current epoch)."""
        n = count(self._select, self.epoch)
        if self._log is None and self._index.recent:  # read-only: the log is not folded
            folded = self._select("SELECT DISTINCT identity FROM steps WHERE status = 'ok' "
                                  "AND epoch = ?", [self.epoch])  # fmt: skip
            n += len(self._index.recent.keys() - {r[0] for r in folded})
        return n

    # -- SQL ---------------------------------------------------------------------------

    def query(self, sql: str, params: Iterable[Any] | None = None) -> Any:
        """Run the person's read-only ``sql`` over the journal's tables (``%durable sql``).

        Returns a DataFrame. Raises ValueError with DuckDB's message when the query fails,
        or when a statement is not a read (SELECT, WITH ... SELECT, DESCRIBE, SHOW,
        SUMMARIZE, EXPLAIN of a read): a query never changes the journal.
        """
        duckdb = opening.engine()

        refused = writes(sql)
        if refused:
            raise ValueError(
                f"%durable sql only reads the journal; {refused} statements are refused "
                "(use SELECT, WITH ... SELECT, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN)"
            )
        with self._lock:
            self.fold()
            try:
                return self._con.execute(sql, list(params or [])).df()
            except duckdb.Error as exc:
                raise ValueError(f"{type(exc).__name__}: {exc}") from None

    def _select(self, sql: str, params: Iterable[Any] | None = None) -> list[tuple]:
        """Rows of one of the named reads, after folding the log (so they are current)."""
        with self._lock, self._damage_named():
            self.fold()
            return self._con.execute(sql, list(params or [])).fetchall()

    def _query_as_is(self, sql: str, params: list) -> list[tuple]:
        """Rows of a query on what is folded (the replay index keeps the rest itself)."""
        with self._lock, self._damage_named():
            return self._con.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _damage_named(self):
        """DuckDB meeting a damaged page (or a disk error) mid-session: a JournalError naming
        the file and what to do, as at open. DuckDB checks a page's checksum only when it
        reads the page, so damage can surface long after the journal opened."""
        duckdb = opening.engine()
        try:
            yield
        except duckdb.Error as exc:
            msg = str(exc)
            if isinstance(exc, duckdb.IOException) or "Corrupt" in msg or "checksum" in msg:
                raise opening.classify(self.path, exc) from exc
            raise

    def checkpoint(self) -> None:
        """Fold the log, and DuckDB's WAL into its file: whole, to copy (``export``)."""
        with self._lock:
            self.fold()
            self._con.execute("CHECKPOINT")

    def gc(self) -> tuple[int, int]:
        """Delete blob files that no payload or step refers to; return (count, bytes)."""
        gone = self.blobs.names() - self.referenced_blobs()
        return len(gone), sum(map(self.blobs.remove, gone))

    # -- folding and closing -------------------------------------------------

    def fold(self) -> None:
        """Move the log's records into DuckDB in one transaction, then empty the log (a crash
        between the two loses nothing: folded again, rows replace rows of the same key)."""
        with self._lock:
            if self._log is not None:  # a read-only journal folds nothing
                self._fold_log(self._log)

    def _fold_log(self, log: Log) -> None:
        records = log.read()
        self._tell_damaged(log.path, log.damaged)
        if not records:
            if log.size:  # only a torn tail: drop it
                log.truncate()
            return
        latest: dict[str, dict[Any, tuple]] = {kind: {} for kind in KINDS}
        for kind, row in records:
            if kind not in latest or not row or len(row) > len(KINDS[kind]._fields):
                continue  # not a record this code writes: damage, never data
            row = upgrade(kind, row)  # a record of an earlier schema: today's layout
            latest[kind][row[0]] = row
        for key in (ID_KEY, "schema_version"):  # written to DuckDB only: one in a log is planted
            latest["meta"].pop(key, None)
        if log.damaged:  # gaps in these cell executions are damage, not deletion
            self._note_damaged(latest)
        con = self._con
        con.execute("BEGIN")
        try:
            for row_type, (kind, table) in TABLES.items():
                if latest[kind]:
                    bulk_upsert(con, table, row_type._fields, list(latest[kind].values()))
            con.execute("COMMIT")
        except BaseException:
            rollback(con)  # the first error is the one to report
            raise
        self._unstamped = True
        log.truncate()
        if log is self._log:
            self._index.folded()

    def _tell_damaged(self, path: Path, n: int) -> None:
        if n:
            self._warn(
                f"{n} damaged record{'s' if n != 1 else ''} skipped in {path}: a step they "
                "held runs again, and a restore gives the namespace from before a cell they held",
                once=f"damaged:{path}:{n}",
            )

    def stamp(self) -> None:
        """Vouch for DuckDB's file as it stands (:mod:`.stamp`) once written since, when idle
        since the last call (the tick's: no row waits): a kill leaves it trusted, unchecked."""
        with self._lock:  # (no write between the nonce and the identity: helper-77 F1)
            idle, self._idle_at = self._idle_at == self._appended, self._appended
            if self._unstamped and idle and self._log is not None:
                nonce = opening.mark_closed(self._con)  # None: not written, tried again
                self._unstamped = nonce is None
                opening.closed(self.path, nonce)

    def close(self) -> None:
        """Fold the log, mark the file closed (:mod:`.stamp`) and release the journal."""
        with self._lock:
            try:  # (a fold that raises: nothing is marked or remembered)
                self.fold()
                nonce = opening.mark_closed(self._con) if self._log is not None else None
            finally:
                self.abandon()
            opening.closed(self.path, nonce)

    def abandon(self) -> None:
        """Release the journal without writing anything more (the disk refused a write)."""
        with self._lock:  # (no write or sync then finds the closed log: no spurious error)
            closers, self._log = (getattr(self, "_log", None), self._con), None
        for closer in closers:
            with contextlib.suppress(Exception):
                if closer is not None:
                    closer.close()
