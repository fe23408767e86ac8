"""In-place suspension over the Jupyter protocol: widgets, stdin, headless, resume, status.

Each test drives a real kernel through jupyter_client as a frontend would: it reads the
widget models from ``comm_open`` messages on iopub, waits for the widget to be displayed,
then sends the click (or a value change) as a ``comm_msg`` on the shell channel. Real
effects are counted by the flaky service, which runs in its own process.
"""

from __future__ import annotations

import html
import json
import os
import queue
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Kernel, Result
from flaky_service import configure, stats

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

CELL = """
import durable_nb as dnb
from flaky_service import call, configure
URL = {url!r}

@dnb.step(retries=1, initial=0.01)
def work(path):
    return call(URL, path)["n"]

out = []
for i in range(3):
    if i == 1:
        configure(URL, down=True)  # the service goes down halfway through the loop
    out.append(work(f"{prefix}/{{i}}"))
print("OUT", out)
"""


def cell(url: str, prefix: str) -> str:
    """A cell whose second step finds the service down (after two attempts: retries=1)."""
    return CELL.format(url=url, prefix=prefix)


def counts(url: str, prefix: str) -> list[int]:
    """The service's request counts for ``prefix/0..2``."""
    by_path = stats(url)["by_path"]
    return [by_path.get(f"/work/{prefix}/{i}", 0) for i in range(3)]


class Frontend:
    """Reads iopub as a widget frontend does and sends what a person's clicks send.

    Widget models are kept by comm id (from ``comm_open``, merged with ``update``
    messages); every iopub message is kept, so outputs can be collected per request.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.kc = kernel.kc
        self.msgs: list[dict] = []
        self.models: dict[str, dict] = {}
        self.updates: list[tuple[str, dict, str]] = []  # (comm id, state, parent msg id)
        self.displayed: list[str] = []  # model ids shown by display_data
        self._replies: dict[str, dict] = {}

    # -- reading ------------------------------------------------------------------

    def pump(self, timeout: float = 0.2) -> None:
        try:
            msg = self.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return
        self.msgs.append(msg)
        kind, content = msg["msg_type"], msg["content"]
        if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
            self.models[content["comm_id"]] = dict(content["data"].get("state", {}))
        elif kind == "comm_msg" and content["comm_id"] in self.models:
            data = content["data"]
            if data.get("method") in ("update", "echo_update"):
                self.models[content["comm_id"]].update(data.get("state", {}))
                parent = msg["parent_header"].get("msg_id")
                self.updates.append((content["comm_id"], dict(data.get("state", {})), parent))
        elif kind == "display_data" and WIDGET_VIEW in content["data"]:
            self.displayed.append(content["data"][WIDGET_VIEW]["model_id"])

    def until(self, predicate: Any, what: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            if time.monotonic() > deadline:
                seen = [(m["msg_type"], str(m["content"])[:160]) for m in self.msgs[-15:]]
                raise AssertionError(f"timed out waiting for {what}; last iopub: {seen}")
            self.pump()
        return value

    def children(self, model_id: str) -> list[str]:
        refs = self.models.get(model_id, {}).get("children", [])
        return [r.removeprefix("IPY_MODEL_") for r in refs]

    def tree(self, model_id: str) -> list[str]:
        out, stack = [], [model_id]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(self.children(node))
        return out

    def with_description(self, description: str) -> list[str]:
        return [c for c, s in self.models.items() if s.get("description") == description]

    def shown(self, description: str) -> str | None:
        """The comm id of a widget described so, inside a displayed widget (latest first)."""
        for root in reversed(self.displayed):
            for node in self.tree(root):
                if self.models.get(node, {}).get("description") == description:
                    return node
        return None

    def shown_html(self, root_of: str) -> str:
        """All the HTML widget values in the displayed widget holding ``root_of``."""
        for root in reversed(self.displayed):
            nodes = self.tree(root)
            if root_of in nodes:
                return "\n".join(
                    html.unescape(str(self.models[n].get("value", "")))
                    for n in nodes
                    if self.models.get(n, {}).get("_model_name") == "HTMLModel"
                )
        return ""

    def wait_shown(self, description: str, timeout: float = 30) -> str:
        """Wait, like a frontend, until the widget is rendered; return its comm id."""
        return self.until(lambda: self.shown(description), f"a shown {description!r}", timeout)

    def of(self, msg_id: str, kind: str | None = None) -> list[dict]:
        return [
            m
            for m in self.msgs
            if m["parent_header"].get("msg_id") == msg_id
            and (kind is None or m["msg_type"] == kind)
        ]

    def idle(self, msg_id: str) -> bool:
        return any(m["content"].get("execution_state") == "idle" for m in self.of(msg_id, "status"))

    def stdout(self, msg_id: str) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.of(msg_id, "stream")
            if m["content"]["name"] == "stdout"
        )

    # -- sending ------------------------------------------------------------------

    def send(self, code: str, cell_id: str | None = None, allow_stdin: bool = False) -> str:
        return self.k.send(code, cell_id=cell_id, allow_stdin=allow_stdin)

    def result(self, msg_id: str, timeout: float = 60) -> Result:
        """The outputs and reply of execute request ``msg_id``, once the kernel is idle."""
        self.until(lambda: self.idle(msg_id), f"the end of request {msg_id}", timeout)
        result = Result(status="?")
        for m in self.of(msg_id):
            result.add(m)
        while msg_id not in self._replies:
            reply = self.kc.get_shell_msg(timeout=30)
            self._replies[reply["parent_header"].get("msg_id")] = reply
        result.status = self._replies[msg_id]["content"]["status"]
        if result.status == "error" and result.error is None:
            result.error = self._replies[msg_id]["content"]
        return result

    def run(self, code: str, cell_id: str | None = None, allow_stdin: bool = False,
            timeout: float = 60) -> Result:  # fmt: skip
        return self.result(self.send(code, cell_id, allow_stdin), timeout)

    def ok(self, code: str, cell_id: str | None = None, allow_stdin: bool = False) -> Result:
        result = self.run(code, cell_id, allow_stdin)
        assert result.ok, str(result)
        return result

    def sql(self, query: str) -> list[dict]:
        """Rows of ``%durable sql query`` (run as a cell of its own)."""
        code = (
            "import json as _json\n"
            f"_rows = get_ipython().run_line_magic('durable', {'sql ' + query!r})\n"
            "print('ROWS', _json.dumps(_rows.to_dict('records'), default=str))\n"
        )
        out = self.ok(code).stdout
        return json.loads(out.split("ROWS ", 1)[1])

    def comm_msg(self, comm_id: str, data: dict, subshell_id: str | None = None) -> str:
        msg = self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def click(self, comm_id: str, subshell_id: str | None = None) -> str:
        data = {"method": "custom", "content": {"event": "click"}}
        return self.comm_msg(comm_id, data, subshell_id)

    def set_value(self, comm_id: str, value: str, subshell_id: str | None = None) -> str:
        data = {"method": "update", "state": {"value": value}, "buffer_paths": []}
        return self.comm_msg(comm_id, data, subshell_id)

    def create_subshell(self) -> str:
        """What JupyterLab does on 7.0-7.3: a subshell for widget messages."""
        msg = self.kc.session.msg("create_subshell_request", {})
        self.kc.control_channel.send(msg)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reply = self.kc.control_channel.get_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                assert reply["content"]["status"] == "ok", reply["content"]
                return reply["content"]["subshell_id"]
        raise AssertionError("no create_subshell_reply")


def suspend_and_retry(fe: Frontend, url: str, prefix: str, subshell_id: str | None = None):
    """Run the loop cell, wait for the suspension widget, bring the service up, Retry."""
    msg_id = fe.send(cell(url, prefix), cell_id=f"cell-{prefix}", allow_stdin=True)
    retry = fe.wait_shown("Retry")
    assert counts(url, prefix) == [1, 2, 0]  # retries ran out; the cell is waiting
    assert not fe.idle(msg_id)
    configure(url, down=False)
    fe.click(retry, subshell_id)
    return fe.result(msg_id), retry


# -- widgets on the newest ipykernel -------------------------------------------------


def test_retry_click_resumes_the_cell(start_kernel, service):
    fe = Frontend(start_kernel())
    msg_id = fe.send(cell(service, "t1"), cell_id="cell-t1", allow_stdin=True)
    retry = fe.wait_shown("Retry")
    for label in ("Skip", "Raise", "Skip, returning:"):
        assert fe.shown(label), f"no {label!r} in the suspension widget"
    shown = fe.shown_html(retry)
    assert "work('t1/1')" in shown
    assert "ServiceError" in shown and "service is down" in shown and "2 attempts" in shown
    assert counts(service, "t1") == [1, 2, 0]

    configure(service, down=False)
    fe.click(retry)
    result = fe.result(msg_id)
    assert result.ok, str(result)
    # The service counts per name: t1/1 answered its third request.
    assert "OUT [1, 3, 1]" in result.stdout
    assert counts(service, "t1") == [1, 3, 1]
    assert "Retry chosen" in fe.shown_html(retry)

    rows = fe.sql(
        "SELECT status, attempt_errors FROM steps WHERE args = '(''t1/1'')' ORDER BY ended"
    )
    assert [r["status"] for r in rows] == ["error", "ok"], rows
    log = json.loads(rows[-1]["attempt_errors"])
    assert [e.get("decision") for e in log if "decision" in e] == ["retry"], log
    assert [e["error"] is None for e in log if "decision" not in e] == [False, False, True], log
    assert log[-1]["error"] is None


def test_skip_with_value_is_journaled_and_replayed(start_kernel, service):
    k = start_kernel()
    fe = Frontend(k)
    code = cell(service, "t2")
    msg_id = fe.send(code, cell_id="cell-t2", allow_stdin=True)
    skip = fe.wait_shown("Skip")
    value = fe.shown("Skip, returning:")
    configure(service, down=False)  # back up for the next item; this one is skipped
    fe.set_value(value, '{"skipped": True}')
    fe.click(skip)
    result = fe.result(msg_id)
    assert result.ok, str(result)
    assert "OUT [1, {'skipped': True}, 1]" in result.stdout
    assert counts(service, "t2") == [1, 2, 1]
    rows = fe.sql("SELECT status, attempt_errors FROM steps WHERE args = '(''t2/1'')'")
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 1 and '"decision": "skip"' in ok[0]["attempt_errors"], rows
    k.close()

    configure(service, down=False)
    fe2 = Frontend(start_kernel())
    again = fe2.run(code, cell_id="cell-t2", allow_stdin=True)
    assert again.ok, str(again)
    assert "OUT [1, {'skipped': True}, 1]" in again.stdout
    assert "3 steps replayed" in again.stdout
    assert counts(service, "t2") == [1, 2, 1]  # nothing ran again
    assert not fe2.with_description("Retry")


def test_raise_click_raises_step_failed(start_kernel, service):
    fe = Frontend(start_kernel())
    msg_id = fe.send(cell(service, "t3"), cell_id="cell-t3", allow_stdin=True)
    fe.click(fe.wait_shown("Raise"))
    result = fe.result(msg_id)
    assert result.status == "error"
    assert result.error["ename"] == "StepFailed", str(result)
    assert counts(service, "t3") == [1, 2, 0]
    rows = fe.sql("SELECT status FROM cells WHERE cell_id = 'cell-t3'")
    assert [r["status"] for r in rows] == ["error"]


def test_interrupt_while_suspended(start_kernel, service):
    k = start_kernel()
    fe = Frontend(k)
    msg_id = fe.send(cell(service, "t4"), cell_id="cell-t4", allow_stdin=True)
    retry = fe.wait_shown("Retry")
    k.km.interrupt_kernel()
    result = fe.result(msg_id)
    assert result.status == "error"
    assert result.error["ename"] == "KeyboardInterrupt", str(result)

    configure(service, down=False)
    after = fe.ok("print('AFTER', work('t4/after'))", cell_id="cell-t4-after", allow_stdin=True)
    assert "AFTER 1" in after.stdout
    assert counts(service, "t4") == [1, 2, 0]

    cells = fe.sql("SELECT status FROM cells WHERE cell_id = 'cell-t4'")
    assert [r["status"] for r in cells] == ["interrupted"], cells
    steps = fe.sql("SELECT args, status FROM steps WHERE args LIKE '%t4/%' ORDER BY ended")
    assert [(r["args"], r["status"]) for r in steps] == [
        ("('t4/0')", "ok"),
        ("('t4/1')", "error"),
        ("('t4/after')", "ok"),
    ], steps
    # The widget says so (its buttons are off), wherever the interrupt landed.
    where = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(result.error["traceback"][-12:]))
    still = f"the widget still waits after the interrupt, which was raised at:\n{where}"
    assert "interrupted" in fe.shown_html(retry) and fe.models[retry]["disabled"], still


# -- fallbacks ---------------------------------------------------------------------------


def _input_request(fe: Frontend, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = fe.kc.get_stdin_msg(timeout=0.5)
        except queue.Empty:
            continue
        if msg["msg_type"] == "input_request":
            return msg["content"]
    raise AssertionError("no input_request on the stdin channel")


def test_stdin_prompt_without_widgets(start_kernel, service):
    fe = Frontend(start_kernel())
    msg_id = fe.send(cell(service, "t5"), allow_stdin=True)  # no cellId: no widgets
    request = _input_request(fe)
    assert "[r]etry" in request["prompt"]
    configure(service, down=False)
    fe.kc.input("r")
    result = fe.result(msg_id)
    assert result.ok, str(result)
    assert "work('t5/1') failed" in result.stdout
    assert "OUT [1, 3, 1]" in result.stdout
    assert counts(service, "t5") == [1, 3, 1]
    assert not fe.with_description("Retry")

    fe.ok("fallback = 21")
    msg_id = fe.send(cell(service, "t5s"), allow_stdin=True)
    assert "[r]etry" in _input_request(fe)["prompt"]
    configure(service, down=False)
    fe.kc.input("s")
    assert "expression" in _input_request(fe)["prompt"]
    fe.kc.input("fallback * 2")
    result = fe.result(msg_id)
    assert result.ok, str(result)
    assert "OUT [1, 42, 1]" in result.stdout
    assert counts(service, "t5s") == [1, 2, 1]


BREAK_ROUTING = """
import ipykernel.comm.comm as _c
del _c.BaseComm._reply_subshell_for  # as if a new release renamed it
"""
UNTESTED_IPYKERNEL = "import durable_nb._ipykernel as _i; _i.TESTED = ((9, 0), (9, 1))"


@pytest.mark.parametrize("surprise", [BREAK_ROUTING, UNTESTED_IPYKERNEL])
def test_a_private_ipykernel_surprise_falls_back_to_stdin(start_kernel, service, surprise):
    """Without the private surface, the widget is not shown: the person is asked on stdin,
    and Raise raises their own StepFailed (never an internal AttributeError)."""
    fe = Frontend(start_kernel())
    fe.ok(surprise)
    msg_id = fe.send(cell(service, "t5x"), cell_id="cell-t5x", allow_stdin=True)
    assert "[r]etry" in _input_request(fe)["prompt"]
    fe.kc.input("x")
    result = fe.result(msg_id)
    assert result.error is not None and result.error["ename"] == "StepFailed", str(result)
    assert counts(service, "t5x") == [1, 2, 0]
    assert fe.of(msg_id, "display_data") == []  # no widget was shown


def test_headless_request_raises_at_once(start_kernel, service):
    fe = Frontend(start_kernel())
    # A cell id but allow_stdin false: nbclient, papermill, durable-nb run.
    result = fe.run(cell(service, "t6"), cell_id="cell-t6", allow_stdin=False)
    assert result.status == "error"
    assert result.error["ename"] == "StepFailed", str(result)
    assert counts(service, "t6") == [1, 2, 0]
    assert not fe.with_description("Retry")
    with pytest.raises(queue.Empty):
        fe.kc.get_stdin_msg(timeout=0.5)


def test_on_failure_raise_per_notebook_and_per_step(start_kernel, service):
    fe = Frontend(start_kernel())
    per_step = cell(service, "t7a").replace("initial=0.01)", "initial=0.01, on_failure='raise')")
    result = fe.run(per_step, cell_id="cell-t7a", allow_stdin=True)
    assert result.error and result.error["ename"] == "StepFailed", str(result)
    assert counts(service, "t7a") == [1, 2, 0]

    configure(service, down=False)
    assert "raise" in fe.ok("%durable on_failure raise").stdout
    result = fe.run(cell(service, "t7b"), cell_id="cell-t7b", allow_stdin=True)
    assert result.error and result.error["ename"] == "StepFailed", str(result)
    assert counts(service, "t7b") == [1, 2, 0]
    assert not fe.with_description("Retry")
    with pytest.raises(queue.Empty):
        fe.kc.get_stdin_msg(timeout=0.5)


# -- async cells, threads --------------------------------------------------------------------

ASYNC_CELL = """
import asyncio
import durable_nb as dnb
from flaky_service import call, configure
URL = {url!r}

@dnb.step(retries=1, initial=0.01)
async def awork(path):
    await asyncio.sleep(0)
    return call(URL, path)["n"]

out = []
for i in range(3):
    if i == 1:
        configure(URL, down=True)
    out.append(await awork(f"t8/{{i}}"))
print("OUT", out)
"""


def test_async_cell_suspends_and_retries(start_kernel, service):
    fe = Frontend(start_kernel())
    msg_id = fe.send(ASYNC_CELL.format(url=service), cell_id="cell-t8", allow_stdin=True)
    retry = fe.wait_shown("Retry")
    assert counts(service, "t8") == [1, 2, 0]
    configure(service, down=False)
    fe.click(retry)
    result = fe.result(msg_id)
    assert result.ok, str(result)
    assert "OUT [1, 3, 1]" in result.stdout
    assert counts(service, "t8") == [1, 3, 1]


THREAD_CELL = """
from concurrent.futures import ThreadPoolExecutor
import durable_nb as dnb
from flaky_service import call
URL = {url!r}

@dnb.step(retries=1, initial=0.01)
def work(path):
    return call(URL, path)["n"]

def outcome(future):
    try:
        return future.result()
    except Exception as exc:
        return type(exc).__name__

with ThreadPoolExecutor(3) as pool:
    futures = [pool.submit(work, f"t9/{{i}}") for i in range(3)]
    out = [outcome(f) for f in futures]
print("OUT", out)
"""


def test_steps_in_threads_that_exhaust_retries(start_kernel, service):
    """Whatever threads get (a widget per call, or a raise), the cell must end sanely."""
    fe = Frontend(start_kernel())
    configure(service, down=True)
    msg_id = fe.send(THREAD_CELL.format(url=service), cell_id="cell-t9", allow_stdin=True)

    def settled() -> bool:
        return fe.idle(msg_id) or len(_shown_retries(fe)) >= 3

    fe.until(settled, "three suspension widgets or the end of the cell")
    if fe.idle(msg_id):  # threads are headless: each call raised
        result = fe.result(msg_id)
        assert result.ok, str(result)
        assert "OUT ['StepFailed', 'StepFailed', 'StepFailed']" in result.stdout
        assert counts(service, "t9") == [2, 2, 2]
        return
    # A widget per failed call, each shown under the cell that made the call: retry each.
    assert len(fe.of(msg_id, "display_data")) == 3
    configure(service, down=False)
    for retry in _shown_retries(fe):
        fe.click(retry)
    result = fe.result(msg_id)
    assert result.ok, str(result)
    assert "OUT [3, 3, 3]" in result.stdout
    assert counts(service, "t9") == [3, 3, 3]


def _shown_retries(fe: Frontend) -> list[str]:
    return [
        node
        for root in fe.displayed
        for node in fe.tree(root)
        if fe.models.get(node, {}).get("description") == "Retry"
    ]


# -- the resume panel --------------------------------------------------------------------------

CRASH_CELL = """
import time
import durable_nb as dnb
from flaky_service import call
URL = {url!r}

@dnb.step
def provision(path):
    return call(URL, path)["n"]

done = []
for i in range(8):
    done.append(provision(f"{prefix}/{{i}}"))
    time.sleep(0.15)
print("DONE", done)
"""


def _crash_mid_cell(start_kernel, url: str, prefix: str) -> tuple[str, int]:
    """Run the crash cell and SIGKILL the kernel after some of its steps completed."""
    code = CRASH_CELL.format(url=url, prefix=prefix)
    k = start_kernel()
    k.send(code, cell_id=f"crash-{prefix}", allow_stdin=True)
    deadline = time.monotonic() + 60
    while sum(v for p, v in stats(url)["by_path"].items() if p.startswith(f"/work/{prefix}/")) < 3:
        assert time.monotonic() < deadline, "the cell never ran 3 steps"
        time.sleep(0.01)
    k.kill()
    ran = [p for p in stats(url)["by_path"] if p.startswith(f"/work/{prefix}/")]
    assert 3 <= len(ran) < 8
    return code, len(ran)


def _assert_resumed(url: str, prefix: str, ran_before: int) -> None:
    by_path = stats(url)["by_path"]
    calls = [by_path.get(f"/work/{prefix}/{i}", 0) for i in range(8)]
    # Completed steps replayed; only the one in flight at the kill may have run twice.
    assert all(c >= 1 for c in calls), calls
    assert sum(calls) <= 9, calls
    assert all(c == 1 for c in calls[: ran_before - 1]), (calls, ran_before)


def test_resume_panel_resumes_the_cell(start_kernel, service):
    _, ran = _crash_mid_cell(start_kernel, service, "t11")
    fe = Frontend(start_kernel())
    first = fe.ok("x = 1", cell_id="first", allow_stdin=True)
    assert first.ok
    for label in ("Restore namespace", "Resume cell", "Start fresh"):
        assert fe.shown(label), f"no {label!r} in the resume panel"
    resume = fe.shown("Resume cell")
    summary = fe.shown_html(resume)
    assert "died in the cell starting 'import time'" in summary, summary
    assert "steps had completed" in summary and "seq" not in summary, summary

    click = fe.click(resume)
    fe.until(lambda: fe.idle(click), "the end of the Resume cell click", timeout=60)
    _assert_resumed(service, "t11", ran)
    # The panel's Output widget gets what the re-run printed (routed by the click's msg_id).
    panel_out = fe.stdout(click)
    assert "re-running the cell starting" in panel_out and "DONE" in panel_out, panel_out
    heading = panel_out.index("output of the cell starting 'import time'")
    assert heading < panel_out.index("DONE"), panel_out
    outputs = [n for n in fe.tree(fe.displayed[-1]) if fe.models[n]["_model_name"] == "OutputModel"]
    assert any(c in outputs and s.get("msg_id") == click for c, s, _ in fe.updates), outputs
    assert "LEN 8" in fe.ok("print('LEN', len(done))").stdout
    rows = fe.sql("SELECT status, steps_run, steps_replayed FROM cells WHERE cell_id = 'crash-t11'")
    assert [r["status"] for r in rows] == ["crashed", "ok"], rows


def test_durable_resume_magic_as_text(start_kernel, service):
    _, ran = _crash_mid_cell(start_kernel, service, "t11t")
    fe = Frontend(start_kernel())
    result = fe.ok("%durable resume", cell_id="first", allow_stdin=True)
    assert "re-running the cell starting" in result.stdout, str(result)
    assert "DONE" in result.stdout, str(result)
    assert not fe.with_description("Resume cell")
    _assert_resumed(service, "t11t", ran)
    assert "LEN 8" in fe.ok("print('LEN', len(done))").stdout
    print(result)


# -- the live status view ---------------------------------------------------------------------


def test_status_widget_follows_a_running_cell(start_kernel, service):
    fe = Frontend(start_kernel())
    fe.ok("%durable status", cell_id="status", allow_stdin=True)
    assert fe.displayed, "no status widget"
    view = fe.displayed[-1]
    assert fe.models[view]["_model_name"] == "HTMLModel"
    before = fe.models[view]["value"]
    code = f"""
import time
import durable_nb as dnb
from flaky_service import call

@dnb.step
def slow(path):
    time.sleep(0.3)
    return call({service!r}, path)["n"]

print("OUT", [slow(f"t12/{{i}}") for i in range(4)])
"""
    msg_id = fe.send(code, cell_id="slow", allow_stdin=True)
    result = fe.result(msg_id)
    assert result.ok, str(result)
    values = [s["value"] for c, s, _ in fe.updates if c == view and "value" in s]
    during = [s["value"] for c, s, p in fe.updates if c == view and "value" in s and p == msg_id]
    assert during, f"no update of the status widget while the cell ran: {values}"
    # It changed step by step while the cell ran, not once at the end.
    assert len(set(during)) >= 2 and before not in during, during
    assert any("slow attempt 1" in v for v in during), during
    ran = [int(n) for v in during for n in re.findall(r"this run +(\d+) steps ran", v)]
    assert ran == sorted(ran) and len(set(ran)) >= 2, ran
    # The final counts come with the last step or just after the cell (a throttled flush).
    fe.until(
        lambda: any("4 steps ran" in s.get("value", "") for c, s, _ in fe.updates if c == view),
        "the status widget showing the 4 steps that ran",
    )


# -- ipykernel 7.3: JupyterLab sends widget messages through a subshell -------------------------

VENV73 = ROOT / ".venv-ipykernel73"


@pytest.fixture(scope="session")
def ipykernel73() -> Path:
    """The python of the side venv with ipykernel 7.3.0 that tests/setup.sh makes.

    A failure, not a skip, when it is missing: CI would otherwise lose the test silently.
    """
    python = VENV73 / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{VENV73} is missing; make it with: sh tests/setup.sh")
    check = "import ipykernel, durable_nb; print(ipykernel.__version__)"
    version = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
    if version.stdout.strip() != "7.3.0":
        said = version.stdout + version.stderr
        pytest.fail(f"{VENV73} does not import ipykernel 7.3.0 and durable_nb ({said}); "
                    "make it again: sh tests/setup.sh")  # fmt: skip
    return python


@pytest.fixture
def kernelspec73(ipykernel73: Path, tmp_path: Path, monkeypatch) -> str:
    name = "durable-ipykernel73"
    spec = tmp_path / "jupyter" / "kernels" / name
    spec.mkdir(parents=True)
    argv = [str(ipykernel73), "-m", "ipykernel_launcher", "-f", "{connection_file}",
            "--IPKernelApp.extra_extensions=durable_nb"]  # fmt: skip
    kernel = {"argv": argv, "display_name": "durable (ipykernel 7.3)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    jupyter_path = [str(tmp_path / "jupyter"), os.environ.get("JUPYTER_PATH", "")]
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(p for p in jupyter_path if p))
    return name


def test_retry_click_through_a_subshell_on_ipykernel73(start_kernel, kernelspec73, service):
    fe = Frontend(start_kernel(kernel_name=kernelspec73))
    version = fe.ok("import ipykernel; print('V', ipykernel.__version__)").stdout
    assert "V 7.3.0" in version
    subshell = fe.create_subshell()
    result, retry = suspend_and_retry(fe, service, "t10", subshell_id=subshell)
    assert result.ok, str(result)
    assert "OUT [1, 3, 1]" in result.stdout
    assert counts(service, "t10") == [1, 3, 1]
    assert "Retry chosen" in fe.shown_html(retry)


MAP_CELL = """
import durable_nb as dnb
from flaky_service import call
URL = {url!r}

@dnb.step(retries=1, initial=0.01)
def work(path):
    return call(URL, path)["n"]

out = dnb.map(work, [f"{prefix}/{{i}}" for i in range(4)], max_workers=4, progress=False)
print("OUT", list(out))
"""


def test_map_item_suspends_then_retry_and_skip(start_kernel, service):
    # The service is down: all four items (one worker each) fail before anyone answers,
    # and the map asks about each in turn, like a single step would.
    configure(service, down=True)
    fe = Frontend(start_kernel())
    msg_id = fe.send(MAP_CELL.format(url=service, prefix="m"), cell_id="map", allow_stdin=True)
    fe.wait_shown("Retry")
    configure(service, down=False)
    for asked in range(1, 5):
        # Like a frontend, act only on a prompt once it is displayed.
        fe.until(
            lambda n=asked: len(fe.of(msg_id, "display_data")) >= n or fe.idle(msg_id),
            f"prompt {asked}",
        )
        assert not fe.idle(msg_id), str(fe.result(msg_id))
        if asked == 2:  # skip this one with a value typed in the prompt
            fe.set_value(fe.with_description("Skip, returning:")[-1], "-1")
            fe.click(fe.with_description("Skip")[-1])
        else:
            fe.click(fe.with_description("Retry")[-1])
    result = fe.result(msg_id)
    assert result.ok, str(result)
    out = eval(result.stdout.split("OUT", 1)[1].strip())
    # Retried items answered their third request (two failed attempts first).
    assert sorted(out) == [-1, 3, 3, 3], out
    rows = fe.sql("SELECT status, attempt_errors FROM steps WHERE name = 'work'")
    assert sorted(r["status"] for r in rows) == ["error"] * 4 + ["ok"] * 4, rows
    decisions = [e.get("decision") for r in rows for e in json.loads(r["attempt_errors"])]
    assert sorted(d for d in decisions if d) == ["retry", "retry", "retry", "skip"], decisions
