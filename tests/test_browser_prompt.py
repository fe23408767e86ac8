"""The suspension prompt as a person meets it in JupyterLab (issue 16, points 2-6, 8, 9).

One JupyterLab in a narrow window (760 px, file browser open), headless Chromium, real
clicks and keys, the flaky service in its own process:

- cell 1 is a live ``%durable status`` view;
- cell 2 suspends at node-3: the kernel reads busy (server's /api/kernels and the status
  bar) for the whole wait; the prompt has one primary action, readable colours (WCAG AA
  computed from the rendered colours), visible labels, a one-line title, ``Cell In[n]``
  in its excerpt and a Details toggle; Retry: the status view no longer shows the failure;
- cell 3: Skip by Enter, after a bad value whose error goes away;
- cell 4: Raise says the cell stops; the traceback hides durable_nb's frames;
- the saved notebook keeps a static story of each decision instead of the widget.
"""

from __future__ import annotations

import re
import time

import nbformat
import pytest
from browser import Lab, Page, kernel_display_name
from flaky_service import configure
from test_browser_widgets import (
    CELL_A,
    CELL_B,
    KERNEL,
    STAGE,
    lab,
    lab_root,
    service,
    write_notebook,
)

__all__ = ["lab", "lab_root", "service"]  # fixtures, imported for pytest

CELL_STATUS = "%durable status"
CELL_SKIP = """\
configure(URL, down=True)
x = work("skip-me")
print("skipped ->", x)"""
CELL_RAISE = """\
y = work("raise-me")
print("not reached")"""
CELL_CONFIRM = """\
go = dnb.confirm("Drain 3 nodes?", key="drain")
print("confirmed ->", go)"""

# The effective colours of an element: its text colour and the first opaque background
# found on it or an ancestor.
_COLOURS = """(el) => {
    const rgba = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
    const fg = rgba(getComputedStyle(el).color);
    let node = el, bg = null;
    while (node && node.nodeType === 1) {
        const c = rgba(getComputedStyle(node).backgroundColor);
        if (c.length >= 3 && (c.length === 3 || c[3] > 0.99)) { bg = c; break; }
        node = node.parentElement;
    }
    return {fg: fg, bg: bg || [255, 255, 255]};
}"""


def contrast(fg: list[float], bg: list[float]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours."""

    def luminance(c: list[float]) -> float:
        def lin(v: float) -> float:
            v /= 255
            return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

        r, g, b = (lin(v) for v in c[:3])
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def states(lab: Lab) -> set[str]:
    return {k["execution_state"] for k in lab.kernels()}


def assert_busy(lab: Lab, page: Page, why: str, samples: int = 10) -> None:
    """The server and the status bar say busy, sampled a few times."""
    for _ in range(samples):
        assert states(lab) == {"busy"}, f"{why}: /api/kernels says {states(lab)}"
        time.sleep(0.1)
    page.status(f"{page.kernel_display} | Busy").wait_for(timeout=10_000)


@pytest.mark.timeout(400)
def test_suspension_prompt_for_a_person(
    lab: Lab, lab_root, service: str, request: pytest.FixtureRequest
) -> None:
    nb = write_notebook(
        lab_root / "prompt.ipynb",
        [CELL_A.format(url=service), CELL_STATUS, CELL_B, CELL_SKIP, CELL_RAISE, CELL_CONFIRM, ""],
    )
    A, STATUS, B, SKIP, RAISE, CONFIRM = range(6)
    with Page.launch(lab, request.node.name, timeout=STAGE, viewport=(760, 900)) as page:
        page.open(nb.name, kernel_display=kernel_display_name(KERNEL))
        page.page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:activate')")
        page.page.locator(".jp-FileBrowser").first.wait_for()
        page.run(A)
        page.run(STATUS)
        page.wait_output(STATUS, "this run")

        # -- 2. suspended: busy for the whole wait ----------------------------------------
        page.run(B, wait=False)
        text = page.wait_output(B, "the cell is waiting for you")
        assert "work('node-3') failed after 3 attempts" in text, text
        assert_busy(lab, page, "suspended")

        # -- 9. the look ----------------------------------------------------------------
        out = page.output(B)
        with page.step("the prompt's look"):
            assert "Cell In[" in text and "ipykernel_" not in text, text
            title = out.locator(".widget-html").first
            height = title.evaluate(
                "(el) => { const d = el.querySelector('div') || el;"
                " return d.getBoundingClientRect().height"
                " / parseFloat(getComputedStyle(d).lineHeight); }"
            )
            assert height < 1.8, f"the title takes {height:.1f} lines"
            ratios = {}
            for label in ("Retry", "Skip", "Raise"):
                button = out.locator("button").filter(has_text=re.compile(rf"^\s*{label}\s*$"))
                assert button.count() == 1, label
                assert button.is_visible(), label
                clipped = button.evaluate("(el) => el.scrollWidth > el.clientWidth + 1")
                assert not clipped, f"the {label} button's label is cut off"
                assert button.inner_text().strip() == label
                c = button.evaluate(_COLOURS)
                ratios[label] = contrast(c["fg"], c["bg"])
            assert all(r >= 4.5 for r in ratios.values()), ratios
            backgrounds = {
                label: out.locator("button").filter(has_text=label).first.evaluate(_COLOURS)["bg"]
                for label in ("Retry", "Skip", "Raise")
            }
            # One primary action: Retry stands out, Skip and Raise look alike.
            assert backgrounds["Skip"] == backgrounds["Raise"] != backgrounds["Retry"], backgrounds
            assert out.get_by_text("becomes the step's return value").is_visible()
        out.locator("button").first.scroll_into_view_if_needed()
        page.screenshot("suspended-narrow")
        shot = page.screenshot("suspended", cell=B)

        # -- 4. Details -----------------------------------------------------------------
        with page.step("open Details"):
            out.locator("summary", has_text="Details").click()
            details = out.locator("details")
            details.locator("li", has_text="attempt 3:").wait_for()
            assert "this run" in details.inner_text()
        page.screenshot("details", cell=B)

        # -- 3, 5. Retry: the cell goes on; the status view forgets the failure ---------
        configure(service, down=False)
        page.click_button(B, "Retry")
        text = page.wait_output(B, "done [")
        page.wait_idle(STAGE)
        assert "Retry chosen" in text and "the cell is waiting" not in text, text
        status = page.wait_output(STATUS, "0 failed")  # the view refreshes on its own
        assert "attempt 1: idle" not in status, status
        # The step's own line forgets the failure (the running cell's output tail, shown
        # below it, keeps the decided prompt's line, as the cell's output does).
        state = [line for line in status.splitlines() if not line.lstrip().startswith("output")]
        assert "service is down" not in "\n".join(state), status

        # -- 6. Skip: a bad value, then Enter with a good one ---------------------------
        page.run(SKIP, wait=False)
        page.wait_output(SKIP, "the cell is waiting for you")
        page.fill(SKIP, "1 +", label="Skip, returning:")
        page.wait_output(SKIP, "cannot use that value: SyntaxError")
        assert_busy(lab, page, "after a message from the widget")
        page.fill(SKIP, "42", label="Skip, returning:")
        text = page.wait_output(SKIP, "skipped -> 42")
        page.wait_idle(STAGE)
        assert "Skipped with 42" in text and "cannot use that value" not in text, text

        # -- 3, 9. Raise: says the cell stops; durable_nb's frames are hidden -----------
        page.run(RAISE, wait=False)
        page.wait_output(RAISE, "the cell is waiting for you")
        page.click_button(RAISE, "Raise")
        text = page.wait_output(RAISE, "StepFailed")
        page.wait_idle(STAGE)
        assert "Raise chosen by " in text and "the cell stops here" in text, text
        assert "goes on" not in text.split("Raise chosen")[1].splitlines()[0], text
        assert not re.search(r"^not reached$", text, re.M), text
        frames = re.findall(r"durable_nb[/\\]\w+\.py", text)
        assert len(frames) <= 1, f"durable_nb frames in the traceback: {frames}\n{text}"

        # -- issue 15: dnb.confirm answered by a click, journaled, replayed -------------
        page.run(CONFIRM, wait=False)
        page.wait_output(CONFIRM, "Drain 3 nodes?")
        assert_busy(lab, page, "waiting for an answer", samples=2)
        page.click_button(CONFIRM, "Yes")
        text = page.wait_output(CONFIRM, "confirmed -> True")
        page.wait_idle(STAGE)
        page.run(CONFIRM)  # again: the journaled answer replays, nobody is asked
        text = page.wait_output(CONFIRM, "confirmed -> True")
        assert "replayed" in text and page.output(CONFIRM).locator("button").count() == 0, text
        page.save()

    # -- 8. the saved notebook tells the story without a kernel -----------------------------
    saved = nbformat.read(nb, as_version=4)
    for index, story in (
        (B, "Retry chosen"),
        (SKIP, "Skipped with 42 by "),
        (RAISE, "Raise chosen"),
    ):
        outputs = [o for o in saved.cells[index].outputs if o.get("output_type") == "display_data"]
        decided = [o for o in outputs if story in o["data"].get("text/plain", "")]
        assert decided, (index, outputs)
        data = decided[0]["data"]
        assert "failed after 3 attempts" in data["text/plain"], data
        assert story in data["text/html"], data
        assert "application/vnd.jupyter.widget-view+json" not in data, data
    assert shot is not None
