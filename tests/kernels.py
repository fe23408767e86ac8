"""The tests' real-kernel driver, without pytest: tests/conftest.py and bench/ both use it.

``Kernel`` starts a kernel (again on new ports when another process took one of its
TCP ports first) and sends cells like a frontend; ``Result`` is what a cell produced.
"""

from __future__ import annotations

import os
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "python3-durable"


class PortTaken(RuntimeError):
    """A kernel lost a TCP port to another process while starting: start it on new ports."""


@dataclass
class Result:
    """What one execute request produced."""

    status: str
    stdout: str = ""
    stderr: str = ""
    error: dict | None = None
    data: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def add(self, msg: dict) -> None:
        """Take in one iopub message of the request (streams, data, the error)."""
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            if content["name"] == "stdout":
                self.stdout += content["text"]
            else:
                self.stderr += content["text"]
        elif kind in ("execute_result", "display_data"):
            self.data.append(content["data"])
        elif kind == "error":
            self.error = content

    def __str__(self) -> str:
        err = f"\nerror: {self.error['ename']}: {self.error['evalue']}" if self.error else ""
        return f"status={self.status}\nstdout={self.stdout}\nstderr={self.stderr}{err}"


class Kernel:
    """A real kernel process with a client; ``run`` sends a cell like a frontend does.

    Parameters
    ----------
    tries
        How many starts (on new ports each) before a ``PortTaken`` is raised.
    ready
        ``ready(kernel)`` returns once the kernel answers, or raises ``PortTaken`` for a
        start on new ports (or anything else to give up). Default: 60 s, and a kernel not
        ready by then is taken for the port race (see ``wait_ready``).
    stderr
        Gives, per start, a file for the kernel's stderr (``self.log``); default inherited.
    """

    def __init__(
        self,
        cwd: Path,
        env: dict[str, str],
        kernel_name: str = KERNEL,
        args: list[str] = (),
        *,
        tries: int = 2,
        ready: Callable[[Kernel], None] | None = None,
        stderr: Callable[[], Path] | None = None,
    ) -> None:
        for attempt in range(1, tries + 1):
            self.km = KernelManager(kernel_name=kernel_name)
            self.log = stderr() if stderr else None
            start = dict(cwd=str(cwd), env=env, extra_arguments=list(args))
            if self.log is None:
                self.km.start_kernel(**start)
            else:
                with open(self.log, "w") as f:
                    self.km.start_kernel(**start, stderr=f)
            self.kc = self.km.client()
            self.kc.start_channels()
            try:
                (ready or Kernel.wait_ready)(self)
                return
            except PortTaken:
                self.kc.stop_channels()
                if self.km.is_alive():
                    self.km.shutdown_kernel(now=True)
                self.km.cleanup_resources()
                if attempt == tries:
                    raise

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until the kernel answers; one that does not is taken for the port race.

        jupyter_client picks free TCP ports by binding and releasing them; with two test
        workers, another process can take one first. Taken shell or control ports make the
        kernel die at once ("Address already in use"); a taken iopub port makes ipykernel
        7.4 hang in its exit (zmq Context.term), alive but never ready.
        """
        try:
            self.kc.wait_for_ready(timeout=timeout)
        except RuntimeError as exc:
            raise PortTaken(f"the kernel did not start: {exc}") from exc

    @property
    def pid(self) -> int:
        return self.km.provisioner.pid

    def send(self, code: str, cell_id: str | None = None, allow_stdin: bool = False) -> str:
        """Send an execute request without waiting; returns its msg_id."""
        content = dict(code=code, silent=False, store_history=True, user_expressions={},
                       allow_stdin=allow_stdin, stop_on_error=True)  # fmt: skip
        metadata = {"cellId": cell_id} if cell_id else {}
        msg = self.kc.session.msg("execute_request", content, metadata=metadata)
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def wait(
        self,
        msg_id: str,
        timeout: float = 120,
        patience: Callable[[], None] | None = None,
        reply_timeout: float = 30,
    ) -> Result:
        """Collect the outputs of ``msg_id`` until the kernel is idle again, then its reply.

        ``patience()`` is called each time ``timeout`` s pass before that: it returns to
        wait ``timeout`` s more, or raises. Default: a ``TimeoutError`` the first time.
        The reply not coming within ``reply_timeout`` s raises ``queue.Empty``.
        """
        result = Result(status="?")
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                if patience is None:
                    raise TimeoutError(f"cell did not finish in {timeout} s; so far:\n{result}")
                patience()
                deadline = time.monotonic() + timeout
                continue
            try:
                msg = self.kc.get_iopub_msg(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            result.add(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        reply = self.kc.get_shell_msg(timeout=reply_timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=reply_timeout)
        result.status = reply["content"]["status"]
        return result

    def run(self, code: str, cell_id: str | None = None, timeout: float = 120) -> Result:
        return self.wait(self.send(code, cell_id), timeout)

    def ok(self, code: str, cell_id: str | None = None, timeout: float = 120) -> Result:
        """Run a cell that must succeed; returns its result."""
        result = self.run(code, cell_id, timeout)
        assert result.ok, str(result)
        return result

    def value(self, expr: str) -> str:
        """The text repr of ``expr`` evaluated in the kernel."""
        result = self.ok(expr)
        return result.data[-1]["text/plain"] if result.data else ""

    def kill(self) -> None:
        """SIGKILL the kernel process, as a crash would."""
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.close(now=True)

    def close(self, now: bool = False) -> None:
        self.kc.stop_channels()
        if now:
            self.km.cleanup_resources()
        else:
            self.km.shutdown_kernel(now=False)
