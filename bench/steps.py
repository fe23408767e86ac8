"""Durable step throughput: durable_nb vs DBOS 3.4 (SQLite) vs the fdatasync floor.
Each side runs in its own subprocess and temp folder; only the step loop is timed."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

T0 = time.perf_counter()
TAG = "RESULT "
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WFID = "bench-steps"
SIDES = ("durable", "dbos", "floor")
LABELS = {"durable": "durable_nb", "dbos": "DBOS 3.4 (SQLite)", "floor": "fdatasync floor"}
TARGETS = {("durable", "run"): 1_000, ("durable", "replay"): 20_000}
FLOOR_FACTOR = 8.0
CALLS = [0]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="steps per loop (default 2000)")
    p.add_argument("--sides", default=",".join(SIDES), help="comma list of sides to run")
    p.add_argument("--tmp", default=None, help="parent folder for the temp folders")
    p.add_argument("--keep", action="store_true", help="keep the temp folders")
    p.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--phase", choices=("run", "replay"), default="run", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---------------------------------------------------- one side, in its own subprocess


def body(i):
    """The trivial step: counts real executions, so replays can be told apart."""
    CALLS[0] += 1
    return i + 1


def time_loop(fn, n):
    """Call fn(0..n-1); return (seconds, number of wrong results)."""
    bad = 0
    start = time.perf_counter()
    for i in range(n):
        bad += fn(i) != i + 1
    return time.perf_counter() - start, bad


def folder_bytes(folder):
    return sum(
        os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files
    )


def emit(folder, secs, bad, setup, **extra):
    out = {"secs": secs, "bad": bad, "calls": CALLS[0], "setup": setup}
    out["bytes"] = folder_bytes(folder)
    print(TAG + json.dumps({**out, **extra}), flush=True)


def side_floor(n, folder):
    fd = os.open(os.path.join(folder, "floor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    record = b"x" * 63 + b"\n"

    def append(i):
        os.write(fd, record)
        os.fdatasync(fd)
        return body(i)

    setup = time.perf_counter() - T0
    secs, bad = time_loop(append, n)
    os.close(fd)
    emit(folder, secs, bad, setup)


def side_durable(n, folder):
    import durable_nb as dnb

    @dnb.step
    def inc(i):
        return body(i)

    # Warm-up, journaled and replayed like the rest: opens the journal untimed.
    inc(-1)
    CALLS[0] = 0
    setup = time.perf_counter() - T0
    secs, bad = time_loop(inc, n)
    emit(folder, secs, bad, setup)
    # Die without any exit hook, as the DBOS side does: the replay only finds what
    # was committed by the time each call returned (bodies > 0 there would show loss).
    os._exit(0)


def side_dbos(n, folder, phase):
    from dbos import DBOS, SetWorkflowID

    # No system_database_url: the default, sqlite:///bench_steps.sqlite in the cwd.
    DBOS(config={"name": "bench_steps", "log_level": "WARNING"})
    timing = {}

    @DBOS.step()
    def inc(i):
        return body(i)

    @DBOS.workflow()
    def loop(n):
        inc(-1)  # warm-up, as on the durable side
        CALLS[0] = 0
        timing["setup"] = time.perf_counter() - T0
        timing["secs"], timing["bad"] = time_loop(inc, n)
        # Die before the workflow is marked done: a crash for the replay to recover.
        if phase == "run":
            emit(folder, timing["secs"], timing["bad"], timing["setup"])
            os._exit(0)
        return n

    # In the replay phase, launch re-enqueues the PENDING workflow (recovery).
    DBOS.launch()
    if phase == "run":
        with SetWorkflowID(WFID):
            loop(n)
        raise SystemExit("workflow returned in the run phase")
    DBOS.retrieve_workflow(WFID).get_result()
    wall = time.perf_counter() - T0
    recall = time_recall(loop, n, SetWorkflowID)
    emit(folder, timing["secs"], timing["bad"], timing["setup"], wall=wall, recall=recall)
    DBOS.destroy()


def time_recall(loop, n, set_id):
    """Call the finished workflow again by id: DBOS returns its stored output."""
    calls = CALLS[0]
    start = time.perf_counter()
    with set_id(WFID):
        loop(n)
    secs = time.perf_counter() - start
    return {"secs": secs, "calls": CALLS[0] - calls}


def run_side(args):
    folder = os.path.abspath(args.dir)
    if args.side == "floor":
        side_floor(args.n, folder)
    elif args.side == "durable":
        side_durable(args.n, folder)
    else:
        side_dbos(args.n, folder, args.phase)


# ---------------------------------------------------- orchestration (default mode)


def spawn(side, phase, n, folder):
    cmd = [sys.executable, os.path.abspath(__file__), "--side", side, "--phase", phase]
    cmd += ["--n", str(n), "--dir", folder]
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=path)
    env.pop("DURABLE_NB_DIR", None)
    if side == "durable":
        env["DURABLE_NB_DIR"] = folder
    try:
        proc = subprocess.run(
            cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=900, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    for line in proc.stdout.splitlines():
        if line.startswith(TAG):
            return json.loads(line[len(TAG) :])
    return {"error": last_line(proc)}


def last_line(proc):
    text = proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}"
    return text.splitlines()[-1][:100]


def run_all(args):
    rows = []
    for side in args.sides.split(","):
        folder = tempfile.mkdtemp(prefix=f"bench-{side}-", dir=args.tmp)
        phases = ("run",) if side == "floor" else ("run", "replay")
        for phase in phases:
            rows.append((side, phase, spawn(side, phase, args.n, folder)))
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return rows


def floor_us(rows):
    for side, _, r in rows:
        if side == "floor" and "secs" in r:
            return r["secs"] / r["n"] * 1e6
    return None


def target_text(side, phase, rate, ratio):
    goal = TARGETS.get((side, phase))
    if goal is None:
        return ""
    parts = [f"≥ {goal:,}/s {'ok' if rate >= goal else 'MISSED'}"]
    if phase == "run" and ratio is not None:
        verdict = "ok" if ratio <= FLOOR_FACTOR else "MISSED"
        parts.append(f"≤ {FLOOR_FACTOR:g}× floor {verdict}")
    return "; ".join(parts)


def format_row(side, phase, r, floor):
    head = f"{LABELS[side]:<18} {phase:<7}"
    if "error" in r:
        return f"{head} failed: {r['error']}"
    us = r["secs"] / r["n"] * 1e6
    rate = r["n"] / r["secs"]
    ratio = us / floor if floor and side != "floor" and phase == "run" else None
    ratio_s = f"{ratio:6.1f}×" if ratio is not None else "      -"
    cols = f"{rate:10,.0f} {us:9.1f} {ratio_s} {r['calls']:>6} {r['setup']:7.2f}"
    cols += f" {r['bytes'] / 1024:8,.0f}"
    return f"{head} {cols}  {target_text(side, phase, rate, ratio)}".rstrip()


def print_table(rows, n):
    for _, _, r in rows:
        r["n"] = n
    floor = floor_us(rows)
    print(f"N = {n} sequential steps per loop; each side: own process, own temp folder")
    print(
        f"{'side':<18} {'phase':<7} {'steps/s':>10} {'µs/step':>9} {'×floor':>7} "
        f"{'bodies':>6} {'setup s':>7} {'disk KiB':>8}  target"
    )
    for side, phase, r in rows:
        print(format_row(side, phase, r, floor))
    print_notes(rows)


def print_notes(rows):
    for side, phase, r in rows:
        if r.get("bad"):
            print(f"! {LABELS[side]} {phase}: {r['bad']} wrong step results")
        if side == "dbos" and phase == "replay" and "recall" in r:
            print_recall(r)
    print("bodies = step bodies run in the timed loop (0 on a true replay)")
    print("setup = process start → loop start (untimed); disk = temp folder after")


def print_recall(r):
    rc = r["recall"]
    print(f"DBOS recovery, launch → result: {r['wall']:.2f} s (incl. queue pickup)")
    print(
        f"DBOS re-call of the finished workflow by id: {rc['secs'] * 1e3:.1f} ms, "
        f"{rc['calls']} bodies run (stored output returned, no step replay)"
    )


def main(argv=None):
    args = parse_args(argv)
    if args.side:
        run_side(args)
        return 0
    rows = run_all(args)
    print_table(rows, args.n)
    return int(any("error" in r for _, _, r in rows))


if __name__ == "__main__":
    sys.exit(main())
