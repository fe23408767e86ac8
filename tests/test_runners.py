"""Every runner, not only JupyterLab: nbclient, papermill and ``durable-nb run``.

A small corpus of the shapes that went wrong (cells without ids and with equal sources,
two notebooks in one folder, IPython's history, ``sys.exit``) runs under each runner with
the durable kernel and with the plain ``python3`` one, and the outputs are compared.
Real kernels, real CLI processes, real papermill.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
_BESIDE = Path(sys.executable).with_name("durable-nb")
DURABLE_NB = _BESIDE if _BESIDE.exists() else ROOT / ".venv" / "bin" / "durable-nb"
TIMEOUT = 120  # seconds for one runner process
DURABLE, PLAIN = "python3-durable", "python3"

EQUAL_CELLS = ["x = [0]", "x", "x[0] += 1", "x"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}


def _old_notebook(path: Path, sources: list[str], kernel: str = DURABLE) -> Path:
    """A notebook as nbformat 4.4 writes it: cells without ids."""
    nb = {
        "nbformat": 4, "nbformat_minor": 4,
        "metadata": {"kernelspec": {"name": kernel, "display_name": kernel,
                                    "language": "python"}},
        "cells": [{"cell_type": "code", "metadata": {}, "execution_count": None,
                   "outputs": [], "source": s} for s in sources],
    }  # fmt: skip
    path.write_text(json.dumps(nb))
    return path


def _outputs(nb_path: Path) -> list[str]:
    """What each code cell showed: its text outputs and error names, joined."""
    nb = nbformat.read(nb_path, as_version=4)
    shown = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.append(out.data.get("text/plain", ""))
            elif out.output_type == "error":
                parts.append(f"{out.ename}: {out.evalue}")
        shown.append("".join(parts).strip())
    return shown


def _durable_nb(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DURABLE_NB), *map(str, args)],
        env=_env(), cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip


def _show(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


# -- 1. cells without ids, with equal sources ---------------------------------------


def test_durable_nb_run_twice_keeps_equal_cells_apart(tmp_path):
    src = _old_notebook(tmp_path / "equal.ipynb", EQUAL_CELLS)
    before = src.read_text()
    for _ in range(2):
        proc = _durable_nb("run", src, "-o", tmp_path / "out.ipynb")
        assert proc.returncode == 0, _show(proc)
        assert "resuming" not in proc.stdout, _show(proc)
        assert _outputs(tmp_path / "out.ipynb") == ["", "[0]", "", "[1]"]
    assert src.read_text() == before  # ids only in memory: the input file is untouched
    assert all(c.get("id") for c in nbformat.read(tmp_path / "out.ipynb", 4).cells)


# -- papermill: the durable engine --------------------------------------------------


def _papermill(src: Path, out: Path, engine: str | None = "durable", **kw):
    """papermill's Python API in this process (its kernels use this checkout)."""
    import papermill
    from papermill.engines import papermill_engines

    from durable_nb.cli.papermill import DurableEngine

    # The entry point is read from installed metadata: register this checkout's engine.
    papermill_engines.register("durable", DurableEngine)
    return papermill.execute_notebook(
        str(src), str(out), engine_name=engine, cwd=str(src.parent), progress_bar=False, **kw
    )


RESUMABLE = [
    "import durable_nb as dnb\nfrom pathlib import Path\n\n"
    "@dnb.step\ndef effect(i):\n    with open('effects.txt', 'a') as f:\n"
    "        f.write(f'{i}\\n')\n    return i * 10",
    "import uuid\na = effect(1)\ntoken = uuid.uuid4().hex\nprint(token)",
    "b = effect(2)\nif not Path('ok').exists():\n    raise RuntimeError('not yet')",
    "print(a, b, token)",
]


def test_papermill_engine_resumes_a_failed_run(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    src = _old_notebook(tmp_path / "resumable.ipynb", RESUMABLE)
    out = tmp_path / "out.ipynb"
    with pytest.raises(PapermillExecutionError):
        _papermill(src, out)
    assert (tmp_path / "effects.txt").read_text().split() == ["1", "2"]
    token = _outputs(out)[1]
    (tmp_path / "ok").touch()
    _papermill(src, out)
    # Cells 1-2 skipped (their outputs kept, the namespace restored), cell 3 re-ran with
    # its step replayed.
    assert (tmp_path / "effects.txt").read_text().split() == ["1", "2"]
    shown = _outputs(out)
    assert shown[1] == token and shown[3] == f"10 20 {token}"
    assert shown[2].startswith("durable_nb: 1 step replayed"), shown
    assert (tmp_path / ".durable" / "resumable.duckdb").exists()
    assert not list((tmp_path / ".durable").glob("session*"))
    # Finished: the next run starts over: every cell runs again, steps replay.
    _papermill(src, out)
    # The token, beside the "1 step replayed" note (information, on stdout too).
    again = next(x for x in _outputs(out)[1].splitlines() if not x.startswith("durable_nb:"))
    assert again != token and _outputs(out)[3] == f"10 20 {again}"
    assert (tmp_path / "effects.txt").read_text().split() == ["1", "2"]


# -- 2. notebooks in one folder under plain nbclient --------------------------------

NBCLIENT = """
import sys
# As durable-nb run does: no IRI grammars compiled at import (~3.5 CPU-s), see run.py.
sys.modules.setdefault("rfc3987_syntax", None)
import nbformat, nbclient
src, out, kernel, cwd, *extra = sys.argv[1:]
nb = nbformat.read(src, as_version=4)
client = nbclient.NotebookClient(nb, kernel_name=kernel, allow_errors=True, timeout=120,
                                 resources={"metadata": {"path": cwd}}, extra_arguments=extra)
try:
    client.execute()
finally:
    nbformat.write(nb, out)
"""


def _nbclient(src: Path, out: Path, kernel: str = DURABLE, *extra: str) -> subprocess.Popen:
    """Plain nbclient in a process of its own (it sets no JPY_SESSION_NAME)."""
    return subprocess.Popen(
        [sys.executable, "-c", NBCLIENT, str(src), str(out), kernel, str(src.parent), *extra],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _finish(*procs: subprocess.Popen) -> None:
    for p in procs:
        text, _ = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, text


X = ["secret = 'X'", "%durable path", "raise KeyboardInterrupt"]
Y = ["mine = 'Y'", "%durable path", "%durable resume", "print('secret' in globals())"]


def test_notebooks_in_one_folder_do_not_share_a_journal_under_nbclient(tmp_path):
    x = _old_notebook(tmp_path / "x.ipynb", X)
    y = _old_notebook(tmp_path / "y.ipynb", Y)
    xo, yo = tmp_path / "x.out.ipynb", tmp_path / "y.out.ipynb"
    paths = []
    for runs in ("in parallel", "X interrupted, then Y"):
        if runs == "in parallel":
            _finish(_nbclient(x, xo), _nbclient(y, yo))
        else:
            _finish(_nbclient(x, xo))
            _finish(_nbclient(y, yo))
        shown = _outputs(yo)
        assert not any("un-journaled" in s or "held" in s for s in _outputs(xo) + shown)
        assert _outputs(xo)[2].startswith("KeyboardInterrupt")
        assert "interrupted" not in shown[0]  # Y never sees X's interrupted cell
        assert shown[2].startswith("durable_nb: nothing to resume"), shown
        assert shown[3] == "False"  # X's variables are not Y's
        paths += [ast.literal_eval(_outputs(xo)[1]), ast.literal_eval(shown[1])]
    # A journal of its own per kernel session, beside the notebooks.
    assert len(set(paths)) == len(paths), paths
    assert all(Path(p).parent == tmp_path / ".durable" for p in paths), paths
    assert all(Path(p).name.startswith("session-") for p in paths), paths
    assert not (tmp_path / ".durable" / "session.duckdb").exists()


def test_a_shared_journal_refuses_another_notebooks_run(tmp_path, start_kernel):
    # Two notebooks named alike in two folders, one DURABLE_NB_DIR: one journal.
    env = _env()
    env["DURABLE_NB_DIR"] = str(tmp_path / "journals")
    a, b = tmp_path / "a" / "x.ipynb", tmp_path / "b" / "x.ipynb"
    for nb in (a, b):
        nb.parent.mkdir()
        _old_notebook(nb, [])
    ka = start_kernel(dict(env, JPY_SESSION_NAME=str(a)))
    ka.ok("secret = 'A'")
    assert ka.run("raise KeyboardInterrupt").status == "error"
    ka.close()
    kb = start_kernel(dict(env, JPY_SESSION_NAME=str(b)))
    first = kb.ok("1")
    assert "interrupted" not in first.stderr  # never offered
    for command in ("%durable resume", "%durable restore --at 1"):
        refused = kb.run(command)
        line = refused.stderr.strip()
        assert refused.status == "error" and line.startswith("UsageError: "), str(refused)
        assert f"the work of notebook {a}, not of this one (notebook {b})" in line, line
        assert "\n" not in line
    # Restoring this notebook's own state leaves the other's variables out.
    assert "restored 0 variables" in kb.ok("%durable restore").stdout
    assert kb.value("'secret' in globals()") == "False"


# -- 5. the corpus: each runner, the durable kernel against the plain one ------------

#: The shapes that went wrong, in one notebook without cell ids: equal cells, IPython's
#: history (nbclient's "Check History in Memory"), and sys.exit() at the end.
CORPUS = [
    *EQUAL_CELLS,
    "str(get_ipython().history_manager.hist_file)",
    "print('before exit')",
    "import sys\nsys.exit()",
]
HISTORY_IN_MEMORY = "--HistoryManager.hist_file=:memory:"


def test_corpus_under_each_runner_matches_the_plain_kernel(tmp_path):
    src = _old_notebook(tmp_path / "corpus.ipynb", CORPUS, kernel=PLAIN)
    out = {name: tmp_path / f"{name}.ipynb" for name in
           ("nbclient-plain", "nbclient-durable", "papermill-plain", "papermill-durable",
            "durable-nb-run")}  # fmt: skip
    # Plain nbclient: both kernels; the durable one with the option nbclient gives
    # python3 only (README, "Runners").
    _finish(
        _nbclient(src, out["nbclient-plain"], PLAIN),
        _nbclient(src, out["nbclient-durable"], DURABLE, HISTORY_IN_MEMORY),
    )
    for name, engine, kernel in (("papermill-plain", None, PLAIN),
                                 ("papermill-durable", "durable", None)):  # fmt: skip
        # papermill takes sys.exit() (code 0) for success, under both engines.
        _papermill(src, out[name], engine=engine, kernel_name=kernel)
    # --fresh: the papermill engine's run of this notebook failed in its last cell, and
    # durable-nb run shares its journal (the same notebook): it would resume there.
    proc = _durable_nb("run", src, "--fresh", "-o", out["durable-nb-run"])
    assert proc.returncode == 1 and "SystemExit" in proc.stderr, _show(proc)
    assert "durable_nb" not in proc.stderr.replace("durable-nb", ""), _show(proc)

    plain = _outputs(out["nbclient-plain"])
    assert plain[:6] == ["", "[0]", "", "[1]", "':memory:'", "before exit"], plain
    assert plain[6].startswith("SystemExit"), plain

    def kinds(path: Path) -> list[list[str]]:
        cells = nbformat.read(path, as_version=4).cells
        return [[o.output_type for o in c.outputs] for c in cells]

    for name, path in out.items():
        # The same outputs, stream for stream: no extra warnings at SystemExit.
        assert _outputs(path) == plain, (name, _outputs(path))
        assert kinds(path) == kinds(out["nbclient-plain"]), name
