"""Issue 11, the generic attack: every table and column of a real journal overwritten with
injection strings, malicious pickles and traversal paths; Alice exports, Bob uses it.

Bounded: each column gets one crafted journal with a payload of its type (the payloads
cycle over columns), and each table one journal with all its columns crafted at once.
Bob's commands run in one process (victim.py) through ``durable_nb.cli.main``, as the
``durable-nb`` command runs them: import, show, export and ls of every crafted export,
then his kernel runs (``run``, and ``replay`` too for the steps table) once per table,
each in a real kernel that loads the crafted journal.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pytest
from attack import CRASH, TIMEOUT, cli, env, journal_of, notebook, show

VICTIM = Path(__file__).with_name("victim.py")
#: One column in SAMPLE also gets a crafted journal of its own (bounded time).
SAMPLE = 4


def _payloads(marker: Path, private: Path) -> dict[str, list]:
    touch = f"open({str(marker)!r}, 'w').close()"
    pickle_bomb = f"cbuiltins\nexec\n(V{touch}\ntR.".encode()
    texts = [
        f"1\n{touch}",
        f"'); {touch}; ('",
        str(private),
        "../../../../../" + str(private).lstrip("/"),
        "/proc/self/environ",
        json.dumps([[1 << 20, [str(private)]]]),
        json.dumps([5, ["../../secret"]]),
        "\x1b[2J\x1b]0;owned\x07",
        "[" * 5000,
        "{" * 50 + "}",
        "",
    ]
    return {
        "VARCHAR": texts,
        "BLOB": [pickle_bomb, b"\x80\x05" + b"(" * 5000, b"", touch.encode()],
        "INTEGER": [-1, 2**31 - 1, 0],
        "BIGINT": [-1, 2**62, 0],
        "TIMESTAMP WITH TIME ZONE": [None],
    }


def _columns(con) -> list[tuple[str, str, str]]:
    return con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    ).fetchall()


def _craft(journal: Path, edits: list[tuple[str, str, object]]) -> bytes:
    """A copy of ``journal`` with ``edits`` (table, column, value) applied; its bytes."""
    tmp = journal.with_name("crafted.duckdb")
    shutil.copy(journal, tmp)
    con = duckdb.connect(str(tmp))
    try:
        for table, column, value in edits:
            if isinstance(value, str):  # keep primary keys distinct: the row's own suffix
                con.execute(
                    f'UPDATE "{table}" SET "{column}" = ? || '
                    f"CASE WHEN rowid = 0 THEN '' ELSE CAST(rowid AS VARCHAR) END",
                    [value],
                )
            else:
                try:
                    con.execute(f'UPDATE "{table}" SET "{column}" = ?', [value])
                except duckdb.ConstraintException:
                    con.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = 0', [value])
        con.execute("CHECKPOINT")
    finally:
        con.close()
    data = tmp.read_bytes()
    tmp.unlink()
    return data


def _members(genuine: Path) -> dict[str, bytes]:
    """Alice's export, member by member (read once; every crafted archive reuses it)."""
    with zipfile.ZipFile(genuine) as src:
        return {info.filename: src.read(info) for info in src.infolist()}


def _archive(genuine: dict[str, bytes], out: Path, stem: str, journal_bytes: bytes) -> None:
    """Alice's export with the journal member replaced (an attacker writes the zip by hand;
    stored, not deflated: the container is not what this test attacks)."""
    name = f"journal/{stem}.duckdb"
    manifest = json.loads(genuine["manifest.json"])
    manifest["files"].pop(f"{name}.wal", None)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for member, data in genuine.items():
            if member in ("manifest.json", f"{name}.wal"):
                continue
            data = journal_bytes if member == name else data
            dst.writestr(member, data)
            manifest["files"][member] = hashlib.sha256(data).hexdigest()
        dst.writestr("manifest.json", json.dumps(manifest))


SOURCES = (
    "import durable_nb as dnb\nimport numpy as np\n"
    "@dnb.step\ndef fetch(n):\n    return {'n': n}\n"
    "@dnb.step\ndef obj(n):\n    return {n, n + 1}\n"
    "a, b = fetch(1), obj(2)\narr = np.arange(400_000)\nwhen = dnb.now()",
    "c = fetch(3)\nprint('cell two', c)",
)


@pytest.mark.timeout(900)  # ~30 crafted exports and 8 kernel runs
def test_every_column_crafted_never_runs_leaks_hangs_or_crashes(tmp_path):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    marker, private = tmp_path / "pwned", bob / "private.txt"
    private.parent.mkdir(parents=True)
    private.write_text("bob's private data")
    nb = notebook(alice / "work" / "mut.ipynb", *SOURCES)
    assert cli("run", nb, home=alice).returncode == 0
    exported = alice / "genuine.dnb"
    assert cli("export", nb, "-o", exported, home=alice).returncode == 0
    genuine = _members(exported)
    journal = journal_of(nb)
    con = duckdb.connect(str(journal), read_only=True)
    columns = _columns(con)
    con.close()
    payloads = _payloads(marker, private)
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    archives, per_table = [], {}
    for i, (table, column, kind) in enumerate(columns):
        values = payloads.get(kind)
        if not values:
            continue
        value = values[i % len(values)]
        per_table.setdefault(table, []).append((table, column, value))
        if i % SAMPLE:  # every column is in its table's crafted journal; a sample alone too
            continue
        out = crafted / f"{table}.{column}.dnb"
        _archive(genuine, out, nb.stem, _craft(journal, [(table, column, value)]))
        archives.append(str(out))
    for table, edits in per_table.items():
        out = crafted / f"{table}.all.dnb"
        _archive(genuine, out, nb.stem, _craft(journal, edits))
        archives.append(str(out))
    assert len(per_table) >= 6 and len(archives) > len(columns) // SAMPLE, archives
    # Bob runs and replays each table's fully crafted notebook in a real kernel.
    runs = [[str(crafted / f"{table}.all" / nb.name), command] for table in per_table
            for command in (("run", "replay") if table == "steps" else ("run",))]  # fmt: skip
    jobs = tmp_path / "jobs.json"
    secret = bob / "jupyter-data" / "durable_nb_secret"
    jobs.write_text(json.dumps({"archives": archives, "runs": runs, "marker": str(marker),
                                "private": [str(private), str(secret)]}))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(VICTIM), str(jobs)],
        env=env(bob), cwd=bob, capture_output=True, text=True, timeout=TIMEOUT * 6,
    )  # fmt: skip
    assert proc.returncode == 0, show(proc)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not report["problems"], "\n".join(report["problems"])
    assert [r[:2] for r in report["ran"]] == runs, report  # each ran, exit 0, 1 or 2
    assert all(code in (0, 1, 2) for _, _, code in report["ran"]), report
    # What Bob's kernels wrote to the terminal (their stderr is the victim's).
    assert "bob's private data" not in proc.stdout + proc.stderr, show(proc)
    assert not CRASH.search(proc.stderr), show(proc)
    assert not marker.exists()
