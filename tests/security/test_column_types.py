"""A journal from elsewhere whose columns hold other types than durable_nb's is refused
(schema._check_shape): every column of every table of a real journal is given another
type in turn, its rows kept. A text ``seq`` would sort cells as text, a number where a
signature is read would be no signature: the file was not made by durable_nb.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from durable_nb.errors import JournalCorrupt
from durable_nb.store import Journal, schema

COLUMNS = [(table, column) for table, columns in sorted(schema._COLUMNS.items())
           for column in columns]  # fmt: skip


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("made") / "j.duckdb"
    Journal.open(path).close()
    return path


def _listed(path: Path) -> dict[str, dict[str, str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database()"
        ).fetchall()
    out: dict[str, dict[str, str]] = {}
    for table, column, kind in rows:
        out.setdefault(table, {})[column] = kind
    return out


def test_the_types_read_from_the_ddl_are_what_duckdb_lists(made):
    assert _listed(made) == schema._TYPES


def _retype(path: Path, table: str, column: str) -> str:
    """Make ``table`` again with ``column`` of another type, its rows cast; the type."""
    with duckdb.connect(str(path)) as con:
        cols = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
            "ORDER BY column_index",
            [table],
        ).fetchall()
        (key,) = con.execute(
            "SELECT constraint_column_names[1] FROM duckdb_constraints() "
            "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [table],
        ).fetchone()
        other = "BLOB" if dict(cols)[column] == "VARCHAR" else "VARCHAR"
        kinds = {c: other if c == column else kind for c, kind in cols}
        spec = ", ".join(
            f'"{c}" {kind}' + (" PRIMARY KEY" if c == key else "") for c, kind in kinds.items()
        )
        cast = ", ".join(f'CAST("{c}" AS {kind})' for c, kind in kinds.items())
        con.execute(f"CREATE TABLE retyped ({spec})")
        con.execute(f"INSERT INTO retyped SELECT {cast} FROM {table}")
        con.execute(f"DROP TABLE {table}")
        con.execute(f"ALTER TABLE retyped RENAME TO {table}")
    return other


@pytest.mark.parametrize("table, column", COLUMNS, ids=[f"{t}.{c}" for t, c in COLUMNS])
def test_a_journal_with_a_column_of_another_type_is_refused(made, tmp_path, table, column):
    path = tmp_path / "j.duckdb"
    shutil.copyfile(made, path)  # another path: no stamp of this user's vouches for it
    other = _retype(path, table, column)
    assert _listed(path)[table][column] == other
    with pytest.raises(JournalCorrupt, match="crafted") as refused:
        Journal.open(path)
    if (table, column) != ("meta", "value"):  # (that one: its schema version is no number)
        assert f"another type ({table}.{column}: {other})" in str(refused.value)
