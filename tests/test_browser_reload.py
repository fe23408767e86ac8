"""A page reload while a cell runs: the status view shows what the cell prints (issue 15).

JupyterLab does not show a running cell's later outputs after a reload (the new page's
session is not the request's). In one JupyterLab with headless Chromium: cell 0 opens the
live ``%durable status`` view and the notebook is saved; cell 1 prints a line every 0.1 s;
the page is reloaded; the status view (its widget restored from the kernel) shows lines
the cell printed after the reload. Then the kernel is
restarted while the cell prints: the resume panel's Show lost outputs shows what it had
printed. Screenshots: test-artifacts/test_browser_reload/ (with DURABLE_NB_DOCS=1, a
passing run copies the status view and the lost outputs to docs/ for the README).
"""

from __future__ import annotations

import os
import re
import shutil
import time

import nbformat
import pytest
from browser import ROOT, Page, kernel_display_name
from test_browser_widgets import lab, lab_root

__all__ = ["lab", "lab_root"]  # fixtures, imported for pytest

KERNEL = "python3-durable"
DOCS = ROOT / "docs"


def ticks(text: str) -> int:
    found = re.findall(r"TICK (\d+)", text)
    return max(map(int, found)) if found else 0


@pytest.mark.timeout(240)
def test_status_view_shows_a_running_cells_output_after_a_reload(lab, lab_root, request):
    stop = lab_root / "stop"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": kernel_display_name(KERNEL),
                                 "language": "python"}  # fmt: skip
    nb.cells = [
        nbformat.v4.new_code_cell("%durable status"),
        nbformat.v4.new_code_cell(
            "import os, time\n"
            f"for i in range(1, 3000):\n"
            f"    if os.path.exists({str(stop)!r}):\n        break\n"
            "    print(f'TICK {i}', flush=True)\n    time.sleep(0.1)"
        ),
        nbformat.v4.new_code_cell("x = 1"),
    ]
    nbformat.write(nb, lab_root / "reload.ipynb")
    with Page.launch(lab, request.node.name, timeout=60) as page:
        page.open("reload.ipynb", kernel_display=kernel_display_name(KERNEL))
        page.run(0)
        page.wait_output(0, "journaling")
        page.save()
        page.run(1, wait=False)
        page.wait_output(1, "TICK 5")
        page.screenshot("printing")
        before = ticks(page.output_text(1))

        with page.step("reload the page while the cell runs"):
            page.page.reload()
            page.notebook.locator(".jp-Cell").first.wait_for()
        with page.step("the status view shows lines printed after the reload"):
            deadline = time.monotonic() + 120
            while ticks(page.output_text(0)) <= before + 10:
                assert time.monotonic() < deadline, "no new lines in the status view"
                page.page.wait_for_timeout(200)
        shown = page.output_text(0)
        shots = {"reloaded": page.screenshot("reloaded", cell=0)}
        assert "output" in shown and ticks(shown) > before + 10, shown

        # The kernel restarts while the cell prints: the next kernel's resume panel shows
        # what the cell had printed (Show lost outputs), and stays.
        page.restart_kernel()
        page.run(2)
        page.click_button(2, "Show lost outputs")
        page.wait_output(2, "outputs of cell execution 2")
        with page.step("the lost outputs go on past the reload"):
            deadline = time.monotonic() + 60
            while ticks(page.output_text(2)) <= before + 10:
                assert time.monotonic() < deadline, page.output_text(2)[-500:]
                page.page.wait_for_timeout(200)
        page.cell(2).locator(".jp-InputArea").scroll_into_view_if_needed()
        shots["lost-outputs"] = page.screenshot("lost-outputs")  # the window: its top lines
        with page.step("the panel stays after Show lost outputs"):
            page.output(2).locator("button", has_text="Resume cell").wait_for()
    if os.environ.get("DURABLE_NB_DOCS") == "1":
        for name, shot in shots.items():
            shutil.copyfile(shot, DOCS / f"{name}.png")
