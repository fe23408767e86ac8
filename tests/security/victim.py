"""Bob's side of the mutation test, in one process: ``python victim.py JOBS.json``.

For each crafted export: import, show, export and ls through ``durable_nb.cli.main``, as
the ``durable-nb`` command runs them; then ``run`` / ``replay`` of the imported notebooks
listed in the jobs (each starts a real kernel that loads the crafted journal). An
exception escaping a command (what would print a traceback) is reported as ``CRASH``; a
command that hangs trips the caller's timeout. Prints one JSON line: ``{"problems": [...],
"ran": [[notebook, command, exit code], ...]}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import traceback
import zipfile
from pathlib import Path

from durable_nb.cli import main

#: The CLI's own traceback (a cell's error, shown by nbclient, is not one); as attack.py.
CRASH = re.compile(r'Traceback \(most recent call last\):\n\s+File "')


def command(argv: list[str]) -> tuple[int | None, str, list[str]]:
    """Run ``durable-nb ARGV`` in this process: its exit code (None if it crashed), what it
    printed, and the problems seen."""
    text, problems, code = io.StringIO(), [], None
    try:
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            code = main(argv)
    except SystemExit as stop:
        code = stop.code
    except BaseException:
        problems.append(f"CRASH {argv}: {traceback.format_exc()}")
    return code, text.getvalue(), problems


def kernel_run(nb: str, what: str, private: list[bytes], marker: Path) -> tuple[int, list[str]]:
    """``durable-nb run|replay NB``: never a crash, a leak or the marker; its exit code."""
    code, printed, problems = command([what, nb])
    if code not in (0, 1, 2):
        problems.append(f"EXIT {code} {what} {nb}: {printed[-2000:]}")
    if CRASH.search(printed):
        problems.append(f"TRACEBACK {what} {nb}: {printed[-2000:]}")
    if any(p.decode(errors="replace") in printed for p in private):
        problems.append(f"LEAK {what} {nb}: {printed[-2000:]}")
    if marker.exists():
        problems.append(f"RAN CODE {what} {nb}")
    return code, problems


def victim(archive: Path, where: Path, private: list[bytes]) -> list[str]:
    problems = []
    nb = where / json.loads(zipfile.ZipFile(archive).read("manifest.json"))["notebook"]
    out = where / "again.dnb"
    for argv in (
        ["import", str(archive), "--dir", str(where)],
        ["show", str(nb)],
        ["export", str(nb), "-o", str(out)],
        ["ls", str(where), "--json"],
    ):
        _, printed, crashed = command(argv)
        problems += crashed
        if "\x1b" in printed:
            problems.append(f"ESC {archive.name} {argv[0]}: {printed[:300]!r}")
    if out.exists():
        with zipfile.ZipFile(out) as z:
            for name in z.namelist():
                data = z.read(name)
                if any(p in data for p in private):
                    problems.append(f"LEAK {archive.name}: {name}")
    return problems


if __name__ == "__main__":
    from durable_nb import trust

    trust.key_id()  # Bob's secret exists: a leak of it would be seen
    jobs = json.loads(Path(sys.argv[1]).read_text())
    private = [Path(p).read_bytes() for p in jobs["private"]]
    problems, ran = [], []
    for archive in jobs["archives"]:
        problems += victim(Path(archive), Path(archive).with_suffix(""), private)
    for nb, what in jobs["runs"]:
        code, seen = kernel_run(nb, what, private, Path(jobs["marker"]))
        problems += seen
        ran.append([nb, what, code])
    print(json.dumps({"problems": problems, "ran": ran}))
