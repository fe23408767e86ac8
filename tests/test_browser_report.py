"""``durable-nb show --html``: the report opens offline in headless Chromium, timeline drawn.

The journal comes from a two-cell notebook run headless once (``durable-nb run``: one
kernel), with a failed attempt; what else the timeline draws is pinned without a browser
by tests/unit/test_timeline.py. The page must ask nothing of the network, draw the
timeline (plotly's SVG, with the steps as its rows), list the steps and show the cells'
journaled outputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser import CHROMIUM_ARGS, SETUP_HINT, chromium_path
from test_browser_smoke import write_notebook

_BESIDE = Path(sys.executable).with_name("durable-nb")
DURABLE_NB = str(_BESIDE) if _BESIDE.exists() else "durable-nb"

CELL_A = """\
import durable_nb as dnb

tries = []

@dnb.step(retries=2, initial=0.01)
def provision_node(name):
    tries.append(name)
    if len(tries) == 1:
        raise ConnectionError("refused")
    return name

@dnb.step
def check_health(name):
    return {"node": name, "ok": True}"""

CELL_B = """\
for n in ("a", "b"):
    print("checked", check_health(provision_node(n)))"""


@pytest.mark.timeout(120)
def test_the_html_report_opens_offline_with_the_timeline_and_the_steps(tmp_path: Path):
    nb = write_notebook(tmp_path / "upgrade.ipynb", [CELL_A, CELL_B])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}
    subprocess.run([DURABLE_NB, "run", str(nb)], env=env, check=True, capture_output=True,
                   timeout=120)  # fmt: skip
    report = tmp_path / "report.html"
    done = subprocess.run([DURABLE_NB, "show", str(nb), "--html", str(report)], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and "wrote" in done.stdout, done

    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        raise RuntimeError(f"the `playwright` package is missing: {SETUP_HINT}") from e
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                     args=CHROMIUM_ARGS)  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            asked: list[str] = []
            page.on("request", lambda r: r.url.startswith(("file:", "data:", "blob:"))
                    or asked.append(r.url))  # fmt: skip
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(report.as_uri())
            plot = page.locator(".js-plotly-plot .main-svg").first
            plot.wait_for(timeout=30_000)
            ticks = page.locator(".js-plotly-plot .ytick text").all_text_contents()
            tables = page.locator("table").last.inner_text()
            page.locator("details").last.locator("summary").click()
            printed = page.locator("details pre").last.inner_text()
            legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
            page.screenshot(path=str(tmp_path / "report.png"))
        finally:
            browser.close()
    assert not asked and not errors, (asked, errors)
    for name in ("provision_node", "check_health"):
        assert any(t.startswith(name) for t in ticks), ticks
        assert name in tables
    assert "ConnectionError: refused" in tables  # the failed attempt, in the step table
    assert {"run", "cell", "attempt", "failed"} <= set(legend), legend
    assert "checked {'node': 'b', 'ok': True}" in printed, printed
