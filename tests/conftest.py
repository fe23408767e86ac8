"""Fixtures: real durable kernels (jupyter_client), SIGKILL, and the flaky service.

Every test gets one layer marker (registered in pyproject.toml): ``unit`` for tests
under tests/unit/ (no kernel; they may not use the fixtures below),
``browser`` for tests that drive JupyterLab, ``kernel`` for every other test (they
start kernels, directly or through ``durable-nb``). ``pytest tests/unit`` (or ``-m unit``)
is the fast layer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kernels import KERNEL, NOTEBOOKS, ROOT, Kernel, Result

__all__ = ["KERNEL", "NOTEBOOKS", "ROOT", "Kernel", "Result"]  # as the tests import them

UNIT = Path(__file__).resolve().parent / "unit"

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


#: The ids of every test collected, before ``-k`` or ``-m`` deselect any.
_COLLECTED: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Before -m deselects (a conftest's hook runs before the plugins' own): it needs the marks.
    _COLLECTED[:] = [item.nodeid for item in items]
    for item in items:
        item.add_marker(layer(item))


@pytest.fixture(scope="session")
def collected_ids() -> list[str]:
    """The ids of every test this session collected (before ``-k`` or ``-m``)."""
    return _COLLECTED


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
