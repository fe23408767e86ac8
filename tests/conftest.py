"""Fixtures: real durable kernels (jupyter_client), SIGKILL, and the flaky service.

Every test gets one layer marker (registered in pyproject.toml): ``unit`` for tests
under tests/unit/ (no kernel; they may not use the fixtures below),
``browser`` for tests that drive JupyterLab, ``kernel`` for every other test (they
start kernels, directly or through ``durable-nb``). ``pytest -m unit`` is the fast layer.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
UNIT = Path(__file__).resolve().parent / "unit"
KERNEL = "python3-durable"

#: Fixtures that start processes: a test using one is not a unit test.
KERNEL_FIXTURES = {"start_kernel", "kernel_env", "workdir", "service"}
BROWSER_FIXTURES = {"lab", "lab_root"}

sys.path.insert(0, str(NOTEBOOKS))
# As durable-nb run does (cli/run.py): nbformat's jsonschema without the optional IRI
# format checker, whose import compiles ~40 Lark grammars (~3.5 CPU-s per test worker).
sys.modules.setdefault("rfc3987_syntax", None)


def layer(item: pytest.Item) -> str:
    """The test's layer: ``unit``, ``kernel`` or ``browser`` (see the module docstring)."""
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & BROWSER_FIXTURES or item.path.name.startswith("test_browser"):
        return "browser"
    if UNIT in item.path.parents:
        if fixtures & KERNEL_FIXTURES:
            raise pytest.UsageError(
                f"{item.nodeid} is under tests/unit/ but uses {sorted(fixtures & KERNEL_FIXTURES)}:"
                " move it out of tests/unit/ (unit tests start no kernel)"
            )
        return "unit"
    return "kernel"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(layer(item))


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

    def __str__(self) -> str:
        err = f"\nerror: {self.error['ename']}: {self.error['evalue']}" if self.error else ""
        return f"status={self.status}\nstdout={self.stdout}\nstderr={self.stderr}{err}"


class Kernel:
    """A real kernel process with a client; ``run`` sends a cell like a frontend does."""

    def __init__(
        self, cwd: Path, env: dict[str, str], kernel_name: str = KERNEL, args: list[str] = ()
    ) -> None:
        for attempt in (1, 2):
            self.km = KernelManager(kernel_name=kernel_name)
            self.km.start_kernel(cwd=str(cwd), env=env, extra_arguments=list(args))
            self.kc = self.km.client()
            self.kc.start_channels()
            try:
                self.kc.wait_for_ready(timeout=60)
                return
            except RuntimeError:
                # jupyter_client picks free TCP ports by binding and releasing them; with
                # two test workers, another process can take one first. Taken shell or
                # control ports make the kernel die at once ("Address already in use"); a
                # taken iopub port makes ipykernel 7.4 hang in its exit (zmq Context.term),
                # alive but never ready. One new start on new ports; twice is a failure.
                self.kc.stop_channels()
                if self.km.is_alive():
                    self.km.shutdown_kernel(now=True)
                self.km.cleanup_resources()
                if attempt == 2:
                    raise

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

    def wait(self, msg_id: str, timeout: float = 120) -> Result:
        """Collect the outputs of ``msg_id`` until the kernel is idle again."""
        result = Result(status="?")
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"cell did not finish in {timeout} s; so far:\n{result}")
            try:
                msg = self.kc.get_iopub_msg(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    result.stdout += content["text"]
                else:
                    result.stderr += content["text"]
            elif kind in ("execute_result", "display_data"):
                result.data.append(content["data"])
            elif kind == "error":
                result.error = content
            elif kind == "status" and content["execution_state"] == "idle":
                break
        reply = self.kc.get_shell_msg(timeout=30)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=30)
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


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder for the notebook and its .durable journal."""
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture
def kernel_env(workdir: Path) -> dict[str, str]:
    """The environment a frontend gives a kernel: the notebook path in JPY_SESSION_NAME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}
    env["JPY_SESSION_NAME"] = str(workdir / "nb.ipynb")
    env["PYTHONPATH"] = os.pathsep.join([str(NOTEBOOKS), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture
def start_kernel(workdir: Path, kernel_env: dict[str, str]):
    """Factory: start a real durable kernel in ``workdir``; all are stopped afterwards."""
    kernels: list[Kernel] = []

    def start(
        env: dict[str, str] | None = None, kernel_name: str = KERNEL, args: list[str] = ()
    ) -> Kernel:
        k = Kernel(workdir, env or kernel_env, kernel_name, args)
        kernels.append(k)
        return k

    yield start
    for k in kernels:
        if k.km.has_kernel:
            try:
                k.close(now=not k.km.is_alive())
            except Exception:
                pass


@pytest.fixture
def service():
    """The flaky service in its own process, so its counts survive kernel kills."""
    proc = subprocess.Popen(
        [sys.executable, str(NOTEBOOKS / "flaky_service.py"), "--port", "0", "--fail-rate", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line
    url = f"http://127.0.0.1:{int(line.split()[1])}"
    yield url
    proc.terminate()
    proc.wait(timeout=10)
