"""A person in the loop on purpose (issue 15): dnb.ask / dnb.confirm and dnb.wait_until.

Answers are clicked over the protocol (as JupyterLab sends them), typed on stdin, or given
to a headless run with ``--answer``; they are journaled, so a re-run or a new kernel after
SIGKILL replays them without asking. Checks of ``wait_until`` are counted in a file.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook
from test_headless import DURABLE_NB, RUN_TIMEOUT, _env
from test_suspend import Frontend, _input_request

CONFIRM = "import durable_nb as dnb\nok = dnb.confirm('Drain 3 nodes?')\nprint('OK', ok)"


def asked(fe: Frontend, label: str) -> bool:
    return bool(fe.with_description(label))


def test_confirm_clicked_is_journaled_and_replayed_after_sigkill(start_kernel):
    k = start_kernel()
    fe = Frontend(k)
    msg_id = fe.send(CONFIRM, cell_id="confirm", allow_stdin=True)
    fe.click(fe.wait_shown("Yes"))
    result = fe.result(msg_id)
    assert result.ok and "OK True" in result.stdout, str(result)
    k.kill()

    k2 = start_kernel()
    fe2 = Frontend(k2)
    result = fe2.run(CONFIRM, cell_id="confirm", allow_stdin=True)
    assert result.ok and "OK True" in result.stdout, str(result)
    assert not asked(fe2, "Yes")  # replayed: nobody was asked again
    rows = fe2.sql("SELECT decode(result) AS r FROM steps WHERE name = 'dnb.confirm'")
    assert len(rows) == 1 and '"by"' in rows[0]["r"] and '"at"' in rows[0]["r"], rows

    # %%durable fresh asks again; No is journaled in place of Yes.
    msg_id = fe2.send("%%durable fresh\n" + CONFIRM, cell_id="confirm", allow_stdin=True)
    fe2.click(fe2.wait_shown("No"))
    assert "OK False" in fe2.result(msg_id).stdout


def test_ask_with_choices_by_click_and_on_stdin(start_kernel):
    fe = Frontend(start_kernel())
    code = (
        "import durable_nb as dnb\n"
        "region = dnb.ask('Fail over to?', choices=['eu-west', 'us-east'], key='region')\n"
        "print('REGION', region)"
    )
    msg_id = fe.send(code, cell_id="ask", allow_stdin=True)
    fe.click(fe.wait_shown("us-east"))
    assert "REGION us-east" in fe.result(msg_id).stdout
    # The same key elsewhere replays the answer: a key is notebook-wide.
    assert "REGION us-east" in fe.ok(code, cell_id="elsewhere", allow_stdin=True).stdout

    # A frontend without widgets (no cell id) asks on stdin.
    code2 = code.replace("key='region'", "key='second'")
    msg_id = fe.send(code2, allow_stdin=True)
    assert "answer" in _input_request(fe)["prompt"]
    fe.kc.input("1")
    assert "REGION eu-west" in fe.result(msg_id).stdout


def test_answer_names_may_hold_equals_signs(workdir):
    nb = workdir / "eq.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(
        "import durable_nb as dnb\nprint('SET', dnb.confirm('Set replicas=3 on prod?'))"
    )]), nb)  # fmt: skip
    first = run(nb, cwd=workdir)
    out = first.stdout + first.stderr
    assert first.returncode == 1 and "--answer 'Set replicas=3 on prod?=yes'" in out, out
    second = run(nb, "--answer", "Set replicas=3 on prod?=yes", cwd=workdir)
    assert second.returncode == 0 and "SET True" in second.stdout, second.stdout + second.stderr


def nb_with_confirm(path: Path, effects: Path) -> Path:
    nb = new_notebook(cells=[
        new_code_cell("import durable_nb as dnb\n"
                      "@dnb.step\ndef drain(n):\n"
                      f"    open({str(effects)!r}, 'a').write(f'{{n}}\\n')\n    return n"),
        new_code_cell("drained = [drain(n) for n in range(3)]"),
        new_code_cell("go = dnb.confirm('Upgrade the drained nodes?', key='upgrade')\n"
                      "print('GO', go)"),
    ])  # fmt: skip
    nbformat.write(nb, path)
    return path


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(DURABLE_NB), "run", *map(str, args)], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)  # fmt: skip


def test_headless_answer_flag_missing_then_given_then_replayed(workdir):
    effects = workdir / "effects.txt"
    nb = nb_with_confirm(workdir / "ops.ipynb", effects)
    first = run(nb, cwd=workdir)
    out = first.stdout + first.stderr
    assert first.returncode == 1, out
    assert "--answer upgrade=yes" in out and "AnswerMissing" in out, out
    assert effects.read_text().splitlines() == ["0", "1", "2"]

    second = run(nb, "--answer", "upgrade=yes", cwd=workdir)
    out = second.stdout + second.stderr
    assert second.returncode == 0 and "GO True" in out, out
    assert effects.read_text().splitlines() == ["0", "1", "2"]  # the steps replayed

    third = run(nb, cwd=workdir)  # the answer is journaled: no flag needed
    out = third.stdout + third.stderr
    assert third.returncode == 0 and "GO True" in out, out
    assert "is replayed from the journal: True" in out, out  # said, not silent
    assert effects.read_text().splitlines() == ["0", "1", "2"]

    fourth = run(nb, "--answer", "upgrade=no", cwd=workdir)  # an explicit flag wins
    out = fourth.stdout + fourth.stderr
    assert fourth.returncode == 0 and "GO False" in out and "not used" in out, out


def test_an_answer_from_another_users_journal_is_asked_again(workdir, tmp_path):
    nb = nb_with_confirm(workdir / "ops.ipynb", workdir / "effects.txt")
    alice = subprocess.run([str(DURABLE_NB), "run", str(nb), "--answer", "upgrade=yes"],
                           cwd=workdir, env=_env(tmp_path / "alice"), capture_output=True,
                           text=True, timeout=RUN_TIMEOUT)  # fmt: skip
    assert alice.returncode == 0 and "GO True" in alice.stdout, alice.stdout + alice.stderr
    bob = subprocess.run([str(DURABLE_NB), "run", str(nb)], cwd=workdir,
                         env=_env(tmp_path / "bob"), capture_output=True, text=True,
                         timeout=RUN_TIMEOUT)  # fmt: skip
    out = bob.stdout + bob.stderr
    assert bob.returncode == 1 and "not signed by you" in out and "AnswerMissing" in out, out


WAIT = """
import durable_nb as dnb
def healthy():
    with open({path!r}, "a") as f:
        f.write("check\\n")
    return len(open({path!r}).read().splitlines()) >= {n}
result = dnb.wait_until(healthy, every=0.5, timeout=120)
print("HEALTHY", result)
"""


def checks(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_wait_until_continues_after_sigkill_without_repeating_checks(start_kernel, workdir):
    path, n = workdir / "checks.txt", 8
    code = WAIT.format(path=str(path), n=n)
    k = start_kernel()
    k.send(code, cell_id="wait")
    deadline = time.monotonic() + 60
    while checks(path) < 3:
        assert time.monotonic() < deadline, "the wait never checked three times"
        time.sleep(0.02)
    time.sleep(0.2)  # between two checks: the third is journaled, the fourth not started
    k.kill()
    before = checks(path)
    assert 3 <= before < n

    k2 = start_kernel()
    result = k2.ok(code, cell_id="wait")
    assert "HEALTHY True" in result.stdout, str(result)
    assert checks(path) == n  # the checks made before the kill were replayed, not repeated
    again = k2.ok(code, cell_id="wait")  # a finished wait replays its result at once
    assert "HEALTHY True" in again.stdout and checks(path) == n
