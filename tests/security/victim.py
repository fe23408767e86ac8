"""Bob's side of the mutation test, in one process: ``python victim.py JOBS.json``.

For each crafted export: import, ls, show (text and JSON), export and gc through
``durable_nb.cli.main``, as the ``durable-nb`` command runs them. An exception escaping a
command (what would print a traceback) is reported as ``CRASH``; a command that hangs
trips the caller's timeout.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback
import zipfile
from pathlib import Path

from durable_nb.cli import main


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
        text = io.StringIO()
        try:
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                main(argv)
        except SystemExit:
            pass
        except BaseException:
            problems.append(f"CRASH {archive.name} {argv[0]}: {traceback.format_exc()}")
        if "\x1b" in text.getvalue():
            problems.append(f"ESC {archive.name} {argv[0]}: {text.getvalue()[:300]!r}")
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
    problems = []
    for archive in jobs["archives"]:
        problems += victim(Path(archive), Path(archive).with_suffix(""), private)
    print(json.dumps(problems))
