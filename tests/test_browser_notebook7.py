"""Notebook 7 (``jupyter notebook``): a failing step suspends, Retry, the cell finishes.

The same widgets as in JupyterLab, in Notebook 7's single-notebook page: a step whose
service is down exhausts its retries and the cell waits on the Retry / Skip / Raise
prompt; the test brings the service up (a file the step looks for) and clicks Retry; the
cell goes on from the same line. Then ``%durable timeline`` draws the journal in the
page: the step's row, its failed attempts and the person's decision.

Screenshots of each stage: test-artifacts/<test>/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import Notebook7, Page, kernel_display_name
from test_browser_smoke import KERNEL, write_notebook

STAGE = 60  # seconds allowed for each stage

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


@pytest.mark.timeout(240)
def test_suspend_retry_and_the_timeline_in_notebook_7(tmp_path: Path, request):
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
