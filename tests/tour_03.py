"""The tutorial's screenshots: notebooks/03_rolling_upgrade.ipynb driven in JupyterLab.

Not a test (it takes minutes): run it by hand to remake docs/tutorial/*.png, which the
README and docs/tutorial.md show::

    .venv/bin/python tests/tour_03.py

The story, in a real JupyterLab in headless Chromium with real clicks: the confirm is
answered Yes; node-2's process is killed, so its drain runs out of retries and the cell
suspends; node-2 is started again and Retry is clicked; while node-3 upgrades the kernel
is restarted from the Kernel menu; the first cell run in the new kernel offers Resume
cell, which finishes the upgrade (node-3's upgrade is sent again with the same key and
answered from it); the request log and the timeline show what happened. Each step is
checked on the way, so a screenshot never shows a story that did not happen.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from browser import ROOT, Lab, Page, kernel_display_name

sys.path.insert(0, str(ROOT / "notebooks"))
from cluster import Cluster  # notebooks/cluster.py, as the notebook imports it

NOTEBOOK = ROOT / "notebooks" / "03_rolling_upgrade.ipynb"
SHOTS = ROOT / "docs" / "tutorial"
STAGE = 120  # seconds for each stage


def _until(condition, what: str, timeout: float = STAGE):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(0.1)
    return value


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="tour-03-"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for c in nb.cells:  # three nodes, as the tests run it
        if c.id == "parameters":
            c.source = c.source.replace("NODES = 5", "NODES = 3")
    nbformat.write(nb, root / NOTEBOOK.name)
    index = {c.id: i for i, c in enumerate(nb.cells)}  # Page addresses cells by place
    code = [c.id for c in nb.cells if c.cell_type == "code"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NOTEBOOK.parent), env.get("PYTHONPATH")]))
    SHOTS.mkdir(parents=True, exist_ok=True)
    shots: dict[str, Path] = {}
    cluster_dir = root / ".cluster"
    try:
        with Lab(root, env=env) as lab, Page.launch(lab, "tour_03", timeout=STAGE,
                                                      viewport=(1100, 900)) as page:  # fmt: skip
            page.open(NOTEBOOK.name, kernel_display=kernel_display_name("python3-durable"))
            for cid in code[: code.index("confirm")]:
                page.run(index[cid], timeout=STAGE)
            shots["cluster"] = page.screenshot("cluster", cell=index["start-cluster"])

            # Ask before draining: Yes.
            page.run(index["confirm"], wait=False)
            with page.step("the confirm buttons"):
                page.output(index["confirm"]).locator("button", has_text="Yes").wait_for()
            shots["confirm"] = page.screenshot("confirm", cell=index["confirm"])
            page.click_button(index["confirm"], "Yes")
            page.wait_output(index["confirm"], "upgrading 3 nodes")
            page.wait_idle()

            # node-2's process dies: its drain runs out of retries, the cell waits.
            cluster = Cluster.attach(cluster_dir)
            os.kill(cluster.info("node-2")["pid"], signal.SIGKILL)
            rolling = index["rolling"]
            page.run(rolling, wait=False)
            page.wait_output(rolling, "The cell is waiting for you", timeout=STAGE)
            assert "drain('node-2')" in page.output_text(rolling), page.output_text(rolling)
            shots["suspended"] = page.screenshot("suspended", cell=rolling)

            # Start node-2 again, Retry: the cell goes on from the same line.
            Cluster.attach(cluster_dir).start()
            page.click_button(rolling, "Retry")
            page.wait_output(rolling, "node-2: 1.0 -> 2.0", timeout=STAGE)
            shots["retried"] = page.screenshot("retried", cell=rolling)

            # The kernel dies while node-3 upgrades.
            _until(lambda: Cluster.attach(cluster_dir).info("node-3")["running_keys"],
                   "upgrade of node-3")  # fmt: skip
            page.restart_kernel(timeout=STAGE)
            shots["restarted"] = page.screenshot("restarted", cell=rolling)

            # The first cell run in the new kernel offers to resume.
            first = index["parameters"]
            page.run(first, timeout=STAGE)
            page.wait_output(first, "steps had completed", timeout=STAGE)
            with page.step("the resume panel"):
                page.output(first).locator("button", has_text="Resume cell").wait_for()
            shots["resume-panel"] = page.screenshot("resume-panel", cell=first)
            page.click_button(first, "Resume cell")
            text = page.wait_output(first, "node-3: 1.0 -> 2.0", timeout=STAGE)
            page.wait_idle(STAGE)
            assert re.search(r"replayed", text), text
            shots["resumed"] = page.screenshot("resumed", cell=first)

            for cid in code[code.index("dask") : code.index("stop")]:
                page.run(index[cid], timeout=STAGE)
            shots["log"] = page.screenshot("log", cell=index["log"])
            with page.step("the timeline"):
                page.output(index["timeline"]).locator(".js-plotly-plot .main-svg").first.wait_for()
            shots["timeline"] = page.screenshot("timeline", cell=index["timeline"])
            page.run(index["stop"], timeout=STAGE)
        upgrades = Cluster.attach(cluster_dir).upgrades()
        assert upgrades == {"node-1": 1, "node-2": 1, "node-3": 1}, upgrades
    finally:
        if (cluster_dir / "cluster.json").exists():
            Cluster.attach(cluster_dir).stop()
    for name, shot in shots.items():
        shutil.copyfile(shot, SHOTS / f"{name}.png")
    print(f"{len(shots)} screenshots in {SHOTS}: {', '.join(shots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
