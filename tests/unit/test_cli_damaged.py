"""``durable-nb ls`` and ``show`` on a journal damaged where the open does not look.

DuckDB checks a page's checksum when it reads the page: a flipped bit in a data page
passes the open and is met by the first query. The command says so in one line naming
the file (exit 2), never with a traceback.
"""

from __future__ import annotations

import contextlib
import io
import shutil

import pytest
from test_full_disk import _step  # one step record (tests/unit is on the path)

from durable_nb.cli import main
from durable_nb.store import Journal

pytestmark = pytest.mark.unit


def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(argv)  # an exception escaping here is the bug
    return code, out.getvalue()


def test_ls_and_show_name_a_journal_damaged_past_its_open(tmp_path):
    built = tmp_path / "built" / "nb.duckdb"
    j = Journal.open(built)
    for i in range(150):
        j.write(_step(i), sync=False)
    j.close()
    pristine = built.read_bytes()
    refused = 0
    # One bit flipped per copy, every 64 KiB from 512 to 320 KiB before the end (data
    # and index pages): some are met at the open, others only by the listing's queries.
    for back in range(512 << 10, 256 << 10, -(64 << 10)):
        folder = tmp_path / f"flip-{back}"
        folder.mkdir()
        data = bytearray(pristine)
        data[len(data) - back + 100] ^= 1
        (folder / "nb.duckdb").write_bytes(bytes(data))
        for argv in (["ls", str(folder)], ["show", str(folder / "nb.duckdb")]):
            code, said = _run(argv)
            assert "Traceback" not in said, said
            assert code in (0, 2), (argv, code, said)
            if code == 2 or "unreadable" in said:
                refused += 1
                assert "nb.duckdb" in said, said
        shutil.rmtree(folder)
    assert refused, "no flip was met: the test no longer damages what it reads"
