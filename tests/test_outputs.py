"""Journaled cell outputs (issue 15): a killed cell's outputs are shown again.

Over the protocol, as JupyterLab sends it: a cell prints, displays and SIGKILLs its own
kernel; the next kernel's resume panel offers Show lost outputs, and ``%durable outputs``
shows them (harmless mimetypes only). The live status view shows a running cell's tail.
Headless: ``durable-nb show --outputs``, ``run -o`` after a killed run, and ``replay``
saying which cell's outputs changed.
"""

from __future__ import annotations

import subprocess
import time

import nbformat
from nbformat.v4 import new_code_cell, new_notebook
from test_headless import DURABLE_NB, RUN_TIMEOUT, _env
from test_suspend import Frontend

KILLED = """
import os, signal, sys
import durable_nb as dnb
from IPython.display import HTML, Markdown, display

@dnb.step
def mark():
    return 1

print('BEFORE THE KILL')
for i in range(3):
    print('line', i)
print('on stderr', file=sys.stderr)
display(Markdown('**shown again**'))
display(HTML('<script>alert(1)</script>'))
sys.stdout.flush()
mark()  # its record's group commit carries the outputs so far
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_outputs_of_a_killed_cell_are_shown_again(start_kernel, workdir):
    k = start_kernel()
    k.send(KILLED, cell_id="killed")
    deadline = time.monotonic() + 60
    while k.km.is_alive():
        assert time.monotonic() < deadline, "the cell did not kill its kernel"
        time.sleep(0.05)
    k.close(now=True)

    fe = Frontend(start_kernel())
    fe.ok("x = 1", cell_id="first", allow_stdin=True)
    show = fe.wait_shown("Show lost outputs")
    assert fe.shown("Resume cell")
    click = fe.click(show)
    fe.until(lambda: fe.idle(click), "the end of the Show lost outputs click")
    shown = fe.stdout(click)
    assert "BEFORE THE KILL" in shown and "line 2" in shown, shown
    assert "crashed" in shown, shown
    resume = fe.shown("Resume cell")  # the choice stays open
    assert not fe.models[resume].get("disabled"), "showing outputs closed the panel"

    # The magic, default: the last cell execution that did not finish.
    result = fe.ok("%durable outputs")
    assert "BEFORE THE KILL" in result.stdout and "on stderr" in result.stderr, str(result)
    # Markdown comes back as its source text (rendered, it would be trusted HTML).
    assert {"text/plain": "**shown again**"} in result.data, result.data
    assert not any("text/markdown" in d for d in result.data), result.data
    assert not any("text/html" in d for d in result.data), result.data  # never re-run HTML

    # Over the cap the tail is kept, and the heading says how much was dropped.
    fe.ok("%config DurableNB.outputs_max_bytes = 1000")
    fe.ok("print('x' * 5000 + 'END')", cell_id="big")
    [row] = fe.sql("SELECT o.seq, nbytes, dropped FROM outputs o JOIN cells c USING (seq) "
                   "WHERE c.cell_id = 'big'")  # fmt: skip
    assert row["nbytes"] <= 1000 and row["dropped"] >= 4000, row
    result = fe.ok(f"%durable outputs {row['seq']}")
    assert "dropped" in result.stdout and "END" in result.stdout, str(result)


def test_status_view_shows_the_running_cells_tail(start_kernel, workdir):
    """What a reloaded page no longer shows of a running cell, the status view shows."""
    go = workdir / "go"
    fe = Frontend(start_kernel())
    fe.ok("%durable status", cell_id="status", allow_stdin=True)
    view = fe.displayed[-1]
    code = (
        "import os, time\n"
        "print('TAIL-ONE', flush=True)\n"
        f"while not os.path.exists({str(go)!r}):\n    time.sleep(0.02)\n"
        "print('TAIL-TWO', flush=True)\n"
        f"while os.path.exists({str(go)!r}):\n    time.sleep(0.02)\n"
    )
    msg_id = fe.send(code, cell_id="long", allow_stdin=True)
    fe.until(lambda: "TAIL-ONE" in fe.models[view]["value"], "the first line in the view")
    # What a reloaded page asks first is answered while the cell runs (on our subshell),
    # and the kernel then says busy for the running cell again (an idle culler waits).
    info = fe.kc.session.msg("kernel_info_request", {})
    fe.kc.shell_channel.send(info)
    fe.until(lambda: fe.idle(info["header"]["msg_id"]), "kernel_info answered while busy")
    states = [m["content"]["execution_state"] for m in fe.of(msg_id, "status")]
    fe.until(lambda: [m["content"]["execution_state"] for m in fe.of(msg_id, "status")]
             [len(states):] == ["busy"], "busy again for the running cell")  # fmt: skip
    go.touch()
    fe.until(lambda: "TAIL-TWO" in fe.models[view]["value"], "the next line in the view")
    go.unlink()
    assert fe.result(msg_id).ok


def cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([str(DURABLE_NB), *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=RUN_TIMEOUT)  # fmt: skip


def test_headless_outputs_after_a_killed_run_and_a_replay_that_differs(workdir):
    value = workdir / "value.txt"
    value.write_text("first")
    nb = workdir / "ops.ipynb"
    nbformat.write(new_notebook(cells=[
        new_code_cell("print('HELLO', 6 * 7)"),
        new_code_cell("import os, pathlib, signal\nimport durable_nb as dnb\n"
                      "print('BEFORE THE KILL', flush=True)\n"
                      "dnb.step(lambda: 1, name='mark')()\n"
                      "if not pathlib.Path('killed').exists():\n"
                      "    pathlib.Path('killed').touch()\n"
                      "    os.kill(os.getpid(), signal.SIGKILL)"),
        new_code_cell(f"print('VALUE', open({str(value)!r}).read())"),
    ]), nb)  # fmt: skip
    first = cli("run", str(nb), cwd=workdir)
    assert first.returncode == 1, first.stdout + first.stderr

    show = cli("show", str(nb), "--outputs", cwd=workdir)
    assert show.returncode == 0, show.stderr
    outputs = show.stdout.split("\noutputs (", 1)[1]
    assert "HELLO 42" in outputs and "BEFORE THE KILL" in outputs and "crashed" in outputs, outputs

    out = workdir / "out.ipynb"
    second = cli("run", str(nb), "-o", str(out), cwd=workdir)
    assert second.returncode == 0 and "resuming at code cell 2" in second.stdout, second.stdout
    written = nbformat.read(out, as_version=4)
    assert "HELLO 42" in written.cells[0].outputs[0]["text"]  # from the killed run's journal
    # One print may come as two stream messages (ipykernel's IO thread flushes on a timer
    # an earlier cell's last write started): their text together is what was printed.
    assert "VALUE first" in "".join(o.get("text", "") for o in written.cells[2].outputs)

    value.write_text("second")
    replay = cli("replay", str(nb), "--check", cwd=workdir)
    assert replay.returncode == 1, replay.stdout + replay.stderr  # every cell succeeded
    text = replay.stdout
    assert "outputs: same as recorded" in text, text
    assert "DIFFER from the recorded run, line 1: recorded 'VALUE first', replay 'VALUE second'" \
        in text, text  # fmt: skip
    assert "the outputs of 1 of 3 code cells differ from the recorded run: cells 3" in text, text
