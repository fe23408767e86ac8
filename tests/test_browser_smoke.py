"""The browser infrastructure works: JupyterLab + headless Chromium + the durable kernel.

Opens a notebook on the "Python 3 (durable)" kernel, clicks an ipywidgets button and sees
its callback's effect in the page and in the kernel, checks that the extension is
journaling beside the notebook, types cells, fills a text widget, and restarts the kernel
(the extension comes back on the same journal). Screenshots of each stage:
test-artifacts/test_browser_smoke/.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
import pytest
from browser import Lab, Page, kernel_display_name

KERNEL = "python3-durable"

WIDGET_CELL = """\
import ipywidgets as w
b = w.Button(description="Press me")
out = w.Output()
clicks = []
b.on_click(lambda _: clicks.append(1) or out.append_stdout("pressed\\n"))
display(b, out)"""


def write_notebook(path: Path, sources: list[str], kernel: str = KERNEL) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": kernel,
        "display_name": kernel_display_name(kernel),
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def lab_root(tmp_path: Path) -> Path:
    d = tmp_path / "lab"
    d.mkdir()
    return d


@pytest.fixture
def lab(lab_root: Path):
    with Lab(lab_root) as lab:
        yield lab


@pytest.mark.timeout(180)
def test_browser_smoke(lab: Lab, lab_root: Path, request: pytest.FixtureRequest) -> None:
    t0 = time.monotonic()
    nb = write_notebook(
        lab_root / "smoke.ipynb",
        [WIDGET_CELL, "print(len(clicks))", "%durable path", "", ""],
    )
    with Page.launch(lab, request.node.name) as page:
        page.open(nb.name, kernel_display=kernel_display_name(KERNEL))
        page.screenshot("opened")
        t_open = time.monotonic()

        # A widget button's callback runs in the kernel and writes into an Output.
        page.run(0)
        with page.step("see the button"):
            page.output(0).locator("button", has_text="Press me").wait_for()
        page.screenshot("widget-shown")
        page.click_button(0, "Press me")
        assert "pressed" in page.wait_output(0, "pressed")
        page.screenshot("clicked")
        page.run(1)
        assert page.wait_output(1, re.compile(r"^\s*1\s*$")).strip() == "1"
        page.screenshot("count-checked")

        # The durable extension is loaded and journals beside the notebook.
        page.run(2)
        text = page.wait_output(2, ".duckdb")
        page.screenshot("journal-path")
        journal = Path(re.search(r"'([^']+\.duckdb)'", text).group(1))
        assert journal == lab_root / ".durable" / "smoke.duckdb", text
        assert journal.exists(), text

        # Typing a cell and filling a widget text field.
        page.type(3, "t = w.Text(description='Value')\ndisplay(t)")
        page.run(3)
        page.fill(3, "hello (world)", label="Value")
        page.type(4, "print(repr(t.value))")
        page.run(4)
        assert page.wait_output(4, "hello").strip() == "'hello (world)'"
        page.screenshot("text-filled")

        # After a restart the extension is loaded again, on the same journal.
        page.restart_kernel()
        page.run(2)
        assert page.wait_output(2, ".duckdb") == text
        page.screenshot("restarted")
        t_end = time.monotonic()

    print(
        f"\nbrowser smoke: lab ready {lab.started_in:.1f} s, notebook open + kernel idle "
        f"{t_open - t0:.1f} s, cells {t_end - t_open:.1f} s, total {time.monotonic() - t0:.1f} s"
    )
