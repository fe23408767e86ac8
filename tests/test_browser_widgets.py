"""The widgets in a real browser: suspension in place, Retry, a restart, the resume panel.

One JupyterLab, headless Chromium, real clicks, and the flaky service in its own process
(its request counts survive the kernel restart and are the ground truth):

1. cell A defines a step that calls the service; cell B calls it for node-0..5 and takes
   the service down just before node-3, so node-3 exhausts its retries and the cell
   suspends on a widget (Retry / Skip with / Raise);
2. the test brings the service up and clicks Retry: the cell goes on from the same line
   and prints all six results; node-3 was requested (failed attempts + 1) times, every
   other node once;
3. cell C calls the step for 20 more items; the kernel is restarted from the UI while it
   runs (the restart interrupts the cell);
4. running cell A in the new kernel shows the resume panel; Resume cell restores the
   namespace and re-runs C: its completed steps replay, so the service sees every item
   once, except at most the one in flight at the restart.

Screenshots of each stage: test-artifacts/test_browser_widgets/. With DURABLE_NB_DOCS=1,
a passing run also copies the cell shots of the suspension widget and of the resume panel
to docs/, which the README shows (the tests leave the repository untouched otherwise).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser import ROOT, Lab, Page, kernel_display_name
from flaky_service import configure, stats

KERNEL = "python3-durable"
NOTEBOOKS = ROOT / "notebooks"
DOCS = ROOT / "docs"
STAGE = 60  # seconds allowed for each stage
FAILED_ATTEMPTS = 3  # retries=2: three attempts before the cell suspends
ITEMS = 20  # cell C's steps

CELL_A = """\
import time
import durable_nb as dnb
from flaky_service import call, configure
URL = {url!r}

@dnb.step(retries=2, initial=0.05)
def work(path):
    return call(URL, path)["n"]  # how many times the service saw this path"""

CELL_B = """\
results = []
for i in range(6):
    if i == 3:
        configure(URL, down=True)  # an outage, just before node-3
    results.append(work(f"node-{i}"))
print("done", results)"""

CELL_C = f"""\
progress = []
for j in range({ITEMS}):
    progress.append(work(f"item-{{j}}"))
    time.sleep(0.3)
    print(f"{{j + 1}}/{ITEMS}", end=" ", flush=True)
print("\\nC finished:", len(progress), "items")"""


def write_notebook(path: Path, sources: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": KERNEL,
        "display_name": kernel_display_name(KERNEL),
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def service() -> Iterator[str]:
    """The flaky service in its own process (no random failures): its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(NOTEBOOKS / "flaky_service.py"), "--port", "0", "--fail-rate", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT "), f"flaky service did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def lab_root(tmp_path: Path) -> Path:
    d = tmp_path / "lab"
    d.mkdir()
    return d


@pytest.fixture
def lab(lab_root: Path) -> Iterator[Lab]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}
    # The kernels import flaky_service from notebooks/.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(NOTEBOOKS), env.get("PYTHONPATH")) if p)
    with Lab(lab_root, env=env) as lab:
        yield lab


def by_path(url: str, prefix: str) -> dict[str, int]:
    """The service's request counts for ``/work/<prefix>...``, keyed by the rest."""
    start = f"/work/{prefix}"
    return {p[len(start) :]: n for p, n in stats(url)["by_path"].items() if p.startswith(start)}


def until(page: Page, what: str, check: Callable[[], Any], timeout: float = STAGE) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the page's state."""
    with page.step(what):
        deadline = time.monotonic() + timeout
        while not (value := check()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not within {timeout} s")
            time.sleep(0.05)
        return value


@pytest.mark.timeout(300)
def test_browser_widgets(
    lab: Lab, lab_root: Path, service: str, request: pytest.FixtureRequest
) -> None:
    t0 = time.monotonic()
    stages: dict[str, float] = {}
    shots: dict[str, Path] = {}

    def mark(stage: str) -> None:
        stages[stage] = time.monotonic() - t0

    nb = write_notebook(
        lab_root / "widgets.ipynb", [CELL_A.format(url=service), CELL_B, CELL_C, ""]
    )
    A, B, C = 0, 1, 2
    with Page.launch(lab, request.node.name, timeout=STAGE) as page:
        page.open(nb.name, kernel_display=kernel_display_name(KERNEL))
        page.screenshot("opened")
        mark("open")

        # -- 1-2. B suspends at node-3 ------------------------------------------------------
        page.run(A, timeout=STAGE)
        page.run(B, wait=False)
        text = page.wait_output(B, "the cell is waiting for you", timeout=STAGE)
        assert "durable_nb: step work('node-3') failed after" in text, text
        assert f"{FAILED_ATTEMPTS} attempts" in text, text
        assert "service is down" in text, text
        with page.step("see the suspension widget's controls"):
            for label in ("Retry", "Skip", "Raise"):
                exact = re.compile(rf"^\s*{label}\s*$")
                page.output(B).locator("button").filter(has_text=exact).wait_for()
            page.output(B).locator(".widget-label", has_text="Skip, returning:").wait_for()
        assert "done" not in text, text
        assert by_path(service, "node-") == {
            "0": 1, "1": 1, "2": 1, "3": FAILED_ATTEMPTS
        }  # fmt: skip
        shots["suspended"] = page.screenshot("suspended", cell=B)
        mark("suspended")

        # -- 3. fix the service, Retry: the cell goes on from the same line -----------------
        configure(service, down=False)
        page.click_button(B, "Retry")
        expected = [1, 1, 1, FAILED_ATTEMPTS + 1, 1, 1]
        text = page.wait_output(B, f"done {expected}", timeout=STAGE)
        page.wait_idle(STAGE)
        assert "Retry chosen by " in text and "the cell goes on" in text, text
        counts = by_path(service, "node-")
        assert counts == {
            "0": 1, "1": 1, "2": 1, "3": FAILED_ATTEMPTS + 1, "4": 1, "5": 1
        }, counts  # fmt: skip
        shots["retried"] = page.screenshot("retried", cell=B)
        mark("retried")

        # -- 4. C runs; the kernel is restarted from the UI halfway through ----------------
        page.run(C, wait=False)
        until(page, "the service sees 5 of C's items", lambda: len(by_path(service, "item-")) >= 5)
        page.restart_kernel(timeout=STAGE)
        before = by_path(service, "item-")
        assert 5 <= len(before) < ITEMS, f"C was not cut short by the restart: {before}"
        assert all(n == 1 for n in before.values()), before
        in_flight = max(int(k) for k in before)  # the last item requested before the restart
        page.screenshot("restarted")
        mark("restarted")

        # -- 5. the first cell of the new kernel offers to resume; Resume cell -------------
        page.run(A, timeout=STAGE)
        text = page.wait_output(A, "steps had completed", timeout=STAGE)
        # The cell is named as the person finds it: its place and its first line.
        m = re.search(r"the last run (?:was interrupted|died) in the (\d+)(?:st|nd|rd|th) code "
                      r"cell \('([^']*)'\), started [^;]*; (\d+) of its steps had completed",
                      text, re.S)  # fmt: skip
        assert m, text
        assert m.group(1) == str(C + 1) and m.group(2) == CELL_C.splitlines()[0], text
        assert "KeyboardInterrupt" not in text, text  # the restart was asked for
        completed = int(m.group(3))
        assert completed in (len(before), len(before) - 1), (completed, before, text)
        with page.step("see the resume panel's buttons"):
            for label in ("Restore namespace", "Resume cell", "Start fresh"):
                exact = re.compile(rf"^\s*{label}\s*$")
                page.output(A).locator("button").filter(has_text=exact).wait_for()
        shots["resume-panel"] = page.screenshot("resume-panel", cell=A)
        mark("resume panel")

        page.click_button(A, "Resume cell")
        name = f"the 3rd code cell ('{CELL_C.splitlines()[0]}')"
        text = page.wait_output(A, f"re-running {name}", timeout=STAGE)
        assert f"output of {name}, resumed here" in text, text
        text = page.wait_output(A, f"C finished: {ITEMS} items", timeout=STAGE)
        page.wait_idle(STAGE)
        assert re.search(r"durable_nb: .*restored", text, re.I), text
        shots["resumed"] = page.screenshot("resumed", cell=A)
        mark("resumed")
        page.save()

    # The saved notebook keeps what was decided as static text (no kernel needed to read it).
    saved = nbformat.read(nb, as_version=4)
    stories = [o["data"] for o in saved.cells[A].outputs if o.get("output_type") == "display_data"]
    panel = [d for d in stories if "Resume cell chosen by " in d.get("text/plain", "")]
    assert panel and "application/vnd.jupyter.widget-view+json" not in panel[0], stories
    assert "steps had completed" in panel[0]["text/html"], panel
    retried = [o["data"] for o in saved.cells[B].outputs if o.get("output_type") == "display_data"]
    assert any("Retry chosen by " in d.get("text/plain", "") for d in retried), retried

    # The service's own counts: every item requested, the completed ones exactly once
    # (they replayed), only the one in flight at the restart possibly twice.
    after = by_path(service, "item-")
    assert sorted(int(k) for k in after) == list(range(ITEMS)), after
    twice = {k: n for k, n in after.items() if n != 1}
    assert set(twice) <= {str(in_flight)} and all(n == 2 for n in twice.values()), (
        f"steps repeated after Resume cell: {twice} (in flight at the restart: item-{in_flight}; "
        f"requested before: {before})"
    )
    # All went well: the README's pictures.
    if os.environ.get("DURABLE_NB_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shots["suspended"], DOCS / "suspension.png")
        shutil.copyfile(shots["resume-panel"], DOCS / "resume-panel.png")
    total = time.monotonic() - t0
    print(
        f"\nbrowser widgets: lab ready {lab.started_in:.1f} s; "
        + ", ".join(f"{k} at {v:.1f} s" for k, v in stages.items())
        + f"; total {total:.1f} s; C's items before the restart: {len(before)} "
        f"(completed {completed}), repeated: {twice or 'none'}"
    )


@pytest.mark.timeout(300)
def test_restart_after_a_suspension_logs_no_zmq_error(
    lab: Lab, lab_root: Path, service: str, request: pytest.FixtureRequest
) -> None:
    """Issue 16.11: after a suspension answered through durable_nb's own subshell and
    pinned widget comms, restarting the kernel leaves no ZMQError traceback in the log.

    (A restart that interrupts a *running* cell can still log one: plain ipykernel 7.4
    does that without durable_nb, when the shutdown closes the main thread's reply
    socket before the interrupted cell's execute_reply is sent.)
    """
    nb = write_notebook(lab_root / "restart.ipynb", [CELL_A.format(url=service), CELL_B])
    with Page.launch(lab, request.node.name, timeout=STAGE) as page:
        page.open(nb.name, kernel_display=kernel_display_name(KERNEL))
        page.run(0, timeout=STAGE)
        page.run(1, wait=False)
        page.wait_output(1, "the cell is waiting for you", timeout=STAGE)
        configure(service, down=False)
        page.click_button(1, "Retry")
        page.wait_output(1, "done [", timeout=STAGE)
        page.wait_idle(STAGE)
        page.restart_kernel(timeout=STAGE)
        page.run(0, timeout=STAGE)  # the new kernel works
        page.restart_kernel(timeout=STAGE)
    log = lab.log(chars=10**7)
    assert log.count("Kernel restarted") == 2, log
    for bad in ("ZMQError", "Socket operation on non-socket", "Traceback"):
        assert bad not in log, log
