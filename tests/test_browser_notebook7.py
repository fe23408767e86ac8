"""Notebook 7 (``jupyter notebook``): suspend, Retry, the cell finishes; the timeline.

One server, one kernel, one browser (browser tests are the suite's dearest):

1. the same widgets as in JupyterLab, in Notebook 7's single-notebook page: a step whose
   service is down exhausts its retries and the cell waits on the Retry / Skip / Raise
   prompt; the test brings the service up (a file the step looks for) and clicks Retry;
   the cell goes on from the same line;
2. ``%durable timeline`` draws the journal in the page: the step's row, its failed
   attempts, the wait for the person and the decision;
3. ``durable-nb show --html`` (``--copy``: the kernel still holds the journal) writes the
   report, which opens in a new tab without asking the network for anything, with the
   timeline drawn, the steps and their errors in its table and the cells' outputs.

Screenshots of each stage: test-artifacts/<test>/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser import Notebook7, Page, kernel_display_name
from test_browser_smoke import KERNEL, write_notebook

STAGE = 60  # seconds allowed for each stage
_BESIDE = Path(sys.executable).with_name("durable-nb")
DURABLE_NB = str(_BESIDE) if _BESIDE.exists() else "durable-nb"

CELL_A = """\
from pathlib import Path
import durable_nb as dnb

@dnb.step(retries=1, initial=0.05)
def upgrade_node(name):
    if not Path("service-up").exists():
        raise ConnectionError(f"{name}: connection refused")
    return f"{name} upgraded\""""

CELL_B = """\
for name in ("node-1", "node-2"):
    print(upgrade_node(name))
print("all nodes done")"""

CELL_C = "%durable timeline"


@pytest.mark.timeout(300)
def test_suspend_retry_and_the_timeline_in_notebook_7_and_in_the_report(tmp_path: Path, request):
    root = tmp_path / "nb7"
    root.mkdir()
    nb = write_notebook(root / "upgrade.ipynb", [CELL_A, CELL_B, CELL_C])
    with Notebook7(root) as server, Page.launch(server, request.node.name, timeout=STAGE) as page:
        page.open(nb.name, kernel_display=kernel_display_name(KERNEL), timeout=2 * STAGE)
        page.run(0)
        page.run(1, wait=False)
        with page.step("the suspension prompt"):
            page.output(1).locator("button", has_text="Retry").first.wait_for()
        assert "connection refused" in page.output_text(1)
        page.screenshot("suspended", cell=1)

        (root / "service-up").touch()  # the service is back
        page.click_button(1, "Retry")
        text = page.wait_output(1, "all nodes done")
        assert "node-1 upgraded" in text and "node-2 upgraded" in text, text
        assert "Retry chosen" in text, text
        page.wait_idle()
        page.screenshot("retried", cell=1)

        page.run(2)
        with page.step("the timeline"):
            page.output(2).locator(".js-plotly-plot .main-svg").first.wait_for()
        ticks = page.output(2).locator(".ytick text").all_text_contents()
        legend = page.output(2).locator(".legendtext").all_text_contents()
        page.screenshot("timeline", cell=2)
        assert any(t.startswith("upgrade_node('node-1'") for t in ticks), ticks
        assert {"failed", "suspended", "attempt", "decision"} <= set(legend), legend

        report = tmp_path / "report.html"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}
        done = subprocess.run([DURABLE_NB, "show", str(nb), "--copy", "--html", str(report)],
                              env=env, capture_output=True, text=True, timeout=STAGE)  # fmt: skip
        assert done.returncode == 0 and "wrote" in done.stdout, done
        tab = page.page.context.new_page()
        tab.set_default_timeout(STAGE * 1000)  # a 4.8 MB page: 30 s is short on a busy machine
        asked: list[str] = []
        tab.on("request", lambda r: r.url.startswith(("file:", "data:", "blob:"))
               or asked.append(r.url))  # fmt: skip
        errors: list[str] = []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(report.as_uri())
        tab.locator(".js-plotly-plot .main-svg").first.wait_for()
        ticks = tab.locator(".js-plotly-plot .ytick text").all_text_contents()
        steps = tab.locator("table").last.inner_text()
        tab.locator("details summary", has_text="for name in").first.click()
        printed = tab.locator("details[open] pre").first.inner_text()
        tab.screenshot(path=str(page.artifacts / "report.png"), full_page=True)
    assert not asked and not errors, (asked, errors)
    assert any(t.startswith("upgrade_node('node-2'") for t in ticks), ticks
    assert "upgrade_node" in steps and "ConnectionError: node-1: connection refused" in steps
    assert "node-2 upgraded" in printed and "all nodes done" in printed, printed
