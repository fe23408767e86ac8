"""The kernel's debugger (JupyterLab's, through ipykernel's debug requests) skips
durable_nb's code as it skips the kernel's own: a step into ``print`` goes to the cell's
next line, as in the plain kernel (it stopped inside durable_nb's stream lock and wedged
the kernel, helper-107 F2), and the cell runs on to its reply."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import durable_nb

OURS = str(Path(durable_nb.__file__).resolve().parent)
CELL = "x = 1\nprint('hello')\ny = 2\n"


class Dap:
    """Debug requests over the control channel, events off iopub."""

    def __init__(self, k) -> None:
        self.k, self.seq = k, 0

    def request(self, command: str, arguments: dict | None = None, timeout: float = 10) -> dict:
        self.seq += 1
        body = {"type": "request", "seq": self.seq, "command": command,
                "arguments": arguments or {}}  # fmt: skip
        msg = self.k.kc.session.msg("debug_request", body)
        self.k.kc.control_channel.send(msg)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                reply = self.k.kc.control_channel.get_msg(timeout=0.5)
            except queue.Empty:
                continue
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return reply["content"]
        raise AssertionError(f"no reply to {command} in {timeout} s")

    def stopped(self, timeout: float = 5) -> dict | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                msg = self.k.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            if msg["msg_type"] == "debug_event" and msg["content"].get("event") == "stopped":
                return msg["content"]["body"]
        return None


def test_stepping_into_print_goes_to_the_cells_next_line(start_kernel):
    k = start_kernel()
    k.ok("1")
    dap = Dap(k)
    assert dap.request("initialize", {"clientID": "test", "adapterID": "python",
                                      "pathFormat": "path", "linesStartAt1": True,
                                      "columnsStartAt1": True})["success"]  # fmt: skip
    assert dap.request("attach", {})["success"]
    source = dap.request("dumpCell", {"code": CELL})["body"]["sourcePath"]
    dap.request("setBreakpoints", {"source": {"path": source}, "breakpoints": [{"line": 2}],
                                   "sourceModified": False})  # fmt: skip
    dap.request("configurationDone")
    msg_id = k.send(CELL)
    stop = dap.stopped(30)
    assert stop is not None and stop["reason"] == "breakpoint"
    thread = stop["threadId"]
    dap.request("stepIn", {"threadId": thread})  # into print: ipykernel's, then durable_nb's
    assert dap.stopped() is not None
    frame = dap.request("stackTrace", {"threadId": thread})["body"]["stackFrames"][0]
    # As in the plain kernel: the kernel's code is skipped, the next line of the cell.
    assert (frame["source"].get("path"), frame["line"]) == (source, 3), frame
    dap.request("continue", {"threadId": thread})
    assert k.wait(msg_id, timeout=60).ok
    assert dap.request("disconnect", {"restart": False, "terminateDebuggee": False})["success"]


def test_unloading_shows_durable_nb_to_the_debugger_again(start_kernel):
    k = start_kernel()
    listed = f"{OURS!r} in get_ipython().kernel._kernel_modules"
    assert k.value(listed) == "True"
    k.ok("%unload_ext durable_nb")
    assert k.value(listed) == "False"
    k.ok("%load_ext durable_nb")
    assert k.value(listed) == "True"
