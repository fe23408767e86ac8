"""``durable-nb run``: real CLI processes, real kernels, real SIGKILL, real service calls."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import nbformat
import psutil
from flaky_service import stats  # conftest puts notebooks/ on sys.path
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
_BESIDE = Path(sys.executable).with_name("durable-nb")
DURABLE_NB = _BESIDE if _BESIDE.exists() else ROOT / ".venv" / "bin" / "durable-nb"
RUN_TIMEOUT = 90  # seconds for one CLI process; a hang fails instead of blocking the suite


def _env(**extra: str) -> dict[str, str]:
    """The CLI's environment: no inherited Jupyter/durable settings, flaky_service importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NOTEBOOKS), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _run(*args: str | Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DURABLE_NB), *map(str, args)],
        env=_env(**env), capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip


def _show(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def _write(path: Path, *sources: str) -> nbformat.NotebookNode:
    """A notebook of code cells (each with an id, as nbformat.v4 gives them) at ``path``."""
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3-durable", "display_name": "Python 3 (durable)"}
    nbformat.write(nb, path)
    return nb


def _by_path(url: str, prefix: str) -> dict[str, int]:
    """The service's request counts for ``/work/<prefix>...``, keyed by the rest of the path."""
    head = f"/work/{prefix}"
    return {p[len(head) :]: n for p, n in stats(url)["by_path"].items() if p.startswith(head)}


# -- 1. the example notebook --------------------------------------------------


def test_example_notebook_runs_then_replays(tmp_path):
    shutil.copy(NOTEBOOKS / "01_flaky_service.ipynb", tmp_path)
    shutil.copy(NOTEBOOKS / "flaky_service.py", tmp_path)
    nb_path = tmp_path / "01_flaky_service.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    n_code = sum(c.cell_type == "code" for c in nb.cells)

    first = _run("run", nb_path)
    assert first.returncode == 0, _show(first)
    summaries = re.findall(r"^\[(\d+)/(\d+)\] ok\b", first.stdout, re.M)
    assert summaries == [(str(i), str(n_code)) for i in range(1, n_code + 1)], _show(first)
    assert "provisioned 12 nodes" in first.stdout, _show(first)
    assert (tmp_path / ".durable" / "01_flaky_service.duckdb").is_file()

    second = _run("run", nb_path)
    assert second.returncode == 0, _show(second)
    assert "provisioned 12 nodes" in second.stdout, _show(second)
    assert "12 steps replayed from the journal" in second.stdout + second.stderr, _show(second)


IDENTITY_SETUP = """
import collections, dataclasses, os, threading
import durable_nb as dnb
Target = collections.namedtuple("Target", "host tags client")
@dataclasses.dataclass(frozen=True, slots=True)
class Region:
    name: str
    zones: frozenset
client = threading.Lock()  # (cannot be pickled: a client)
@dnb.step
def provision(t, region):
    print("RAN", t.host)
    return f"{t.host}@{region.name}"
"""

IDENTITY_CELL = """
targets = [Target(h, frozenset({"web", "db", "cache", "edge"}), client) for h in ("db-1", "db-2")]
region = Region("eu-west", frozenset({"eu-west-1a", "eu-west-1b", "eu-west-1c"}))
ordered = sorted(targets, key=lambda t: t.host, reverse=os.environ.get("REVERSE") == "1")
print("got", [provision(t, region) for t in ordered])
"""


def test_steps_called_with_namedtuples_of_sets_and_a_client_replay_in_a_new_kernel(tmp_path):
    # Each run is a new kernel with another hash seed, the second making the calls in the
    # other order. A frozenset in a namedtuple or a slotted dataclass was pickled in hash
    # order (the steps ran again), and a namedtuple holding a client was told by its type
    # alone (in the other order, db-2 got db-1's result).
    nb_path = tmp_path / "identity.ipynb"
    _write(nb_path, IDENTITY_SETUP, IDENTITY_CELL)
    runs = []
    for seed, reverse in (("1", "0"), ("2", "1")):
        runs.append(_run("run", nb_path, PYTHONHASHSEED=seed, REVERSE=reverse))
        assert runs[-1].returncode == 0, _show(runs[-1])
    assert "got ['db-1@eu-west', 'db-2@eu-west']" in runs[0].stdout, _show(runs[0])
    assert "got ['db-2@eu-west', 'db-1@eu-west']" in runs[1].stdout, _show(runs[1])
    assert "RAN" not in runs[1].stdout, _show(runs[1])
    assert "2 steps replayed from the journal" in runs[1].stdout + runs[1].stderr, _show(runs[1])


# -- 2. a failing step, fixed, then resumed ------------------------------------

SETUP = """
import os
import durable_nb as dnb
from flaky_service import call

URL = {url!r}
FLAG = {flag!r}


@dnb.step(retries=1, initial=0.01)
def work(item):
    reply = call(URL, f"resume/i{{item}}")
    if item == 3 and os.path.exists(FLAG):
        raise RuntimeError("boom: the flag file is there")
    return reply["n"]
"""

LOOP = """
done = [work(item) for item in range(6)]
print("done", done)
"""


def test_failed_run_then_rerun_resumes_without_repeating_completed_steps(tmp_path, service):
    flag = tmp_path / "fail-item-3"
    flag.touch()
    nb_path = tmp_path / "resume.ipynb"
    _write(nb_path, SETUP.format(url=service, flag=str(flag)), LOOP)

    first = _run("run", nb_path)
    assert first.returncode == 1, _show(first)
    assert "[1/2] ok" in first.stdout and "[2/2] error" in first.stdout, _show(first)
    assert "stopped at a failing cell" in first.stderr, _show(first)
    assert "StepFailed" in first.stderr and "boom" in first.stderr, _show(first)
    assert "done = [work(item)" in first.stderr, _show(first)  # the failing cell is named
    # Items 0-2 ran once; item 3 was tried twice (retries=1) and failed; 4-5 never ran.
    assert _by_path(service, "resume/") == {"i0": 1, "i1": 1, "i2": 1, "i3": 2}

    flag.unlink()  # the person fixes the cause
    second = _run("run", nb_path)
    assert second.returncode == 0, _show(second)
    assert "done [1, 1, 1, 3, 1, 1]" in second.stdout, _show(second)
    assert "3 steps replayed from the journal" in second.stdout + second.stderr, _show(second)
    # 0-2 replayed (not called again); the failed 3 is tried again; 4-5 run once.
    assert _by_path(service, "resume/") == {"i0": 1, "i1": 1, "i2": 1, "i3": 3, "i4": 1, "i5": 1}


# -- 3. SIGKILL of the kernel mid-cell -----------------------------------------

SLOW_SETUP = """
import time
import durable_nb as dnb
from flaky_service import call

URL = {url!r}


@dnb.step(retries=0)
def slow(item):
    reply = call(URL, f"kill/i{{item:02d}}")
    time.sleep(0.1)
    return reply["n"]
"""

SLOW_LOOP = """
done = [slow(item) for item in range(30)]
print("finished", len(done))
"""


def _kernel_of(cli: subprocess.Popen, deadline: float) -> psutil.Process:
    """The kernel: the (only) child process of the durable-nb process.

    A child seen between its fork and its exec still shows the parent's
    command line, so the wait goes on until it shows ipykernel's.
    """
    while True:
        kids = psutil.Process(cli.pid).children()
        if kids:
            assert len(kids) == 1, kids
            try:
                if "ipykernel" in " ".join(kids[0].cmdline()):
                    return kids[0]
            except psutil.NoSuchProcess:
                pass
        assert cli.poll() is None, "durable-nb exited before starting a kernel"
        assert time.monotonic() < deadline, "no kernel process appeared"
        time.sleep(0.05)


def test_kernel_killed_mid_cell_then_rerun_completes_each_step_once(tmp_path, service):
    nb_path = tmp_path / "kill.ipynb"
    _write(nb_path, SLOW_SETUP.format(url=service), SLOW_LOOP)

    cli = subprocess.Popen(
        [str(DURABLE_NB), "run", str(nb_path)],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        kernel = _kernel_of(cli, deadline)
        while stats(service)["total"] < 10:
            assert cli.poll() is None, "durable-nb ended before 10 requests"
            assert time.monotonic() < deadline, "the service never saw 10 requests"
            time.sleep(0.01)
        os.kill(kernel.pid, signal.SIGKILL)
        out, err = cli.communicate(timeout=RUN_TIMEOUT)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 1, f"exit {cli.returncode}\n{out}\n{err}"
    assert "DeadKernelError" in err, f"{out}\n{err}"
    before = _by_path(service, "kill/")
    assert 10 <= len(before) < 30, before
    assert all(n == 1 for n in before.values()), before

    second = _run("run", nb_path)
    assert second.returncode == 0, _show(second)
    assert "finished 30" in second.stdout, _show(second)
    after = _by_path(service, "kill/")
    assert sorted(after) == [f"i{i:02d}" for i in range(30)], after
    # Once each, except the step in flight at the kill, which may have run twice.
    twice = [p for p, n in after.items() if n == 2]
    assert all(n in (1, 2) for n in after.values()) and len(twice) <= 1, after
    assert set(twice) <= set(before), (twice, before)
    replayed = re.search(r"(\d+) steps? replayed from the journal", second.stdout + second.stderr)
    assert replayed, _show(second)
    assert int(replayed.group(1)) >= len(before) - 1, (replayed.group(0), before)


# -- 4. exit codes and errors --------------------------------------------------


def test_missing_notebook_exits_2_with_a_message(tmp_path):
    missing = tmp_path / "nope.ipynb"
    proc = _run("run", missing)
    assert proc.returncode == 2, _show(proc)
    assert "no notebook" in proc.stderr and str(missing) in proc.stderr, _show(proc)


def test_unknown_kernel_exits_2_with_a_message(tmp_path):
    nb_path = tmp_path / "k.ipynb"
    _write(nb_path, "x = 1")
    proc = _run("run", nb_path, "--kernel", "nosuchkernel")
    assert proc.returncode == 2, _show(proc)
    assert "nosuchkernel" in proc.stderr and "not installed" in proc.stderr, _show(proc)
    assert not (tmp_path / ".durable").exists()  # no kernel was started


def test_plain_cell_error_exits_1(tmp_path):
    nb_path = tmp_path / "zero.ipynb"
    _write(nb_path, "x = 1", "y = 1 / 0", "print('never')")
    proc = _run("run", nb_path)
    assert proc.returncode == 1, _show(proc)
    assert "ZeroDivisionError" in proc.stderr, _show(proc)
    assert "[1/3] ok" in proc.stdout and "[2/3] error" in proc.stdout, _show(proc)
    assert "[3/3]" not in proc.stdout and "never" not in proc.stdout, _show(proc)


# -- 5. cell ids and the notebook path reach the journal -----------------------


def test_cell_ids_and_notebook_path_are_journaled(tmp_path):
    nb_path = tmp_path / "ids.ipynb"
    nb = new_notebook(
        cells=[
            new_code_cell("a = 1"),
            new_markdown_cell("not executed"),
            new_code_cell("b = a + 1"),
            new_code_cell("print(b)"),
        ]
    )
    nbformat.write(nb, nb_path)
    ids = [c.id for c in nb.cells if c.cell_type == "code"]
    assert all(ids) and len(set(ids)) == 3

    proc = _run("run", nb_path)
    assert proc.returncode == 0, _show(proc)

    journal = tmp_path / ".durable" / "ids.duckdb"
    con = duckdb.connect(str(journal), read_only=True)
    try:
        cells = con.execute("SELECT cell_id, cell_key, status FROM cells ORDER BY seq").fetchall()
        runs = con.execute("SELECT notebook, status FROM runs").fetchall()
    finally:
        con.close()
    assert [c[0] for c in cells] == ids, cells
    assert [c[1] for c in cells] == ids, cells  # steps are keyed by the cell id
    assert all(c[2] == "ok" for c in cells), cells
    assert [r[0] for r in runs] == [str(nb_path.resolve())], runs


def test_gc_removes_only_unreferenced_payload_files(tmp_path):
    nb = tmp_path / "big.ipynb"
    _write(nb, "import numpy as np\nbig = np.arange(600_000, dtype=float)  # 4.8 MB: blob chunks")
    assert _run("run", nb).returncode == 0
    blobs = tmp_path / ".durable" / "big.blobs"
    kept = sorted(p.name for p in blobs.iterdir())
    assert kept, "the snapshot of a 4.8 MB array is stored in blob files"
    orphan = blobs / ("0" * 32)
    orphan.write_bytes(os.urandom(1 << 20))
    proc = _run("gc", nb)
    assert proc.returncode == 0, _show(proc)
    assert "removed 1 unreferenced payload files" in proc.stdout, _show(proc)
    assert sorted(p.name for p in blobs.iterdir()) == kept
