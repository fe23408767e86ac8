"""Headless resume, sharing a notebook with its journal, strict replay and trust.

Real ``durable-nb`` processes, real kernels, real SIGKILL; effects are counted by the
flaky service (its per-path request counts) and by files a crafted pickle would create.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import nbformat
import psutil
import pytest
from flaky_service import stats  # conftest puts notebooks/ on sys.path
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
_BESIDE = Path(sys.executable).with_name("durable-nb")
DURABLE_NB = _BESIDE if _BESIDE.exists() else ROOT / ".venv" / "bin" / "durable-nb"
RUN_TIMEOUT = 120  # seconds for one CLI process
HELD = 3  # the exit code of a CLI command on a journal a live kernel holds


def _env(home: Path | None = None) -> dict[str, str]:
    """The CLI's environment; with ``home``, another user (own HOME and Jupyter data dir)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NOTEBOOKS), env.get("PYTHONPATH")]))
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        env.update(HOME=str(home), JUPYTER_DATA_DIR=str(home / "jupyter-data"))
    return env


def _run(*args: str | Path, home: Path | None = None, cwd: Path | None = None):
    return subprocess.run(
        [str(DURABLE_NB), *map(str, args)],
        env=_env(home), cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip


def _show(proc) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def _write(path: Path, *cells: str | tuple[str, str, list[str]]) -> None:
    """A notebook of code cells; a tuple is ``(cell id, source, tags)``."""
    nb = new_notebook()
    for i, c in enumerate(cells):
        cid, source, tags = c if isinstance(c, tuple) else (f"cell-{i}", c, [])
        cell = new_code_cell(source, id=cid)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": "python3-durable", "display_name": "Python 3 (durable)"}
    nbformat.write(nb, path)


def _by_path(url: str, prefix: str) -> dict[str, int]:
    head = f"/work/{prefix}"
    return {p[len(head) :]: n for p, n in stats(url)["by_path"].items() if p.startswith(head)}


class _Service:
    """The flaky service in its own process, which a test can stop (to be offline)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(NOTEBOOKS / "flaky_service.py"), "--port", "0",
             "--fail-rate", "0"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def stoppable_service():
    svc = _Service()
    yield svc
    svc.stop()


# -- 1. killed mid-notebook, run again: resume at the failed cell ---------------------

SETUP = """
import time
import durable_nb as dnb
from flaky_service import call

URL = {url!r}


@dnb.step(retries=0)
def fetch(name):
    return call(URL, f"kill/{{name}}")["n"]


@dnb.step(retries=0)
def slow(item):
    reply = call(URL, f"kill/i{{item:02d}}")
    time.sleep(0.1)
    return reply["n"]


base = fetch("base") * 1000
print("setup ran")
"""

LOOP = """
done = [slow(item) for item in range(30)]
print("finished", len(done))
"""

USE = """
print("total", base + sum(done))
"""


def _kill_when(cli: subprocess.Popen, url: str, requests: int) -> tuple[str, str]:
    """SIGKILL the kernel (the CLI's only child) once the service saw ``requests``."""
    deadline = time.monotonic() + 60
    while not psutil.Process(cli.pid).children():
        assert cli.poll() is None and time.monotonic() < deadline, "no kernel process"
        time.sleep(0.05)
    (kernel,) = psutil.Process(cli.pid).children()
    while stats(url)["total"] < requests:
        assert cli.poll() is None and time.monotonic() < deadline, "too few requests"
        time.sleep(0.01)
    os.kill(kernel.pid, signal.SIGKILL)
    return cli.communicate(timeout=RUN_TIMEOUT)


def test_killed_run_resumes_at_the_failed_cell_with_the_namespace_restored(tmp_path, service):
    nb_path = tmp_path / "resume.ipynb"
    _write(nb_path, SETUP.format(url=service), LOOP, USE)

    cli = subprocess.Popen(
        [str(DURABLE_NB), "run", str(nb_path)],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out, err = _kill_when(cli, service, 12)  # base + 11 loop items
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 1 and "DeadKernelError" in err, f"{out}\n{err}"
    assert "[1/3] ok" in out and "[3/3]" not in out, out
    before = _by_path(service, "kill/")
    assert before.pop("base") == 1
    assert 10 <= len(before) < 30 and set(before.values()) == {1}, before

    second = _run("run", nb_path)
    assert second.returncode == 0, _show(second)
    # The setup cell is not run again: the namespace it made is restored.
    assert re.search(r"^\[1/3\] done\b", second.stdout, re.M), _show(second)
    assert "restored" in second.stdout and "as of cell 1" in second.stdout, _show(second)
    assert "[2/3] ok" in second.stdout and "[3/3] ok" in second.stdout, _show(second)
    after = _by_path(service, "kill/")
    assert after.pop("base") == 1  # not fetched again: restored (or replayed), never re-run
    assert sorted(after) == [f"i{i:02d}" for i in range(30)], after
    twice = [p for p, n in after.items() if n == 2]  # at most the one in flight at the kill
    assert set(after.values()) <= {1, 2} and len(twice) <= 1 and set(twice) <= set(before)
    # `base` (cell 1, not re-run) and `done` (cell 2, resumed) reach cell 3.
    assert f"total {1000 + sum(after.values())}" in second.stdout, _show(second)

    # The run finished: running again starts at the top, and every step replays.
    third = _run("run", nb_path)
    assert third.returncode == 0 and "[1/3] ok" in third.stdout, _show(third)
    assert _by_path(service, "kill/") == dict(after, base=1)

    # --fresh starts a new epoch: every step runs again, once.
    fresh = _run("run", nb_path, "--fresh")
    assert fresh.returncode == 0, _show(fresh)
    assert "epoch 1 started" in fresh.stdout, _show(fresh)
    again = _by_path(service, "kill/")
    assert again == {p: n + 1 for p, n in dict(after, base=1).items()}, again


# -- 2. parameters and the executed notebook --------------------------------------------


def test_parameters_are_injected_and_the_output_notebook_is_written(tmp_path):
    nb_path, out_path = tmp_path / "params.ipynb", tmp_path / "out" / "executed.ipynb"
    nb = new_notebook(
        cells=[
            new_markdown_cell("# parameters below"),
            new_code_cell('n = 1\nlabel = "default"\nratio = 0.5', id="params"),
            new_code_cell("print('result', n * 2, label, ratio, type(n).__name__)", id="use"),
        ]
    )
    nb.cells[1].metadata["tags"] = ["parameters"]
    nbformat.write(nb, nb_path)

    proc = _run("run", nb_path, "-p", "n", "21", "-p", "label", "hello world",
                "--output", out_path)  # fmt: skip
    assert proc.returncode == 0, _show(proc)
    assert "result 42 hello world 0.5 int" in proc.stdout, _show(proc)
    assert "[3/3] ok" in proc.stdout, _show(proc)  # the injected cell is a code cell too

    out = nbformat.read(out_path, as_version=4)
    assert [c.get("id") for c in out.cells] == [nb.cells[0].id, "params",
                                                "injected-parameters", "use"]  # fmt: skip
    injected = out.cells[2]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assert "n = 21" in injected.source and "label = 'hello world'" in injected.source
    printed = "".join(o.get("text", "") for o in out.cells[3].outputs)
    assert "result 42 hello world 0.5 int" in printed
    assert [c.execution_count for c in out.cells if c.cell_type == "code"] == [1, 2, 3]
    assert nbformat.read(nb_path, as_version=4).cells[1].source.startswith("n = 1")  # untouched


# -- 3. export under one HOME, import under another, replay offline once trusted --------

SHARE = """
import durable_nb as dnb
from flaky_service import call

URL = {url!r}


@dnb.step(retries=0)
def provision(node):
    return (node, call(URL, f"share/{{node}}")["n"])  # a tuple: journaled with pickle
"""

SHARE_LOOP = """
results = [provision(f"n{i}") for i in range(3)]
token = dnb.uuid4()
print("results", results, "token", token)
"""


def _printed(stdout: str) -> list[str]:
    # Whole lines: ipykernel's flush timer may split one print into two stream messages,
    # which the runner joins again (cli.run.streams).
    lines = [line.strip() for line in stdout.splitlines() if line.strip().startswith("results")]
    assert all(" token " in line for line in lines), stdout
    return lines


def test_export_import_and_offline_replay_once_trusted(tmp_path, stoppable_service):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    (alice / "work").mkdir(parents=True)
    nb_path = alice / "work" / "share.ipynb"
    _write(nb_path, SHARE.format(url=stoppable_service.url), SHARE_LOOP)
    first = _run("run", nb_path, home=alice)
    assert first.returncode == 0, _show(first)
    assert _by_path(stoppable_service.url, "share/") == {"n0": 1, "n1": 1, "n2": 1}

    export = _run("export", nb_path, "-o", tmp_path / "share.dnb", home=alice)
    assert export.returncode == 0 and "signed by you" in export.stdout, _show(export)
    secret = alice / "jupyter-data" / "durable_nb_secret"  # Alice's, as Jupyter keeps its own
    assert secret.stat().st_mode & 0o777 == 0o600
    stoppable_service.stop()  # from here on, any call would fail: replay must not call

    (bob / "inbox").mkdir(parents=True)
    imp = _run("import", tmp_path / "share.dnb", home=bob, cwd=bob / "inbox")
    assert imp.returncode == 0, _show(imp)
    assert "not trusted" in imp.stdout and "durable-nb trust" in imp.stdout, _show(imp)
    imported = bob / "inbox" / "share.ipynb"
    assert imported.read_bytes() == nb_path.read_bytes()
    assert (bob / "inbox" / ".durable" / "share.duckdb").is_file()

    untrusted = _run("replay", imported, home=bob)
    assert untrusted.returncode == 1, _show(untrusted)
    assert "UntrustedJournal" in untrusted.stderr, _show(untrusted)
    assert f"durable-nb trust {imported}" in untrusted.stderr, _show(untrusted)

    trusted = _run("trust", imported, home=bob)
    assert trusted.returncode == 0 and "signed as yours" in trusted.stdout, _show(trusted)
    replay = _run("replay", imported, home=bob)
    assert replay.returncode == 0, _show(replay)
    assert "strict replay" in replay.stdout, _show(replay)
    assert _printed(replay.stdout) == _printed(first.stdout) != [], _show(replay)

    # Trusting the exported file itself: what Bob imports from it is trusted at once.
    assert _run("trust", tmp_path / "share.dnb", home=bob).returncode == 0
    (bob / "again").mkdir()
    again = _run("import", tmp_path / "share.dnb", home=bob, cwd=bob / "again")
    assert again.returncode == 0 and "signed by you" in again.stdout, _show(again)

    # Alice's own journal needs no trust: she replays it too (the service is down).
    own = _run("replay", nb_path, home=alice)
    assert own.returncode == 0 and _printed(own.stdout) == _printed(first.stdout), _show(own)


# -- 4. a crafted journal never gets code run before it is trusted ----------------------


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _craft(journal: Path, marker: Path) -> None:
    """Put a pickle that creates ``marker`` when loaded in every step result and snapshot."""
    evil = pickle.dumps(_Evil(marker), protocol=5)
    con = duckdb.connect(str(journal))
    try:
        n = con.execute(
            "UPDATE steps SET result = ?, blob = NULL WHERE kind IN ('pickle', 'dill')", [evil]
        ).fetchall()
        m = con.execute(
            "UPDATE payloads SET stream = ?, stream_chunks = NULL, buffers = '[]'", [evil]
        ).fetchall()
    finally:
        con.close()
    assert n[0][0] >= 3 and m[0][0] >= 1, (n, m)


def test_crafted_journal_is_never_unpickled_before_trust(tmp_path, start_kernel, kernel_env):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    svc = _Service()
    try:
        (alice / "work").mkdir(parents=True)
        nb_path = alice / "work" / "share.ipynb"
        _write(nb_path, SHARE.format(url=svc.url), SHARE_LOOP)
        assert _run("run", nb_path, home=alice).returncode == 0
        assert _run("export", nb_path, "-o", tmp_path / "x.dnb", home=alice).returncode == 0
    finally:
        svc.stop()
    marker = tmp_path / "pwned"

    # Bob imports, then an attacker swaps the pickles: replaying, running, restoring all refuse.
    (bob / "inbox").mkdir(parents=True)
    assert _run("import", tmp_path / "x.dnb", home=bob, cwd=bob / "inbox").returncode == 0
    imported = bob / "inbox" / "share.ipynb"
    _craft(bob / "inbox" / ".durable" / "share.duckdb", marker)
    for command in ("replay", "run"):
        proc = _run(command, imported, home=bob)
        assert proc.returncode == 1, _show(proc)
        assert "not signed by you" in proc.stderr, _show(proc)
        assert f"durable-nb trust {imported}" in proc.stderr, _show(proc)
        assert not marker.exists(), command

    env = dict(kernel_env, **_env(bob), JPY_SESSION_NAME=str(imported))
    k = start_kernel(env)
    r = k.run("%durable restore")  # a UsageError: one line on stderr, no traceback
    assert not r.ok and r.error is None and "Traceback" not in r.stderr, str(r)
    assert "not signed by you" in r.stderr and "%durable trust" in r.stderr, str(r)
    k.close()
    assert not marker.exists()

    # Alice's own journal, changed behind her back: its signatures no longer match.
    _craft(alice / "work" / ".durable" / "share.duckdb", marker)
    proc = _run("replay", nb_path, home=alice)
    assert proc.returncode == 1 and "not signed by you" in proc.stderr, _show(proc)
    env = dict(kernel_env, **_env(alice), JPY_SESSION_NAME=str(nb_path))
    k = start_kernel(env)
    r = k.run("%durable restore")
    assert not r.ok and "holds a snapshot not signed by you" in r.stderr, str(r)
    k.close()
    assert not marker.exists()


# -- 5. strict replay: a missing step fails clearly, a recorded error is raised again ---

STRICT = """
import durable_nb as dnb
from flaky_service import call

URL = {url!r}


@dnb.step(retries=0)
def work(item):
    return call(URL, f"strict/w{{item}}")["n"]


@dnb.step(non_retryable=(ValueError,))
def check(item):
    call(URL, f"strict/check{{item}}")
    raise ValueError(f"item {{item}} is invalid")
"""

STRICT_LOOP = """
out = [work(i) for i in range({n})]
try:
    check(7)
except ValueError as exc:
    print("caught", exc)
print("out", out)
"""


def test_strict_replay_names_a_missing_step_and_reraises_recorded_errors(tmp_path, service):
    nb_path = tmp_path / "strict.ipynb"
    _write(nb_path, STRICT.format(url=service), ("loop", STRICT_LOOP.format(n=3), []))
    first = _run("run", nb_path)
    assert first.returncode == 0 and "caught item 7 is invalid" in first.stdout, _show(first)
    counts = _by_path(service, "strict/")
    assert counts == {"w0": 1, "w1": 1, "w2": 1, "check7": 1}

    same = _run("replay", nb_path)
    assert same.returncode == 0, _show(same)
    assert "caught item 7 is invalid" in same.stdout and "out [1, 1, 1]" in same.stdout
    assert _by_path(service, "strict/") == counts  # nothing was called

    _write(nb_path, STRICT.format(url=service), ("loop", STRICT_LOOP.format(n=4), []))
    missing = _run("replay", nb_path)
    assert missing.returncode == 1, _show(missing)
    message = missing.stderr
    assert "ReplayMissing" in message and "strict replay: step work(3)" in message, message
    assert "out = [work(i)" in message and "cell key loop" in message, message
    assert _by_path(service, "strict/") == counts


def test_durable_replay_magic_in_a_live_kernel(start_kernel, service):
    k = start_kernel()
    k.ok(STRICT.format(url=service), cell_id="setup")
    k.ok("a = [work(i) for i in range(2)]", cell_id="c1")
    assert k.ok("%durable replay").stdout.startswith("durable_nb: strict replay")
    r = k.ok("a = [work(i) for i in range(2)]", cell_id="c1")
    assert "replayed from the journal" not in r.stdout + r.stderr  # no hint to run them again
    r = k.run("a = [work(i) for i in range(3)]", cell_id="c1")
    assert r.error["ename"] == "ReplayMissing", str(r)
    assert "work(2)" in r.error["evalue"] and "cell key c1" in r.error["evalue"], str(r)
    assert _by_path(service, "strict/") == {"w0": 1, "w1": 1}
    k.ok("%durable replay off")
    k.ok("a = [work(i) for i in range(3)]", cell_id="c1")
    assert _by_path(service, "strict/") == {"w0": 1, "w1": 1, "w2": 1}


# -- 6. show and ls ---------------------------------------------------------------------

FAILING = """
import durable_nb as dnb
from flaky_service import call


@dnb.step(retries=1, initial=0.01)
def flaky(item):
    call({url!r}, f"show/i{{item}}")
    if item == 2:
        raise RuntimeError("item 2 always fails")
    return item


[flaky(i) for i in range(3)]
"""


def test_show_and_ls_in_text_and_json(tmp_path, service):
    nb_path = tmp_path / "proj" / "shown.ipynb"
    nb_path.parent.mkdir()
    _write(nb_path, FAILING.format(url=service))
    assert _run("run", nb_path).returncode == 1

    text = _run("show", nb_path)
    assert text.returncode == 0, _show(text)
    expected_parts = ["runs (1)", "cells (1)", "steps (3)", "flaky", "(2)", "attempt 1"]
    expected_parts += ["attempt 2", "RuntimeError: item 2 always fails", "signed by you"]
    for expected in expected_parts:
        assert expected in text.stdout, (expected, _show(text))

    data = json.loads(_run("show", nb_path, "--json").stdout)
    assert data["notebook"] == str(nb_path) and data["trusted"] is True
    assert [s["status"] for s in data["steps"]] == ["ok", "ok", "error"]
    assert data["steps"][2]["attempts"] == 2 and len(data["steps"][2]["attempt_errors"]) == 2
    assert data["cells"][0]["status"] == "error" and data["runs"][0]["status"] == "closed"

    listed = _run("ls", tmp_path)
    assert listed.returncode == 0, _show(listed)
    assert "proj/.durable/shown.duckdb" in listed.stdout and "2/3" in listed.stdout
    rows = json.loads(_run("ls", tmp_path, "--json").stdout)
    assert [r["notebook"] for r in rows] == [str(nb_path)]
    assert rows[0]["steps_ok"] == 2 and rows[0]["steps"] == 3 and rows[0]["trusted"] is True


# -- 7. a journal held by a live kernel ---------------------------------------------------


def test_cli_on_a_held_journal_says_so_and_exits_3(start_kernel, workdir, tmp_path):
    nb_path = workdir / "nb.ipynb"  # the notebook the conftest kernel is started on
    _write(nb_path, "x = 1")
    k = start_kernel()
    k.ok("x = 41 + 1", cell_id="cell-0")
    for args in (("show", nb_path), ("ls", workdir), ("run", nb_path), ("trust", nb_path),
                 ("export", nb_path, "-o", tmp_path / "x.dnb"), ("replay", nb_path)):  # fmt: skip
        proc = _run(*args)
        assert proc.returncode == HELD, (args, _show(proc))
        assert "held by a live kernel" in proc.stderr, (args, _show(proc))
        assert f"pid {k.pid}" in proc.stderr and str(nb_path) in proc.stderr, (args, _show(proc))
    copy = _run("show", nb_path, "--json", "--copy")
    assert copy.returncode == 0, _show(copy)
    data = json.loads(copy.stdout)
    assert data["copy_of_live_journal"] and data["runs"][-1]["status"] == "running", data
    assert [c["source"] for c in data["cells"]] == ["x = 41 + 1"]
    assert _run("ls", workdir, "--copy").returncode == 0
    assert _run("export", nb_path, "-o", tmp_path / "x.dnb", "--copy").returncode == 0
    k.close()
    assert _run("show", nb_path).returncode == 0  # released
