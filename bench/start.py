"""Kernel start with a big journal: the plain python3 kernel vs python3-durable (issues 11, 13).

Journals are built through durable_nb.store (a run, C cells, N completed steps whose
identities are those the runtime computes for ``inc(i)`` in cell ``key<c>``); the 5M one
is the 100k one with its step rows copied in DuckDB (new record ids and identities),
since writing 5M rows one by one takes ~15 minutes. Each journal is built once into
``--cache``. For each journal and side: ``--repeat`` fresh kernels, each timed from
``start_kernel`` to the reply of a first trivial cell (``y = 1``), then a cell that
replays one recorded step (durable side: the lookup reads that cell's results); the
kernel's CPU time and peak RSS (VmHWM) beside it. Min and median are printed side by side.
Bytecode is cached as in an installed package (one untimed kernel per side first).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import bytecode  # noqa: E402  (bench/)
from kernels import Kernel  # noqa: E402  (the tests' real-kernel driver)

#: Journal -> (steps, cells); "new": none yet (a new notebook: its first kernel makes it).
JOURNALS = {"new": (None, 0), "empty": (0, 0), "100k": (100_000, 10_000),
            "5M": (5_000_000, 10_000)}  # fmt: skip
LABELS = {"new": "new (none yet)", "empty": "empty", "100k": "100k steps, 10k cells",
          "5M": "5M steps, 10k cells"}  # fmt: skip
#: ``<journal>-reopened``: the journal as the last kernel of its notebook left it (a
#: durable kernel ran a cell in the folder and shut down cleanly, untimed): the common
#: start, where the journal is the one this user's durable_nb closed (its checks skipped).
#: Without the suffix the journal is a copy: as one made elsewhere, fully checked.
REOPENED = "-reopened"
#: ``<journal>-killed``: as its last kernel left it when SIGKILLed a few seconds after a
#: cell (the flusher's tick vouched for the file as it stood): the restart after a crash.
KILLED = "-killed"
STEP = "import durable_nb as dnb\n@dnb.step\ndef inc(i):\n    return -1\nr = inc({i})"


def identity(cell_key: str, i: int) -> str:
    """The identity the runtime gives ``inc(i)``, the first such call of cell ``cell_key``."""
    from durable_nb import fingerprints

    return fingerprints.fingerprint(0, cell_key, "inc", fingerprints.fingerprint((i,), {}), 0)


def build(folder: Path, steps: int | None, cells: int) -> None:
    """A journal of ``steps`` completed steps over ``cells`` cells, through the store
    (``steps`` None: the notebook alone)."""
    from durable_nb.store import CellRow, Journal, RunRow, StepRow

    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(), folder / "nb.ipynb")
    if steps is None:
        return
    now, run = time.time(), uuid.uuid4().hex
    j = Journal.open(folder / ".durable" / "nb.duckdb")
    base = min(steps, 100_000)
    j.write(RunRow(run, os.getpid(), "bench", str(folder / "nb.ipynb"), now, now, "closed"))
    for c in range(cells):
        j.write(CellRow(f"{run}:{c + 1}", c + 1, run, f"key{c}", f"key{c}", STEP.format(i=c),
                        now, now, "ok", None, 1, 0), sync=False)  # fmt: skip
    for i in range(base):
        key = f"key{i % cells}"
        j.write(StepRow(uuid.uuid4().hex, identity(key, i), 0, "inc", key, i % cells + 1, run,
                        f"({i})", 0, None, "ok", "json", str(i).encode(), None, None, 1, "[]",
                        now, now), sync=False)  # fmt: skip
    j.close()
    if steps > base:
        import duckdb

        con = duckdb.connect(str(folder / ".durable" / "nb.duckdb"))
        con.execute("CREATE TEMP TABLE base AS SELECT * FROM steps")
        con.execute(
            "INSERT INTO steps SELECT md5(record_id || r), md5(identity || r), epoch, name, "
            "cell_key, seq, run_id, args, occurrence, key, status, kind, result, blob, error, "
            "attempts, attempt_errors, started, ended, sig, n FROM base, range(1, ?) t(r)",
            [steps // base],
        )
        con.execute("CHECKPOINT")
        con.close()


def cpu(pid: int) -> float:
    """CPU seconds the process has used (user + system): less sensitive to a busy machine."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> float:
    """The process's peak resident memory, MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e3
    return float("nan")


def once(side: str, work: Path, cells: int, reopened: str = "") -> dict[str, float]:
    # As installed: bytecode is cached (a first kernel per side writes it, untimed).
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JPY_", "DURABLE_NB", "PYTHONDONTWRITEBYTECODE"))}  # fmt: skip
    env["JPY_SESSION_NAME"] = str(work / "nb.ipynb")
    if reopened:  # the notebook's last kernel (both sides: the same files in the cache)
        last = Kernel(work, env, "python3-durable")
        try:
            last.run("y = 0", cell_id="bench-last")
            if reopened == KILLED:
                time.sleep(2.5)  # a tick or two after the cell, then SIGKILL
        finally:
            last.kill() if reopened == KILLED else last.close()
    t0 = time.perf_counter()
    k = Kernel(work, env, "python3-durable" if side == "durable" else "python3")
    ready = time.perf_counter() - t0  # the kernel_info reply: the frontend says "idle"
    try:
        res = k.run("y = 1", cell_id="bench-first")
        start = time.perf_counter() - t0
        if not res.ok:
            raise RuntimeError(str(res))
        out = {"ready": ready, "start": start, "cpu": cpu(k.pid), "rss": peak_rss(k.pid)}
        if cells:
            c = cells // 2
            t1 = time.perf_counter()
            res = k.run(STEP.format(i=c) + "\nprint(r)", cell_id=f"key{c}")
            out["replay"] = time.perf_counter() - t1
            out["replayed"] = res.stdout.split("\n")[0] == str(c)  # recorded: c; a call: -1
            out["rss"] = peak_rss(k.pid)
        return out
    finally:
        k.kc.stop_channels()
        k.km.shutdown_kernel(now=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="kernels per journal and side")
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "durable-nb-bench-start"),
                   help="where the journals are built (once) and kept")  # fmt: skip
    p.add_argument("--journals", default=",".join(JOURNALS),
                   help=f"comma list of journals, each maybe {REOPENED} or {KILLED}")  # fmt: skip
    args = p.parse_args(argv)
    bytecode.compile_package()  # as installed (bench/bytecode.py)
    rows = []
    for side in ("plain", "durable"):  # untimed: imports compiled and cached
        work = Path(tempfile.mkdtemp(prefix="bench-start-"))
        try:
            once(side, work, 0)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    for name in args.journals.split(","):
        reopened = next((end for end in (REOPENED, KILLED) if name.endswith(end)), "")
        base = name.removesuffix(reopened) if reopened else name
        steps, cells = JOURNALS[base]
        label = LABELS[base] + (f", {reopened[1:]}" if reopened else "")
        master = Path(args.cache) / (base if steps is None else f"{steps}-{cells}")
        if not (master / ".ok").exists():
            shutil.rmtree(master, ignore_errors=True)
            t0 = time.perf_counter()
            build(master, steps, cells)
            (master / ".ok").touch()
            print(f"built {label} in {time.perf_counter() - t0:.0f} s", flush=True)
        got: dict[str, list[dict[str, float]]] = {"plain": [], "durable": []}
        for _ in range(args.repeat):
            for side in got:  # interleaved: a busy moment hits both sides
                work = Path(tempfile.mkdtemp(prefix="bench-start-"))
                try:
                    shutil.copytree(master, work, dirs_exist_ok=True)
                    got[side].append(once(side, work, cells, reopened))
                finally:
                    shutil.rmtree(work, ignore_errors=True)
        rows.append((label, got))
        print(f"{label}: done", flush=True)
    print("\nkernel start to the reply of `y = 1` (s, min / median of "
          f"{args.repeat}); extra: durable - plain, medians, to the kernel_info reply and to "
          "the reply of `y = 1`; the kernel's CPU time by then (median, durable - plain); "
          "peak RSS (MB, max); a cell replaying one step (s, median)")  # fmt: skip
    print(f"{'journal':<32} {'plain start':>14} {'durable start':>14} {'ready':>7} {'extra':>7} "
          f"{'extra CPU':>9} {'plain MB':>9} {'durable MB':>10} {'replay s':>9}"
          "  replayed")  # fmt: skip
    for label, got in rows:
        p_, d_ = ([r["start"] for r in got[s]] for s in ("plain", "durable"))
        extra = statistics.median(d_) - statistics.median(p_)
        ready = statistics.median(r["ready"] for r in got["durable"]) - statistics.median(
            r["ready"] for r in got["plain"]
        )
        extra_cpu = statistics.median(r["cpu"] for r in got["durable"]) - statistics.median(
            r["cpu"] for r in got["plain"]
        )
        replay = [r["replay"] for r in got["durable"] if "replay" in r]
        replayed = all(r.get("replayed", True) for r in got["durable"])
        print(f"{label:<32} {min(p_):6.2f} /{statistics.median(p_):6.2f} "
              f"{min(d_):6.2f} /{statistics.median(d_):6.2f} {ready * 1e3:+5.0f}ms "
              f"{extra * 1e3:+5.0f}ms "
              f"{extra_cpu * 1e3:+7.0f}ms "
              f"{max(r['rss'] for r in got['plain']):9.0f} "
              f"{max(r['rss'] for r in got['durable']):10.0f} "
              f"{statistics.median(replay) if replay else float('nan'):9.3f}  "
              f"{'yes' if replayed else 'NO'}")  # fmt: skip
    print("targets: durable start ≤ plain + 150 ms (100k steps); ≤ ~1 s and ≤ 500 MB (5M steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
