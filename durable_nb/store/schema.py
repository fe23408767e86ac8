"""The journal's tables: schema version and migrations, and one typed row per table.

The column lists are the row types' fields, so a row is read by name (``row.status``),
never by position; records in the append log are the same rows as plain tuples.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import JournalCorrupt, JournalError, JournalTooNew, JournalUnwritable, NotAJournal

#: The schema this code writes. Log of changes (a journal stores its version in ``meta``):
#: 1 — meta, runs, cells, steps.
#: 2 — variables (one row per name that changed in a cell) and payloads (their content;
#:     variables that share objects share one payload, ``item`` is their index in it).
#: 3 — ``sig`` on steps, cells, variables and payloads: this user's MAC (trust.py) of what
#:     loading the row would unpickle, run or import. Rows of older journals stay unsigned
#:     (a migration cannot tell who wrote them): ``durable-nb trust`` signs them.
#: 4 — outputs: what each cell execution published (streams, displays, errors), the tail
#:     kept under a cap per cell; rewritten while the cell runs, so a killed cell keeps them.
#: 5 — ``sig`` on meta, runs and outputs too; ``cells.manifest`` (what the cell execution
#:     wrote: seal.py) and ``steps.n`` (a completed result's place among those its cell
#:     execution wrote to its replay batch), so a deleted record is seen (README, Trust).
#: 6 — ``meta.journal``: the journal's id (random, made with it), inside every signature,
#:     so a row signed in one journal never verifies in another. No DDL: the journal gives
#:     a journal of schema 5 its id after folding its log (binding.py), and only then
#:     records version 6.
SCHEMA_VERSION = 6

MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        """CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY, pid INTEGER, host VARCHAR, notebook VARCHAR,
            started TIMESTAMPTZ, ended TIMESTAMPTZ, status VARCHAR, versions VARCHAR)""",
        """CREATE TABLE cells (
            exec_id VARCHAR PRIMARY KEY, seq BIGINT, run_id VARCHAR, cell_id VARCHAR,
            cell_key VARCHAR, source VARCHAR, started TIMESTAMPTZ, ended TIMESTAMPTZ,
            status VARCHAR, error VARCHAR, steps_run INTEGER, steps_replayed INTEGER)""",
        """CREATE TABLE steps (
            record_id VARCHAR PRIMARY KEY, identity VARCHAR, epoch INTEGER, name VARCHAR,
            cell_key VARCHAR, seq BIGINT, run_id VARCHAR, args VARCHAR, occurrence INTEGER,
            key VARCHAR, status VARCHAR, kind VARCHAR, result BLOB, blob VARCHAR,
            error VARCHAR, attempts INTEGER, attempt_errors VARCHAR,
            started TIMESTAMPTZ, ended TIMESTAMPTZ)""",
    ],
    2: [
        """CREATE TABLE variables (
            entry_id VARCHAR PRIMARY KEY, seq BIGINT, name VARCHAR, state VARCHAR,
            value_id VARCHAR, item INTEGER, cell_seq BIGINT, nbytes BIGINT, detail VARCHAR)""",
        """CREATE TABLE payloads (
            value_id VARCHAR PRIMARY KEY, codec VARCHAR, nbytes BIGINT, stream BLOB,
            stream_chunks VARCHAR, buffers VARCHAR)""",
    ],
    3: [
        f"ALTER TABLE {t} ADD COLUMN sig VARCHAR"
        for t in ("steps", "cells", "variables", "payloads")
    ],
    4: [
        """CREATE TABLE outputs (
            exec_id VARCHAR PRIMARY KEY, seq BIGINT, outputs VARCHAR, nbytes BIGINT,
            dropped BIGINT)""",
    ],
    5: [
        *(f"ALTER TABLE {t} ADD COLUMN sig VARCHAR" for t in ("meta", "runs", "outputs")),
        "ALTER TABLE cells ADD COLUMN manifest VARCHAR",
        "ALTER TABLE steps ADD COLUMN n INTEGER",
    ],
}

#: A time: float seconds when written, a timezone-aware datetime when read back.
Time = float | datetime | None


class MetaRow(NamedTuple):
    """A setting of the journal (schema version, epoch, ignored names, the headless plan)."""

    key: str
    value: str | None
    sig: str | None = None  # set by Journal.write


class RunRow(NamedTuple):
    """One process that opened the journal (a kernel, a script)."""

    run_id: str
    pid: int
    host: str
    notebook: str | None
    started: Time
    ended: Time
    status: str
    versions: str | None = None
    sig: str | None = None  # set by Journal.write


#: How the end record of a cell that succeeded but whose snapshot did not complete begins.
UNSAVED = "the namespace was not saved: "


class CellRow(NamedTuple):
    """One cell execution; ``seq`` increases journal-wide.

    An ``ok`` row with an ``error`` ran to its end but its snapshot did not complete
    (the error, :data:`UNSAVED` and why): no restore stops there.
    """

    exec_id: str
    seq: int
    run_id: str
    cell_id: str | None
    cell_key: str
    source: str | None
    started: Time
    ended: Time
    status: str
    error: str | None
    steps_run: int | None
    steps_replayed: int | None
    manifest: str | None = None  # set by Journal.write (seal.py)
    sig: str | None = None  # set by Journal.write


class StepRow(NamedTuple):
    """One finished step call: its result (inline or a blob name) or its error."""

    record_id: str
    identity: str
    epoch: int
    name: str
    cell_key: str
    seq: int
    run_id: str
    args: str | None
    occurrence: int | None
    key: str | None
    status: str
    kind: str | None
    result: bytes | None
    blob: str | None
    error: str | None
    attempts: int | None
    attempt_errors: str | None
    started: Time
    ended: Time
    n: int | None = None  # set by Journal.write for a completed result (seal.py)
    sig: str | None = None  # set by Journal.write


class VariableRow(NamedTuple):
    """A name that changed in cell execution ``seq``: saved, module, file, recompute, deleted."""

    entry_id: str
    seq: int
    name: str
    state: str
    value_id: str | None
    item: int | None
    cell_seq: int
    nbytes: int | None
    detail: str | None
    sig: str | None = None  # set by Journal.write


class PayloadRow(NamedTuple):
    """A saved value's content: its pickle stream inline or in chunks, and its buffers' chunks."""

    value_id: str
    codec: str
    nbytes: int
    stream: bytes | None
    stream_chunks: str | None
    buffers: str | None
    sig: str | None = None  # set by Journal.write


class OutputRow(NamedTuple):
    """What cell execution ``seq`` published, as nbformat outputs (a JSON list).

    Only the tail is kept: ``nbytes`` is what ``outputs`` holds, ``dropped`` what was cut
    from the start to stay under the cap (:mod:`durable_nb.outputs`).
    """

    exec_id: str
    seq: int
    outputs: str
    nbytes: int
    dropped: int
    sig: str | None = None  # set by Journal.write


Row = MetaRow | RunRow | CellRow | StepRow | VariableRow | PayloadRow | OutputRow

#: Row type -> (its kind in the log, its table).
TABLES: dict[type, tuple[str, str]] = {
    MetaRow: ("meta", "meta"),
    RunRow: ("run", "runs"),
    CellRow: ("cell", "cells"),
    StepRow: ("step", "steps"),
    VariableRow: ("variable", "variables"),
    PayloadRow: ("payload", "payloads"),
    OutputRow: ("output", "outputs"),
}
#: Log kind -> row type.
KINDS: dict[str, type] = {kind: t for t, (kind, _) in TABLES.items()}
#: Kinds whose rows end with ``sig`` (set by Journal.write).
SIGNED = frozenset(kind for t, (kind, _) in TABLES.items() if t._fields[-1] == "sig")
#: Columns that travel as float seconds and are stored as TIMESTAMPTZ.
TIMES = frozenset({"started", "ended"})

#: Kind -> {length of a record an earlier schema wrote: where its sig was}: a record of a
#: log left by an earlier version is brought to today's layout (columns added since: None).
_LAYOUTS = {"cell": {12: None, 13: 12}, "step": {19: None, 20: 19}}

# What callers fill in (the signature, manifest and ordinal are the journal's to add).
RUN_COLUMNS = RunRow._fields[:-1]
CELL_COLUMNS = CellRow._fields[:-2]
STEP_COLUMNS = StepRow._fields[:-2]
VARIABLE_COLUMNS = VariableRow._fields[:-1]
PAYLOAD_COLUMNS = PayloadRow._fields[:-1]

#: A journal may come from someone else: its SQL must not read files or load extensions
#: (a view could read the signing secret, or anything else, when the journal is queried).
SAFE_CONFIG = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


def upgrade(kind: str, row: tuple) -> tuple:
    """A log record (of an earlier schema, maybe) in today's layout of its row type."""
    width = len(KINDS[kind]._fields)
    at = _LAYOUTS.get(kind, {}).get(len(row), len(row))
    if at == len(row):  # today's layout, or one whose new columns all come last
        return row + (None,) * (width - len(row))
    body, sig = (row, None) if at is None else (row[:at], row[at])
    return body + (None,) * (width - len(body) - 1) + (sig,)


def select(row_type: type, where: str = "", table: str | None = None) -> str:
    """``SELECT <the row's columns> FROM <its table> <where>``."""
    table = table or TABLES[row_type][1]
    return f"SELECT {', '.join(row_type._fields)} FROM {table} {where}".rstrip()


#: DuckDB's listings of what a journal never holds, with what leaves out DuckDB's own.
_NEVER_MADE = (
    ("triggers", ""), ("indexes", ""), ("sequences", ""), ("types", "WHERE NOT internal"),
)  # fmt: skip


def migrate(path: Path, con: Any, read_only: bool = False, made_here: bool = False,
            macros: Any = None) -> int:  # fmt: skip
    """Bring the tables up to :data:`SCHEMA_VERSION`; refuse a newer or foreign file.

    Returns the version recorded now: :data:`SCHEMA_VERSION`, or 5 for a journal that
    has yet to get its id (a new one, or one of schema 5: binding.py records version 6).
    ``read_only``: an older schema cannot be brought up, so it is refused
    (:class:`JournalUnwritable`). ``made_here``: nothing in the file to check: this
    process made it a moment ago under a random name (:func:`~.opening.create`, or
    copied this user's signed :mod:`.template`; its migrations then run in one
    transaction), or closed it and it is unchanged since
    (:func:`~.opening.closed`; its schema is current). ``macros``: the file's macros,
    being listed on a cursor of their own (:class:`~.opening.MacroCheck`), waited for
    before anything is written; by default listed here.

    Raises a :class:`~durable_nb.errors.JournalError` (:class:`JournalCorrupt` for what a
    crafted file gives Python and a journal never holds, a value Python cannot represent:
    review4), OSError or DuckDB's error. Whatever it raises, ``con`` is closed first (its
    macro listing done): a connection left to the garbage collector holds the file's lock.
    """
    try:
        return _migrate(path, con, read_only, made_here, macros)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            con.close()
        if isinstance(exc, Exception) and not isinstance(exc, (JournalError, OSError)):
            if not isinstance(exc, _engine_error()):
                raise JournalCorrupt.from_cause(str(path), exc) from exc
        raise


def _engine_error() -> type[Exception]:
    """DuckDB's error class (the caller classifies those: a lock, a full disk)."""
    try:
        from _duckdb import Error
    except ImportError:  # DuckDB before 2: the package holds it
        from duckdb import Error
    return Error


def _migrate(path: Path, con: Any, read_only: bool, made_here: bool, macros: Any) -> int:
    """:func:`migrate`, the connection left to it."""
    try:
        version, tables = _read_version(path, con, read_only, made_here, macros)
    finally:  # its cursor is done before the file is written to or closed
        if macros is not None:
            macros.wait()
    if macros is not None and macros.found():
        raise _crafted(path, "views or macros")
    # Each step with its version in one transaction; a file made here (a temporary one,
    # removed if this fails) in one: an upsert and a commit per step cost it ~35 ms.
    steps = list(range(version + 1, max(MIGRATIONS) + 1))
    for targets in [steps] if made_here and steps else [[target] for target in steps]:
        con.execute("BEGIN")
        for target in targets:
            for ddl in MIGRATIONS[target]:
                con.execute(ddl)
        con.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            [str(targets[-1])],
        )
        con.execute("COMMIT")
    if tables and not made_here:
        _check_shape(path, con)
    return max(version, max(MIGRATIONS))


def _read_version(path: Path, con: Any, read_only: bool, made_here: bool,
                  macros: Any) -> tuple[int, set[str]]:  # fmt: skip
    """The file's schema version and tables, once what a journal never holds is refused
    (its macros too, unless ``macros`` lists them); raises as :func:`migrate` says."""
    # The file's own: "NOT internal" would have DuckDB make its system views first (~10
    # ms; the check of a file not made here does, on this thread while the macros are
    # listed on the other, see _check_objects).
    listing = "SELECT table_name FROM system.main.duckdb_tables() WHERE database_name = "
    tables = {r[0] for r in con.execute(listing + "current_database()").fetchall()}
    if not made_here:
        _check_objects(path, con, listed=macros is not None)
    if "meta" in tables:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = meta_int(path, "schema_version", row[0]) if row else 0
    elif tables:
        raise NotAJournal(
            str(path),
            f"{path} is a DuckDB file but not a durable_nb journal (it has tables "
            f"{', '.join(sorted(tables)[:5])}); this kernel runs un-journaled. "
            "Move it aside or set DURABLE_NB_DIR to another folder.",
        )
    else:
        version = 0
    if version > SCHEMA_VERSION:
        raise JournalTooNew.from_versions(str(path), version, SCHEMA_VERSION)
    if read_only and version < SCHEMA_VERSION:
        raise JournalUnwritable(
            str(path),
            f"journal {path} has schema version {version}, which this durable_nb must "
            "upgrade, and it is read-only here: make it writable and restart the kernel.",
        )
    return version, tables


#: Whether the file holds a macro: a function that is not DuckDB's own, in a connection
#: that made none (the only kind SQL can store). DuckDB lists its ~3,300 own to answer
#: (~40 ms, the interpreter released): :class:`~.opening.MacroCheck` asks it meanwhile.
MACROS = "SELECT 1 FROM system.main.duckdb_functions() WHERE NOT internal LIMIT 1"


def _check_objects(path: Path, con: Any, listed: bool = False) -> None:
    """Refuse a file holding what a journal never has: views or macros, and what DuckDB
    runs or checks on its own as rows are written (a trigger could rewrite or copy them,
    a UNIQUE index makes folds fail), sequences, types.

    DuckDB's own listings are named in full: the file's macros come first on the search
    path, so a table macro named ``duckdb_functions`` (or ``count``) could answer an
    unqualified check. Macros: :data:`MACROS`; ``listed``: the caller lists them.
    """
    # The file's own views: "NOT internal" has DuckDB make its own system views first
    # (~5 ms); its catalog function named in full, as the listings are.
    views = ("SELECT 1 FROM system.main.duckdb_views() "
             "WHERE database_name = system.main.current_database() LIMIT 1")  # fmt: skip
    if con.execute(views).fetchall() or (not listed and con.execute(MACROS).fetchall()):
        raise _crafted(path, "views or macros")
    for kind, where in _NEVER_MADE:  # of these, DuckDB itself lists only built-in types
        if con.execute(f"SELECT 1 FROM system.main.duckdb_{kind}() {where} LIMIT 1").fetchall():
            raise _crafted(path, kind)


#: Table -> the columns its rows fill (a migration's come last in the table: sorted).
_COLUMNS = {table: sorted(row._fields) for row, (_, table) in TABLES.items()}


def _declared_types() -> dict[str, dict[str, str]]:
    """Table -> column -> its type as DuckDB lists it, read from :data:`MIGRATIONS`."""
    listed = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}
    out: dict[str, dict[str, str]] = {}
    for ddl in (ddl for step in MIGRATIONS.values() for ddl in step):
        table = re.match(r"\s*(?:CREATE|ALTER) TABLE (\w+)", ddl)[1]  # type: ignore[index]
        for column, kind in re.findall(r"(\w+) (VARCHAR|INTEGER|BIGINT|TIMESTAMPTZ|BLOB)\b", ddl):
            out.setdefault(table, {})[column] = listed.get(kind, kind)
    return out


#: Table -> column -> its type: a file whose columns hold others was not made here (a
#: text ``seq`` sorts cells as text; a number where a signature is read is no signature).
_TYPES = _declared_types()


def _check_shape(path: Path, con: Any) -> None:
    """Refuse tables whose columns, their types or constraints this code never made.

    A DEFAULT (or generated) column would fill rows this user writes with what its
    expression reads (a folder's path, which the next export carries away); a CHECK or
    UNIQUE constraint would make folds fail. Only the primary keys (and the NOT NULL they
    imply) are the journal's own. Listings named in full, as for macros (see migrate).
    """
    found: dict[str, list[str]] = {}
    for table, column, default, kind in con.execute(
        # The file's own (macros were refused above): ~5x less than "NOT internal", which
        # lists the columns of every system view first.
        "SELECT table_name, column_name, column_default, data_type "
        "FROM system.main.duckdb_columns() WHERE database_name = current_database()"
    ).fetchall():
        if default is not None:
            raise _crafted(path, f"a column with a default value ({table}.{column})")
        if _TYPES.get(table, {}).get(column, kind) != kind:  # (other tables: refused below)
            raise _crafted(path, f"a column of another type ({table}.{column}: {kind})")
        found.setdefault(table, []).append(column)
    if {t: sorted(cols) for t, cols in found.items()} != _COLUMNS:
        raise _crafted(path, "tables whose columns differ from a journal's")
    kinds = con.execute(
        "SELECT DISTINCT constraint_type FROM system.main.duckdb_constraints() "
        "WHERE constraint_type NOT IN ('PRIMARY KEY', 'NOT NULL')"
    ).fetchall()
    if kinds:
        raise _crafted(path, f"{kinds[0][0]} constraints")


def _crafted(path: Path, what: str) -> JournalCorrupt:
    return JournalCorrupt(
        str(path),
        f"{path} holds {what}, which a durable_nb journal never has: it was crafted or "
        "changed by hand, so this kernel does not use it and runs un-journaled. Move it "
        "aside, or ask its author for a clean export.",
    )


def meta_int(path: Path, key: str, value: object) -> int:
    """A ``meta`` value that must be a whole number (a schema version, an epoch).

    Raises
    ------
    JournalCorrupt
        When it is not one: the journal was crafted or damaged.
    """
    text = value if type(value) is str else ""
    if not (text.isascii() and text.isdigit() and len(text) < 19):
        raise JournalCorrupt(
            str(path),
            f"{path} records {key} = {str(value)[:40]!r}, not a whole number: it was crafted "
            "or damaged, so it is not used. Move it aside, or ask its author for a clean export.",
        )
    return int(text)


def rollback(con: Any) -> None:
    """ROLLBACK after a failure; its own failure (an aborted transaction, a full disk)
    must not hide the error that caused it."""
    with contextlib.suppress(Exception):
        con.execute("ROLLBACK")
