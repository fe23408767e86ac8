"""Public notebooks under python3 and python3-durable: total cell time per notebook (issue 13).

The notebooks of tests/corpus/ (ipywidgets' Widget List, Widget Events and Using Interact,
nbclient's Output and update-display-id), each run with nbclient in a fresh kernel per side, sides
interleaved, ``--repeat`` times; cell time is the sum over cells of execute_input to
execute_reply (nbclient's timing), so kernel start is left out. Outputs are compared as
tests/test_corpus.py does. Target: durable ≤ 1.1× plain on every notebook. ``--cells``:
each cell's median too, to see which cells cost what. Besides the ratio of the medians,
each repeat's own ratio (its runs were neighbours in time) is summed up by its median and
quartiles: on a shared machine a run's total moves by ±0.1× from one minute to the next.

A third side, python3+lean, is the plain kernel with durable_nb's lean flushes only
(``_ipykernel.lean_flushes``, which the durable kernel has: a display or a cell's result
flushes only the streams holding text, where ipykernel flushes both, each a round trip
through its IO thread). Durable against it ("own") is what the rest of durable_nb costs.
So each durable run also times durable_nb's own part in the kernel (its cell hooks and the
records written as each reply goes out, main-thread CPU): the extra cell time less that is
the kernel's noise, or costs the hooks do not show (outputs captured, a thread's turn).

Both sides also time each stream flush the kernel's main thread waits for: a round trip
through ipykernel's IO thread, a few per widget cell, a third or more of these notebooks'
cell time. Where the IO thread wakes is the scheduler's choice: on a small VM a wake-up on
an idle virtual CPU costs tens of µs, and the CPU durable_nb spends as a reply goes out
shifts those choices (2026-12-05, 2 vCPUs: +30-90 µs a round trip; a plain kernel busy
for as long in that pause slows the same). ``--affinity CPU`` runs both kernels on one CPU
(every thread, as pyperf's ``--affinity``): round trips then cost the same on both sides,
and CPU spent in the pause is free; so a pinned ratio leaves out what durable_nb's CPU at
each reply costs an unpinned kernel, and is not the target's measure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import bytecode  # noqa: E402  (bench/)
import test_corpus as corpus  # noqa: E402  (the test's runner and normaliser)
from snapshot import HARNESS  # noqa: E402  (bench/: the hooks timer)

SIDES = ("python3", "python3+lean", "python3-durable")
#: The kernel each side runs (python3+lean: the plain one, with lean flushes set as it starts).
KERNELS = {"python3": "python3", "python3+lean": "python3", "python3-durable": "python3-durable"}
#: Run in each kernel as it starts (``exec_files``), leaving no name behind: bench/snapshot.py's
#: harness (the module ``_bench``) times durable_nb's hooks and reply-time writes in place;
#: on both sides each stream flush the main thread waits for (a round trip through ipykernel's
#: IO thread, a few a widget cell) is timed too. All is written at exit to the file
#: ``DURABLE_NB_BENCH_HOOKS`` names.
TIMER = """
def _durable_nb_bench_timer():
    import atexit, json, os, sys, threading, time, _bench
    from ipykernel import iostream
    cpu = os.environ.get("DURABLE_NB_BENCH_CPU")
    if cpu:  # --affinity: every thread the kernel has so far (and so its later ones)
        for task in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(task), {int(cpu)})
    if "durable_nb.extension" in sys.modules:  # (the plain side has no hooks to time)
        _bench.attach_durable()
    elif os.environ.get("DURABLE_NB_BENCH_LEAN"):  # python3+lean
        from IPython import get_ipython
        from durable_nb import _ipykernel
        assert _ipykernel.lean_flushes(get_ipython().kernel) is not None
    flushes, flush, main = [], iostream.OutStream.flush, threading.main_thread()

    def timed_flush(self):  # the main thread's round trips through the kernel's IO thread
        began = time.perf_counter()
        try:
            return flush(self)
        finally:
            if threading.current_thread() is main:
                flushes.append(time.perf_counter() - began)

    iostream.OutStream.flush = timed_flush

    def write():
        took = json.loads(_bench.take())
        took["flushes"] = flushes
        with open(os.environ["DURABLE_NB_BENCH_HOOKS"], "w") as f:
            f.write(json.dumps(took))

    atexit.register(write)


_durable_nb_bench_timer()
del _durable_nb_bench_timer
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cells", action="store_true", help="each cell's median time too")
    p.add_argument("--affinity", type=int, metavar="CPU",
                   help="both kernels on this one CPU (Linux; pyperf's --affinity)")  # fmt: skip
    args = p.parse_args(argv)
    bytecode.compile_package()  # as installed (bench/bytecode.py)
    os.environ.pop("JPY_SESSION_NAME", None)
    timer = Path(tempfile.mkdtemp(prefix="bench-corpus-timer-")) / "timer.py"
    timer.write_text(TIMER)
    (timer.parent / "_bench.py").write_text(HARNESS)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(timer.parent), os.environ.get("PYTHONPATH")) if p
    )
    timed = (f"--IPKernelApp.exec_files=[{str(timer)!r}]",)
    if args.affinity is not None:
        os.environ["DURABLE_NB_BENCH_CPU"] = str(args.affinity)
    rows, same = [], True
    for name in corpus.NOTEBOOKS:
        took: dict[str, list[float]] = {side: [] for side in SIDES}
        hooks: list[float] = []  # durable_nb's own main-thread CPU per durable run (s)
        flushes: dict[str, list[float]] = {side: [] for side in SIDES}  # round trips (s)
        per_cell: dict[str, list[list[float]]] = {side: [] for side in SIDES}
        sources: list[str] = []
        for _ in range(args.repeat):
            shown = {}
            for side in SIDES:
                folder = Path(tempfile.mkdtemp(prefix="bench-corpus-"))
                os.environ["DURABLE_NB_DIR"] = str(folder / "journals")
                os.environ["DURABLE_NB_BENCH_HOOKS"] = str(folder / "hooks.json")
                os.environ["DURABLE_NB_BENCH_LEAN"] = "1" if side == "python3+lean" else ""
                try:
                    nb, seconds = corpus.run((name,), KERNELS[side], folder / "work", timed)
                    timing = json.loads((folder / "hooks.json").read_text())
                    flushes[side] += timing["flushes"]
                    if side == "python3-durable":
                        hooks.append(timing["hooks_cpu"])
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
                took[side].append(seconds)
                per_cell[side].append(cell_seconds(nb))
                sources = [c.source for c in nb.cells if c.cell_type == "code"]
                shown[side] = corpus.outputs(nb)
            if any(shown[s] != shown["python3"] for s in SIDES):
                same = False
                a = shown["python3"]
                b = next(shown[s] for s in SIDES if shown[s] != a)
                at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), -1)
                print(f"{name}: outputs differ at code cell {at}: {a[at]!r:.200} vs {b[at]!r:.200}")
        rows.append((name, took, hooks, flushes))
        print(f"{name}: done", flush=True)
        if args.cells:
            print(f"  {'cell':<44} {'python3 ms':>10} {'+lean ms':>10} {'durable ms':>10} "
                  f"{'extra':>7}")  # fmt: skip
            for i, source in enumerate(sources):
                med = [statistics.median(run[i] for run in per_cell[s]) * 1e3 for s in SIDES]
                first = source.strip().splitlines()[0][:42] if source.strip() else ""
                print(f"  {i:>2} {first:<41} {med[0]:10.1f} {med[1]:10.1f} {med[2]:10.1f} "
                      f"{med[2] - med[0]:+7.1f}")  # fmt: skip
    print(f"\ntotal cell time per notebook, s (median of {args.repeat}; min in brackets)")
    print(f"{'notebook':<20} {'python3':>15} {'python3+lean':>15} {'python3-durable':>15} "
          f"{'ratio':>6} {'paired (quartiles)':>22} {'own':>5} {'extra ms':>9} {'hooks ms':>9} "
          f"{'flushes a run':>16}")  # fmt: skip
    for name, took, hooks, flushes in rows:
        med = {s: statistics.median(took[s]) for s in SIDES}
        cells = [f"{med[s]:6.2f} ({min(took[s]):5.2f})" for s in SIDES]
        plain, lean, durable = (took[s] for s in SIDES)
        ratio = med["python3-durable"] / med["python3"] if med["python3"] else float("nan")
        paired = [d / p for p, d in zip(plain, durable, strict=True) if p]
        q = statistics.quantiles(paired, n=4) if len(paired) > 1 else paired * 3 or [math.nan] * 3
        spread = f"{q[1]:.2f} ({q[0]:.2f}–{q[2]:.2f})"
        own = statistics.median(d / n for n, d in zip(lean, durable, strict=True) if n)
        extra = statistics.median(d - p for p, d in zip(plain, durable, strict=True))
        counts = " / ".join(f"{len(flushes[s]) / len(took[s]):.0f}" for s in SIDES)
        print(
            f"{name:<20} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} {ratio:6.2f} {spread:>22} "
            f"{own:5.2f} {extra * 1e3:9.1f} {statistics.median(hooks) * 1e3:9.1f} {counts:>16}"
        )
    print(
        "ratio, paired: durable ÷ python3 (the target); own: durable ÷ python3+lean, median\n"
        "of the paired runs (durable_nb less its lean flushes); extra ms: durable less python3,\n"
        "median of the paired runs; hooks ms: durable_nb's hooks and reply-time writes,\n"
        "main-thread CPU, median per run; flushes a run: the stream flushes the main thread\n"
        "waited for (each a round trip through ipykernel's IO thread), python3 / +lean / durable"
    )
    print(f"outputs equal (normalised): {'yes' if same else 'NO'}; target: ratio ≤ 1.1")
    return 0 if same else 1


def cell_seconds(nb) -> list[float]:
    """Each code cell's execute_input to execute_reply (s); 0 for a cell not run."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        t = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in t and "shell.execute_reply" in t:
            start, end = t["iopub.execute_input"], t["shell.execute_reply"]
            out.append(corpus._seconds(end) - corpus._seconds(start))
        else:
            out.append(0.0)
    return out


if __name__ == "__main__":
    sys.exit(main())
