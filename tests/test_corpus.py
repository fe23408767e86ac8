"""Public notebooks that never call durable_nb run the same under python3-durable (issue 13).

tests/corpus/ holds a few notebooks as published (see its README): the ipywidgets
documentation's Widget List, Widget Events and Using Interact (widget-heavy: a widget's
graph reaches the comm and the kernel; ``interact`` on notebook functions, an ``Enum``
class, a plot in an ``interactive``) and two of nbclient's test notebooks (displays,
updated displays, cleared outputs); the test runs all but Widget Events (timers: the
benchmark runs it).
Each runs under ``python3`` and ``python3-durable`` with nbclient; their outputs must be
equal once addresses, widget model ids and times are normalised, and no output may carry
a ``durable_nb:`` line. ``bench/corpus.py`` times the same runs.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

CORPUS = Path(__file__).resolve().parent / "corpus"
NOTEBOOKS = ("Widget List", "Widget Events", "Using Interact", "Output", "update-display-id")
#: What the test runs: Widget Events is left to the benchmark (its throttle and debounce
#: cells print by wall-clock timers, ~18 s of cells).
TESTED = ("Widget List", "Using Interact", "Output", "update-display-id")  # ~1 s each side
HISTORY_IN_MEMORY = "--HistoryManager.hist_file=:memory:"  # README, "Runners"

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_MODEL_ID = re.compile(r"\b[0-9a-f]{32}\b")
#: Clock times and durations (``%%time`` prints "user 101 ms, sys: 52 μs", with a Greek mu).
_TIME = re.compile(r"\b\d\d:\d\d:\d\d(\.\d+)?|\b\d+(\.\d+)? ?(ms|s|[µμ]s|ns)\b")


def normalise(text: str) -> str:
    """What differs between two runs of the same notebook: addresses, ids, times."""
    return _TIME.sub("<time>", _MODEL_ID.sub("<id>", _ADDRESS.sub("<addr>", text)))


def outputs(nb: nbformat.NotebookNode) -> list[list[str]]:
    """Each code cell's outputs as normalised text (stream text, data by mime type)."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        last_stream = None
        shown: list[str] = []
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                # As a frontend shows them: one stream's text in one piece. ipykernel sends
                # what a cell printed in as many messages as its IO thread's flush timer
                # (0.2 s, started by an earlier write) cut it into, under either kernel:
                # one print of a docstring arrived as its text, then its newline.
                if last_stream == o.name:
                    shown[-1] += normalise(o.text)
                else:
                    shown.append(f"{o.name}: {normalise(o.text)}")
                last_stream = o.name
                continue
            last_stream = None
            if o.output_type == "error":
                shown.append(f"error: {o.ename}: {normalise(o.evalue)}")
            else:
                for mime, value in sorted(o.get("data", {}).items()):
                    text = value if isinstance(value, str) else repr(value)
                    if not mime.startswith("image/"):  # (base64: no times nor addresses)
                        text = normalise(text)
                    shown.append(f"{o.output_type} {mime}: {text}")
        out.append(shown)
    return out


def run(names: tuple[str, ...], kernel: str, work: Path,
        args: tuple[str, ...] = ()) -> tuple[nbformat.NotebookNode, float]:  # fmt: skip
    """Run corpus notebooks ``names`` one after the other in one kernel, in a copy of the
    corpus folder; return the executed cells (as one notebook) and the cell time (s).
    ``args``: the kernel's further command-line arguments (bench/corpus.py's timer)."""
    for attempt in (1, 2):
        try:
            nb = _execute(names, kernel, work / str(attempt), args)
            break
        except (RuntimeError, TimeoutError):
            # A kernel that never answers: jupyter_client picks free ports by binding and
            # releasing them, and the other test worker can take one first (ipykernel then
            # hangs, never ready). One new kernel on new ports; twice is a failure.
            if attempt == 2:
                raise
    took = 0.0
    for cell in nb.cells:
        t = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in t and "shell.execute_reply" in t:
            took += _seconds(t["shell.execute_reply"]) - _seconds(t["iopub.execute_input"])
    return nb, took


def _execute(names: tuple[str, ...], kernel: str, work: Path,
             args: tuple[str, ...]) -> nbformat.NotebookNode:  # fmt: skip
    shutil.copytree(CORPUS, work, dirs_exist_ok=True)
    nb = nbformat.read(work / f"{names[0]}.ipynb", as_version=4)
    for name in names[1:]:
        nb.cells += nbformat.read(work / f"{name}.ipynb", as_version=4).cells
    nb.cells = runnable(nb.cells)
    # Both sides keep IPython's history in memory: the profile's history file is shared
    # with every other kernel on the machine, and waiting for its lock is not the point.
    extra = [HISTORY_IN_MEMORY, *args]
    client = NotebookClient(
        nb, kernel_name=kernel, timeout=60, startup_timeout=60, allow_errors=True,
        extra_arguments=extra, resources={"metadata": {"path": str(work)}},
    )  # fmt: skip
    client.execute()
    return nb


def runnable(cells: list) -> list:
    """The cells the runs keep: ``%pip install`` (for JupyterLite) needs the network and
    changes the environment."""
    return [c for c in cells if "\n%pip " not in f"\n{c.source}"]


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def journal_dir(tmp_path, monkeypatch):
    """The durable kernel's journals go to a temp folder, never beside the corpus."""
    folder = tmp_path / "journals"
    monkeypatch.setenv("DURABLE_NB_DIR", str(folder))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    return folder


@pytest.mark.timeout(600)  # two kernels per side at most (see run)
def test_public_notebooks_run_the_same_under_the_durable_kernel(tmp_path, journal_dir):
    # One kernel per side for all of them: the suite's budget is kernels, not cells.
    plain, _ = run(TESTED, "python3", tmp_path / "plain")
    durable, _ = run(TESTED, "python3-durable", tmp_path / "durable")
    assert outputs(durable) == outputs(plain)
    lines = [line for cell in outputs(durable) for out in cell for line in out.splitlines()]
    assert not [line for line in lines if "durable_nb:" in line]
    assert os.listdir(journal_dir), "the durable kernel journaled (the corpus folder is clean)"


#: Values of Using Interact's namespace a restore must give back as they were (functions
#: that ``interact`` gave a widget, an ``Enum`` class, the widgets its cells made again and
#: what later cells set on them): compared by their repr.
PROBE = (
    "(Color(1).name, h(Color.blue), g(True, 2.0), f1.__name__, slow_function.__doc__, "
    "a.value, a.max, x_widget.max, y_widget.value, slow.kwargs, ui.children[1].max, "
    "[c.description for c in interactive_plot.children[:-1]], output.layout.height)"
)
NAMES = "sorted(n for n in globals() if not n.startswith('_'))"


def test_a_notebook_of_interacts_is_restored_after_a_kill(start_kernel):
    # Its variables hold widgets (``interact`` sets ``f.widget``), so most come back by
    # re-running their cells, as the namespace now stands: none may come back wrong, and
    # each that does not come back is named.
    nb = nbformat.read(CORPUS / "Using Interact.ipynb", as_version=4)
    k = start_kernel()
    for cell in runnable(nb.cells):
        if cell.cell_type == "code" and cell.source.strip():
            k.ok(cell.source)
    probe, before = k.value(PROBE), ast.literal_eval(k.value(NAMES))
    k.kill()
    k2 = start_kernel()
    said = str(k2.ok("%durable restore"))
    assert "restored" in said
    assert k2.value(PROBE) == probe
    missing = set(before) - set(ast.literal_eval(k2.value(NAMES)))
    # Each as the line names a skipped value: "skipped w (why); out (why)".
    skipped = said[said.find("skipped ") :] if "skipped " in said else ""
    unsaid = [n for n in missing if not re.search(rf"(?:skipped |; ){re.escape(n)} \(", skipped)]
    assert unsaid == [], said
