"""The extension as a user meets it: public API, kernelspec, journal placement,
load/unload, the ``%durable`` magic, plain scripts, and a kernel without the extension.
"""

from __future__ import annotations

import ast
import json
import os
import queue
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
from helpers import cell, dnb_lines, lines, steps_cell
from kernels import Kernel

from durable_nb.extension import QUIET

BIN = Path(sys.executable).parent


def value(k, expr: str, cell_id: str | None = None) -> str:
    result = cell(k, expr, cell_id)
    return result.data[-1]["text/plain"] if result.data else ""


def journal_path(k) -> Path:
    return Path(ast.literal_eval(value(k, "%durable path")))


def plain_env(kernel_env: dict[str, str]) -> dict[str, str]:
    """The environment without a notebook path (a plain kernel or a script)."""
    return {k: v for k, v in kernel_env.items() if k != "JPY_SESSION_NAME"}


def run_with_reply(k, code: str, timeout: float = 60) -> tuple[dict, str, list[dict]]:
    """Run a cell; return (execute_reply content, stderr, iopub error messages)."""
    msg_id = k.send(code, cell_id=f"cell-{uuid.uuid4().hex[:8]}")
    stderr, errors = "", []
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"{code!r} did not finish"
        try:
            msg = k.kc.get_iopub_msg(timeout=1.0)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content["name"] == "stderr":
            stderr += content["text"]
        elif kind == "error":
            errors.append(content)
        elif kind == "status" and content["execution_state"] == "idle":
            break
    reply = k.kc.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = k.kc.get_shell_msg(timeout=30)
    return reply["content"], stderr, errors


# -- 1. public API: pinned in tests/unit/test_api.py ------------------------------------


# -- 2. kernelspec ------------------------------------------------------------------------


def test_kernelspec_is_installed_and_loads_the_extension(start_kernel, workdir):
    proc = subprocess.run(
        [str(BIN / "jupyter"), "kernelspec", "list", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    specs = json.loads(proc.stdout)["kernelspecs"]
    assert "python3-durable" in specs, sorted(specs)
    spec = specs["python3-durable"]["spec"]
    assert spec["display_name"] == "Python 3 (durable)"
    assert spec["language"] == "python"

    k = start_kernel()  # the "python3-durable" kernel, no %load_ext
    assert journal_path(k) == workdir / ".durable" / "nb.duckdb"
    assert "journaling" in cell(k, "%durable status").stdout
    assert (workdir / ".durable" / "nb.duckdb").exists()
    # The journal's DuckDB connection imports no ipywidgets (DuckDB's progress bar widget,
    # which a slow journal query would show in a cell); the notebook's own keep theirs.
    assert value(k, "'ipywidgets' in __import__('sys').modules") == "False"
    setting = "select current_setting('enable_progress_bar')"
    assert value(k, f"__import__('duckdb').connect().execute({setting!r}).fetchone()[0]") == "True"
    assert value(k, "'ipywidgets' in __import__('sys').modules") == "True"


def test_the_first_cell_runs_once_the_journal_is_open(start_kernel):
    # The kernel answers its first kernel_info request (what a frontend waits for before
    # it sends a cell) once the journal's opening thread is done: no cell competes with
    # it for the interpreter. Later requests get the kernel's own handler again.
    k = start_kernel()
    check = ("import durable_nb.extension as e; ext = next(iter(e._loaded.values())); "
             "k = get_ipython().kernel; "
             "(ext.rt._thread.is_alive(), "
             "k.shell_handlers['kernel_info_request'] == k.kernel_info_request)")  # fmt: skip
    assert value(k, check) == "(False, True)"
    assert k.kc.kernel_info(reply=True, timeout=10)["content"]["status"] == "ok"
    assert value(k, "1 + 1") == "2"


def test_the_warm_up_waits_for_a_pause_between_cells(workdir, kernel_env):
    # Importing dill (~25 ms, for notebook classes) would share the interpreter with
    # cells run back to back (nbclient, papermill, Run All): it waits for a pause. The
    # cells are sent at once, not after the client's own wait for the kernel.
    k = Kernel(workdir, kernel_env, ready=lambda k: None)
    try:
        imported = "'dill' in __import__('sys').modules"
        started = time.monotonic()
        while time.monotonic() - started < QUIET * 3:
            assert value(k, f"__import__('time').sleep(0.05); {imported}") == "False"
        time.sleep(QUIET * 3)
        assert value(k, imported) == "True"
        # Its thread is not the opening's (the first reply waits for that one), and none
        # is left behind once unloaded.
        threads = "sorted(t.name for t in __import__('threading').enumerate())"
        assert "durable_nb-open" not in value(k, threads)
        cell(k, "%unload_ext durable_nb")
        assert "durable_nb" not in value(k, threads)
    finally:
        k.kill()


def test_an_unload_before_the_pause_ends_the_warm_up(workdir, kernel_env):
    k = Kernel(workdir, kernel_env, ready=lambda k: None)
    try:
        cell(k, "%unload_ext durable_nb")  # at once: no pause yet
        time.sleep(QUIET * 3)
        threads = "sorted(t.name for t in __import__('threading').enumerate())"
        assert "durable_nb" not in value(k, threads)
        assert value(k, "'dill' in __import__('sys').modules") == "False"
    finally:
        k.kill()


def test_an_interrupt_while_the_first_reply_waits_does_not_lose_it(workdir, kernel_env):
    # review3 R3-3: the stop button pressed at a kernel that looks slow to start. The
    # opening thread is held by a notebook path that blocks on read (a FIFO: the thread
    # reads the notebook's head for dill's warm-up), as a hung mount would.
    notebook = workdir / "nb.ipynb"
    os.mkfifo(notebook)
    k = Kernel(workdir, kernel_env, ready=lambda k: None)
    try:
        asked = k.kc.kernel_info()
        while True:  # the kernel took the request: it is waiting for the opening
            msg = k.kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") == asked and msg["msg_type"] == "status":
                break
        k.km.interrupt_kernel()
        reply = k.kc.get_shell_msg(timeout=20)
        assert reply["parent_header"]["msg_id"] == asked, reply
        assert reply["msg_type"] == "kernel_info_reply"
    finally:
        with open(notebook, "w"):  # let the opening thread's read end
            pass
        k.kill()


# -- 3. journal placement -----------------------------------------------------------------


def test_journal_beside_the_notebook(start_kernel, workdir, kernel_env):
    notebook = workdir / "sub" / "analysis.ipynb"  # not in the kernel's cwd
    notebook.parent.mkdir()
    k = start_kernel(dict(kernel_env, JPY_SESSION_NAME=str(notebook)))
    expected = workdir / "sub" / ".durable" / "analysis.duckdb"
    assert journal_path(k) == expected
    assert expected.exists()
    assert not (workdir / ".durable").exists()


def test_durable_nb_dir_overrides_the_folder(start_kernel, workdir, kernel_env, tmp_path):
    folder = tmp_path / "journals"
    k = start_kernel(dict(kernel_env, DURABLE_NB_DIR=str(folder)))
    assert journal_path(k) == folder / "nb.duckdb"
    assert (folder / "nb.duckdb").exists()
    assert not (workdir / ".durable").exists()


def test_without_a_notebook_path_the_journal_is_the_sessions_own(start_kernel, workdir, kernel_env):
    # No JPY_SESSION_NAME (nbclient, papermill): a journal of its own per kernel session,
    # named after the connection file (a restart keeps it), never one notebooks share.
    k = start_kernel(plain_env(kernel_env))
    stem = Path(k.km.connection_file).stem
    expected = workdir / ".durable" / f"session-{stem}.duckdb"
    assert journal_path(k) == expected
    assert expected.exists()


# -- 4. unload / reload -------------------------------------------------------------------

COUNTS = """
import json
def _dnb_counts():
    ip = get_ipython()
    return json.dumps([
        len(ip.events.callbacks["pre_run_cell"]),
        len(ip.events.callbacks["post_run_cell"]),
        len(ip.input_transformers_cleanup),
        "durable" in ip.magics_manager.magics["line"],
        "durable" in ip.magics_manager.magics["cell"],
        ip.kernel._execute_sleep,  # ipykernel's pause before a reply: durable_nb's while loaded
        "send" in vars(ip.kernel.session),  # wrapped, for the cell's outputs
    ])
"""


def test_load_reload_unload_leave_nothing_behind(start_kernel, workdir):
    k = start_kernel(kernel_name="python3")
    cell(k, COUNTS)

    def counts() -> list:
        return json.loads(ast.literal_eval(value(k, "_dnb_counts()")))

    before = counts()
    assert before[3:] == [False, False, 0.0005, False]
    grown = [before[0] + 1, before[1] + 1, before[2] + 1, True, True, 0.0, True]

    r = cell(k, "%load_ext durable_nb")
    assert "Traceback" not in r.stderr
    assert counts() == grown
    journal = journal_path(k)
    assert journal == workdir / ".durable" / "nb.duckdb"
    for _ in range(2):
        r = cell(k, "%reload_ext durable_nb")
        assert "Traceback" not in r.stderr, r.stderr
        assert counts() == grown
    assert journal_path(k) == journal
    assert "journaling" in cell(k, "%durable status").stdout

    cell(k, "%unload_ext durable_nb")
    assert counts() == before
    reply, stderr, _ = run_with_reply(k, "%durable status")
    assert reply["status"] == "error" and reply["ename"] == "UsageError", reply
    assert "not found" in stderr

    # The journal is released: another process can open it for writing while the
    # kernel lives on, and each load's run ended as "unloaded".
    con = duckdb.connect(str(journal))
    try:
        runs = con.execute("SELECT status, pid FROM runs ORDER BY started").fetchall()
    finally:
        con.close()
    assert [s for s, _ in runs] == ["unloaded"] * 3, runs
    assert {p for _, p in runs} == {k.pid}
    assert value(k, "1 + 1") == "2"  # the kernel is fine


def test_an_unload_interrupted_while_it_waits_leaves_no_hook_and_can_be_run_again(
    start_kernel,
):
    # A slow disk: the flusher thread's fdatasync takes 3 s; %unload_ext waits for that
    # tick, and Ctrl-C comes meanwhile. Hooks and magics are taken back first; a second
    # %unload_ext finishes (the journal closed), and a load after it hooks once.
    k = start_kernel()
    cell(k, "import os, threading, time\n"
            "_in_sync = threading.Event(); _real = os.fdatasync\n"
            "def _slow(fd):\n"
            "    if threading.current_thread().name == 'durable_nb-outputs':\n"
            "        _in_sync.set(); time.sleep(3)\n"
            "    return _real(fd)\n"
            "os.fdatasync = _slow")  # fmt: skip
    cell(k, "x = 1")  # its end record is left unsynced: the next tick syncs it
    unload = "assert _in_sync.wait(10)\nget_ipython().run_line_magic('unload_ext', 'durable_nb')"
    msg_id = k.send(unload)
    time.sleep(1.0)
    k.km.interrupt_kernel()
    assert k.wait(msg_id).error["ename"] == "KeyboardInterrupt"
    hooks = ("[getattr(f, '__qualname__', '') for f in "
             "get_ipython().events.callbacks['pre_run_cell']]")  # fmt: skip
    assert "_Extension" not in value(k, hooks)
    assert value(k, "'durable' in get_ipython().magics_manager.magics['line']") == "False"
    cell(k, "os.fdatasync = _real")
    cell(k, "%unload_ext durable_nb")
    assert value(k, "__import__('durable_nb.runtime').runtime._current is None") == "True"
    assert "durable_nb-outputs" not in value(k, "[t.name for t in threading.enumerate()]")
    cell(k, "%load_ext durable_nb")
    assert value(k, hooks).count("_Extension.pre_run_cell") == 1


# -- 5. the %durable magic ----------------------------------------------------------------


def test_durable_status_and_log(start_kernel, workdir):
    k = start_kernel()
    journal = workdir / ".durable" / "nb.duckdb"
    cell(k, steps_cell(workdir / "effects.txt"), "steps")
    r = run_with_reply(k, "1 / 0")[0]
    assert r["status"] == "error" and r["ename"] == "ZeroDivisionError"
    cell(k, "y = 2")

    status = cell(k, "%durable status").stdout
    assert status.startswith("durable_nb: journaling"), status
    assert str(journal) in status
    assert "4 cell executions" in status, status  # steps, 1/0, y = 2, and this one
    assert "3 completed steps" in status, status
    assert "3 steps ran" in status, status

    log = cell(k, "%durable log").stdout.splitlines()
    rows = [line.split() for line in log]
    seqs = [int(row[0]) for row in rows]  # the sequence number comes first
    statuses = [row[1] for row in rows]  # then the status
    # One line per execution, oldest first: steps, 1/0, y = 2, %durable status, and
    # possibly the %durable log cell itself, still running.
    assert statuses[:4] == ["ok", "error", "ok", "ok"], log
    assert len(rows) in (4, 5), log
    if len(rows) == 5:
        assert statuses[4] == "running" and "%durable log" in log[4], log
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), log
    assert "import durable_nb" in log[0] and "[3 ran, 0 replayed]" in log[0], log
    assert "1 / 0" in log[1] and "y = 2" in log[2] and "%durable status" in log[3], log


def test_durable_sql_and_path(start_kernel, workdir):
    k = start_kernel()
    cell(k, steps_cell(workdir / "effects.txt"), "steps")
    df = cell(k, "%durable sql SELECT count(*) AS n FROM steps")
    text = df.data[-1]["text/plain"]
    assert text.split()[0] == "n" and text.split()[-1] == "3", text
    assert "text/html" in df.data[-1]  # a DataFrame, rendered as a table
    assert value(k, "isinstance(_, __import__('pandas').DataFrame)") == "True"
    # The rest of the line is the query, quotes and all.
    names = value(k, "%durable sql SELECT DISTINCT name FROM steps WHERE name = 'effect'")
    assert names.split()[-1] == "effect", names
    assert journal_path(k) == workdir / ".durable" / "nb.duckdb"


def test_durable_off_and_on(start_kernel, workdir):
    k = start_kernel()
    journal = workdir / ".durable" / "nb.duckdb"
    out = workdir / "effects.txt"

    def recorded_steps() -> int:
        return int(value(k, "%durable sql SELECT count(*) AS n FROM steps").split()[-1])

    # On an empty journal too, "on" says where it journals.
    assert cell(k, "%durable off").stdout.startswith("durable_nb: journaling off")
    on = cell(k, "%durable on").stdout
    assert on.startswith("durable_nb: journaling on") and str(journal) in on, on

    cell(k, steps_cell(out), "steps")
    assert recorded_steps() == 3
    off = cell(k, "%durable off").stdout
    assert off.startswith("durable_nb:") and "off" in off, off
    for _ in range(2):  # not recorded, so not replayed either
        r = cell(k, steps_cell(out, n=2), "steps-off")
        assert "vals [0, 10]" in r.stdout
        assert dnb_lines(r.stderr) == [], r.stderr
    assert recorded_steps() == 3
    assert len(lines(out)) == 3 + 2 + 2
    assert "off" in cell(k, "%durable status").stdout

    on = cell(k, "%durable on").stdout
    assert on.startswith("durable_nb: journaling on") and str(journal) in on, on
    cell(k, steps_cell(out, n=2), "steps-on")
    assert recorded_steps() == 5
    r = cell(k, steps_cell(out, n=2), "steps-on")
    assert "2 steps replayed" in r.stdout, r.stdout
    assert len(lines(out)) == 3 + 2 + 2 + 2


def test_durable_magic_usage_errors_have_no_traceback(start_kernel):
    k = start_kernel()
    cases = {
        "%durable": "",
        "%durable bogus": "bogus",
        "%durable sql": "usage",
        "%durable sql SELEC nonsense": "the query failed",
        "%durable log extra": "extra",
        "%durable status -n 3 more": "more",
    }
    for code, needle in cases.items():
        reply, stderr, errors = run_with_reply(k, code)
        assert reply["status"] == "error", (code, reply)
        assert reply["ename"] == "UsageError", (code, reply)
        assert not reply.get("traceback"), (code, reply["traceback"])
        assert errors == [], (code, errors)  # no traceback shown under the cell
        assert "Traceback" not in stderr, (code, stderr)
        assert "UsageError" in stderr, (code, stderr)
        assert needle in reply["evalue"], (code, reply["evalue"])
    assert value(k, "40 + 2") == "42"  # the kernel is fine afterwards


# -- 6. a plain Python script -------------------------------------------------------------

SCRIPT = """
import sys
import durable_nb as dnb

@dnb.step
def append(i):
    with open(sys.argv[1], "a") as f:
        f.write(f"line {i}\\n")
    return i

print(sum(append(i) for i in range(5)))
"""


def test_plain_script_replays_on_second_run(tmp_path, kernel_env):
    scripts, elsewhere = tmp_path / "scripts", tmp_path / "elsewhere"
    scripts.mkdir()
    elsewhere.mkdir()
    script = scripts / "job.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out.txt"
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, str(script), str(out)],
            cwd=elsewhere, env=plain_env(kernel_env), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "10"
        assert "Traceback" not in proc.stderr
    assert lines(out) == [f"line {i}" for i in range(5)]
    assert (scripts / ".durable" / "job.duckdb").exists()
    assert not (elsewhere / ".durable").exists()


# -- 7. a step in a kernel without the extension ------------------------------------------


def test_step_without_the_extension_hints_once(start_kernel, workdir):
    k = start_kernel(kernel_name="python3")
    out = workdir / "effects.txt"
    r = cell(k, steps_cell(out))
    assert "vals [0, 10, 20]" in r.stdout
    hints = dnb_lines(r.stderr)
    assert len(hints) == 1, r.stderr
    assert "%load_ext durable_nb" in hints[0] and "not loaded" in hints[0]
    r = cell(k, steps_cell(out))
    assert "vals [0, 10, 20]" in r.stdout
    assert dnb_lines(r.stderr) == []  # said once
    assert len(lines(out)) == 6  # not journaled: the steps ran both times
    assert not (workdir / ".durable").exists()


# -- cells without a cell id (nbclient and plain jupyter_client send none) -----------------


def test_cells_without_a_cell_id_are_journaled(start_kernel, workdir):
    """DESIGN.md: without a cell id, the cell key falls back to a hash of the source."""
    out = workdir / "effects.txt"
    code = steps_cell(out)
    k = start_kernel()
    r = k.ok(code)  # no cellId in the request's metadata
    assert "vals [0, 10, 20]" in r.stdout
    assert dnb_lines(r.stderr) == [], r.stderr
    k.close()
    k2 = start_kernel()
    r = k2.ok(code)
    assert "vals [0, 10, 20]" in r.stdout
    msgs = dnb_lines(r.stderr + r.stdout)
    assert len(msgs) == 1 and msgs[0].startswith("durable_nb: 3 steps replayed"), msgs
    assert len(lines(out)) == 3
    assert os.path.exists(workdir / ".durable" / "nb.duckdb")


def test_settings_come_from_jupyter_config(start_kernel):
    k = start_kernel(args=["--DurableNB.on_failure=raise", "--DurableNB.max_bytes=1000"])
    assert "failed steps raise" in cell(k, "%durable status").stdout
    cell(k, "small = list(range(10))\nbig = bytes(5000)")
    states = value(k, "%durable sql SELECT name, state FROM variables ORDER BY name")
    assert "big" in states and "recompute" in states and "saved" in states, states


def test_config_magic_finds_the_settings_and_reload_leaves_one(start_kernel):
    k = start_kernel()
    out = cell(k, "%config DurableNB").stdout
    assert "DurableNB(Configurable) options" in out, out
    assert "DurableNB.on_failure=" in out and "DurableNB.max_bytes=" in out, out
    cell(k, "%config DurableNB.on_failure = 'raise'")
    assert "failed steps raise" in cell(k, "%durable status").stdout

    def count() -> str:
        return value(k, "[type(c).__name__ for c in get_ipython().configurables]"
                     ".count('DurableNB')")  # fmt: skip

    assert count() == "1"
    for _ in range(2):
        cell(k, "%reload_ext durable_nb")
        assert count() == "1"
    assert "failed steps raise" in cell(k, "%durable status").stdout  # the setting stays
    cell(k, "%unload_ext durable_nb")
    assert count() == "0"
