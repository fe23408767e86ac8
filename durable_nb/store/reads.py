"""Every read of the journal's tables, as a named method returning typed rows.

Mixed into :class:`~durable_nb.store.journal.Journal`; each read folds the log first,
so it sees every record written so far. No SQL is written outside this package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from .schema import CellRow, OutputRow, PayloadRow, RunRow, StepRow, VariableRow, select
from .seal import select as bound
from .seal import verify

#: The cells a restore may stop at, whose variable rows count: ended ok, namespace saved,
#: and no earlier cell of their run lacks its end record. Within a run every cell that
#: starts ends (the next one's start writes its end), so one that did not while later ones
#: did lost its records (its variables with them) to damage in the log: the namespace of
#: the cells after it in that run is not whole in the journal.
_SAVED = (
    "status = 'ok' AND error IS NULL AND NOT EXISTS (SELECT 1 FROM cells lost WHERE "
    "lost.run_id = cells.run_id AND lost.seq < cells.seq "
    "AND lost.status IN ('running', 'crashed'))"
)


class Interrupted(NamedTuple):
    """The last cell execution of an earlier run, which crashed or was interrupted."""

    cell: CellRow
    steps_done: int  # its steps that completed
    step_error: str | None  # the error of one of its steps that failed


class Overview(NamedTuple):
    """A journal in one look (``durable-nb ls``/``show``)."""

    runs: list[RunRow]  # oldest first
    cells: int
    cells_ok: int
    steps: int
    steps_ok: int
    last_cell_status: str | None  # of the cell execution with the highest seq
    epoch: int
    schema: str | None


class Timeline(NamedTuple):
    """What ``%durable timeline`` and ``durable-nb show --html`` draw: runs, cells, steps."""

    runs: list[RunRow]  # oldest first
    cells: list[CellRow]  # by seq
    steps: list[StepRow]  # by start; ``result`` is None


class Reads:
    """The named reads; :meth:`_select` (the journal's) runs their SQL."""

    epoch: int
    id: str | None  # the journal's id, which its signatures name (binding.py)

    def _select(self, sql: str, params: Iterable[Any] | None = None) -> list[tuple]:
        raise NotImplementedError

    # -- meta and replay ------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        """The value of ``key`` in the ``meta`` table, or None."""
        rows = self._select("SELECT value FROM meta WHERE key = ?", [key])
        return rows[0][0] if rows else None

    def failures(self) -> dict[str, str]:
        """Step identities whose latest outcome (this epoch) is a final error -> the error."""
        return dict(
            self._select(
                "SELECT identity, error FROM steps WHERE epoch = ? "
                "QUALIFY row_number() OVER (PARTITION BY identity ORDER BY ended DESC, "
                "record_id) = 1 AND status = 'error'",
                [self.epoch],
            )
        )

    # -- snapshots ------------------------------------------------------------------

    def last_ok_seq(self, upto: int | None = None) -> int:
        """The last cell execution (up to ``upto``) that succeeded and whose namespace was
        saved (0: none): the default restore point, and what one as of ``upto`` gives."""
        return self._select(
            f"SELECT coalesce(max(seq), 0) FROM cells WHERE {_SAVED}"
            + (" AND seq <= ?" if upto is not None else ""),
            [] if upto is None else [upto],
        )[0][0]

    def lost_before(self, seq: int) -> int | None:
        """The first cell execution of ``seq``'s run before it with no end record, when
        ``seq`` has one: its records were lost to damage (see :data:`_SAVED`), or None."""
        return self._select(
            "SELECT min(lost.seq) FROM cells c JOIN cells lost ON lost.run_id = c.run_id "
            "AND lost.seq < c.seq AND lost.status IN ('running', 'crashed') "
            "WHERE c.seq = ? AND c.status NOT IN ('running', 'crashed')",
            [seq],
        )[0][0]

    def unsaved_as_of(self, seq: int) -> tuple[int, str, int] | None:
        """Why the namespace as of cell execution ``seq`` is not whole in the journal:
        (the cell whose snapshot did not complete, its error, the last whole one before
        it), or None. A cell that succeeds after such a cell saves the namespace whole."""
        saved = f"SELECT seq FROM cells WHERE {_SAVED}"
        rows = self._select(
            f"SELECT u.seq, u.error, (SELECT coalesce(max(seq), 0) FROM ({saved}) WHERE seq < "
            "u.seq) FROM cells u WHERE u.seq <= ? AND u.status = 'ok' AND u.error IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM ({saved}) w WHERE w.seq > u.seq AND w.seq <= ?) "
            "ORDER BY u.seq DESC LIMIT 1",
            [seq, seq],
        )
        return tuple(rows[0]) if rows else None

    def variables_as_of(
        self, seq: int, without: Iterable[str] = (), deleted: bool = False
    ) -> dict[str, VariableRow]:
        """Each name's latest variable row up to cell execution ``seq``, of the cells that
        succeeded with their namespace saved (a cell killed after its snapshot, before
        its end record, left rows no restore uses); deleted names left out unless
        ``deleted`` (a restore checks those rows' signatures too).

        ``without``: runs whose cell executions are left out (another notebook's work).
        """
        rows = self._select(
            select(VariableRow, f"WHERE seq <= ? AND seq IN (SELECT seq FROM cells WHERE "
                   f"{_SAVED}) AND seq NOT IN (SELECT seq FROM cells "
                   "WHERE run_id IN (SELECT unnest(?::VARCHAR[]))) "
                   "QUALIFY row_number() OVER (PARTITION BY name ORDER BY seq DESC) = 1"),
            [seq, sorted(set(without))],
        )  # fmt: skip
        rows = map(VariableRow._make, rows)
        return {r.name: r for r in rows if deleted or r.state != "deleted"}

    def live_names(self) -> set[str]:
        """The names whose latest variable row (of a saved cell, any run's) is not a
        deletion."""
        return {r[0] for r in self._select(
            f"SELECT name FROM variables WHERE seq IN (SELECT seq FROM cells WHERE {_SAVED}) "
            "GROUP BY name HAVING arg_max(state, seq) <> 'deleted'"
        )}  # fmt: skip

    def payloads(self, value_ids: Iterable[str]) -> dict[str, PayloadRow]:
        """The payload rows of ``value_ids`` (those the journal has), by value id."""
        wanted = sorted(set(value_ids))
        if not wanted:
            return {}
        rows = self._select(select(PayloadRow, "WHERE value_id IN (SELECT unnest(?))"), [wanted])
        return {r.value_id: r for r in map(PayloadRow._make, rows)}

    def payload_ids(self, fold: bool = True) -> set[str]:
        """The value ids of every payload stored (a value is stored once).

        ``fold=False``: of those folded into DuckDB only (what the log holds since the
        open is left out; ~0.05 s less on the first call of a session, which would fold).
        """
        sql = "SELECT value_id FROM payloads"
        return {r[0] for r in (self._select(sql) if fold else self._query_as_is(sql, []))}

    def referenced_blobs(self) -> set[str]:
        """The blob files that some step result or snapshot payload refers to.

        Only names that are content hashes (:func:`~durable_nb.blobs.is_name`): a crafted
        row never names a file outside the blob folder, malformed JSON never raises.
        """
        from ..blobs import is_name, referenced

        rows = self._select("SELECT blob FROM steps WHERE blob IS NOT NULL")
        found = {r[0] for r in rows if is_name(r[0])}
        for stream_chunks, buffers in self._select("SELECT stream_chunks, buffers FROM payloads"):
            found |= referenced(stream_chunks, buffers)
        return found

    # -- cells ------------------------------------------------------------------------

    def cells(self, seqs: Iterable[int] | None = None) -> list[CellRow]:
        """Cell executions by ``seq`` (all of them, or those in ``seqs``)."""
        if seqs is None:
            rows = self._select(select(CellRow, "ORDER BY seq"))
        else:
            where = "WHERE seq IN (SELECT unnest(?)) ORDER BY seq"
            rows = self._select(select(CellRow, where), [sorted(set(seqs))])
        return list(map(CellRow._make, rows))

    def cell_log(self, limit: int) -> list[CellRow]:
        """The last ``limit`` cell executions, oldest first (``%durable log``)."""
        rows = self._select(select(CellRow, "ORDER BY seq DESC LIMIT ?"), [max(limit, 0)])
        return [CellRow._make(r) for r in reversed(rows)]

    def cells_of_run(self, run_id: str) -> list[CellRow]:
        """The cell executions of run ``run_id``, by ``seq``."""
        rows = self._select(select(CellRow, "WHERE run_id = ? ORDER BY seq"), [run_id])
        return list(map(CellRow._make, rows))

    def interrupted_cell(self, current_run: str) -> Interrupted | None:
        """The last cell execution of an earlier run if it crashed or was interrupted."""
        rows = self._select(
            select(CellRow, "WHERE run_id <> ? ORDER BY seq DESC LIMIT 1"), [current_run]
        )
        cell = CellRow._make(rows[0]) if rows else None
        if cell is None or cell.status not in ("crashed", "interrupted"):
            return None
        [(done, error)] = self._select(
            "SELECT count(*) FILTER (WHERE status = 'ok'), "
            "max(CASE WHEN status = 'error' THEN error END) FROM steps WHERE seq = ?",
            [cell.seq],
        )
        return Interrupted(cell, done, error)

    # -- outputs ------------------------------------------------------------------------

    def outputs(self, seq: int) -> OutputRow | None:
        """What cell execution ``seq`` published (its tail under the cap), or None."""
        rows = self._select(select(OutputRow, "WHERE seq = ? LIMIT 1"), [seq])
        return OutputRow._make(rows[0]) if rows else None

    def outputs_of(self, seqs: Iterable[int]) -> dict[int, OutputRow]:
        """The outputs of the cell executions ``seqs`` that recorded some, by ``seq``."""
        rows = self._select(select(OutputRow, "WHERE seq IN (SELECT unnest(?))"),
                            [sorted(set(seqs))])  # fmt: skip
        return {r.seq: r for r in map(OutputRow._make, rows)}

    def unfinished_seq(self, before: int) -> int | None:
        """The last cell execution before ``before`` that did not finish (crashed,
        interrupted, or still marked running), else the last one before it; None if none."""
        rows = self._select(
            "SELECT seq FROM cells WHERE seq < ? "
            "ORDER BY status IN ('crashed', 'interrupted', 'running') DESC, seq DESC LIMIT 1",
            [before],
        )
        return rows[0][0] if rows else None

    def latest_outputs(self, cell_keys: Iterable[str]) -> dict[str, OutputRow]:
        """Per cell key, the outputs of its last execution that succeeded (if recorded)."""
        rows = self._select(
            select(OutputRow, "JOIN (SELECT seq AS s, cell_key FROM cells WHERE status = 'ok' "
                   "AND cell_key IN (SELECT unnest(?::VARCHAR[])) QUALIFY row_number() OVER "
                   "(PARTITION BY cell_key ORDER BY seq DESC) = 1) ON seq = s")
            .replace("SELECT ", "SELECT cell_key, ", 1),
            [sorted(set(cell_keys))],
        )  # fmt: skip
        return {r[0]: OutputRow._make(r[1:]) for r in rows}

    # -- runs and the whole journal ------------------------------------------------------

    def runs(self) -> list[RunRow]:
        """Every run (a process that opened the journal), oldest first."""
        return list(map(RunRow._make, self._select(select(RunRow, "ORDER BY started"))))

    def first_run_since(self, started: float) -> str | None:
        """The id of the first run that started at or after ``started`` (epoch seconds),
        of those this user signed."""
        rows = self._select(
            bound(RunRow, "WHERE runs.started >= to_timestamp(?) ORDER BY runs.started"),
            [started],
        )
        return next((r.run_id for r in map(RunRow._make, rows) if verify(r, self.id)), None)

    def steps(self, results: bool = False) -> list[StepRow]:
        """Every step record, in the order they started; ``result`` is None unless ``results``."""
        columns = StepRow._fields if results else [
            "NULL" if c == "result" else c for c in StepRow._fields
        ]  # fmt: skip
        rows = self._select(f"SELECT {', '.join(columns)} FROM steps ORDER BY started, record_id")
        return list(map(StepRow._make, rows))

    def timeline(self, seqs: Iterable[int] | None = None) -> Timeline:
        """Every run, and the cell executions (all, or those in ``seqs``) with their steps."""
        cells = self.cells(seqs)
        columns = ", ".join("NULL" if c == "result" else c for c in StepRow._fields)
        if seqs is None:
            rows = self._select(f"SELECT {columns} FROM steps ORDER BY started, record_id")
        else:
            where = "WHERE seq IN (SELECT unnest(?)) ORDER BY started, record_id"
            rows = self._select(f"SELECT {columns} FROM steps {where}", [sorted(set(seqs))])
        return Timeline(self.runs(), cells, list(map(StepRow._make, rows)))

    def overview(self) -> Overview:
        """Runs, counts of cells and steps (and how many succeeded), the last cell's status."""
        [(cells, cells_ok)] = self._select(
            "SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM cells"
        )
        [(steps, steps_ok)] = self._select(
            "SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM steps"
        )
        last = self._select("SELECT status FROM cells ORDER BY seq DESC LIMIT 1")
        return Overview(self.runs(), cells, cells_ok, steps, steps_ok,
                        last[0][0] if last else None, self.epoch,
                        self.meta("schema_version"))  # fmt: skip


def writes(sql: str) -> str | None:
    """The type of the first statement of ``sql`` that is not a read, or None."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return None  # a syntax error: executing it says so
    for statement in statements:
        kind = statement.type.name
        if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs its statement: it must be a read too
            inner = re.sub(r"(?is)^\s*explain(\s+analy[sz]e)?", "", statement.query)
            refused = writes(inner) if inner.strip() else None
            if refused:
                return refused
        elif kind != "SELECT":
            return kind
    return None
