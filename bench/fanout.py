"""Fan-out throughput: journaled dnb.map vs plain executor.map and Dask client.map.
One process, a journal in a temp folder; each side timed best of --reps runs."""

import argparse
import collections
import os
import shutil
import statistics
import sys
import tempfile
import time

TARGET_COST_US = 50.0
TARGET_REPLAY = 100_000
TARGET_DASK_RATIO = 1.3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000, help="items per map (default 10000)")
    p.add_argument("--reps", type=int, default=3, help="timed runs per side (best is shown)")
    p.add_argument("--dask-reps", type=int, default=2, help="timed runs per Dask side")
    p.add_argument("--threads", type=int, default=4, help="ThreadPoolExecutor size")
    p.add_argument("--dask-workers", type=int, default=2, help="LocalCluster workers")
    p.add_argument("--dask-processes", action="store_true", help="workers as processes")
    p.add_argument("--no-dask", action="store_true", help="skip the Dask sides")
    p.add_argument("--profile", metavar="FILE", help="cProfile the durable thread runs")
    p.add_argument("--items", choices=("ints", "rows"), default="ints",
                   help="the items: ints, or rows (namedtuples holding a frozenset)")  # fmt: skip
    return p.parse_args(argv)


def inc(i):
    """The trivial body: the same function for the plain and the durable sides."""
    return i + 1


#: ``--items rows``: what a map over a fleet gets, a namedtuple per node with a frozenset
#: of roles (told by its pickle, the set in canonical order: fingerprints.py).
Node = collections.namedtuple("Node", "id name roles")


def inc_node(node):
    """The trivial body for ``--items rows``."""
    return node.id + 1


def make_items(kind, n):
    """The map's items: ``ints`` (0..n-1) or ``rows`` (a :data:`Node` each)."""
    if kind == "ints":
        return range(n)
    return [Node(i, f"node-{i:05d}", frozenset({"web", "db", f"rack-{i % 8}"})) for i in range(n)]


def main(argv=None):
    args = parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="dnb-bench-fanout-")
    os.environ["DURABLE_NB_DIR"] = tmp  # read when the first step opens the journal
    from concurrent.futures import ThreadPoolExecutor

    import durable_nb as dnb
    from durable_nb import runtime

    body = inc if args.items == "ints" else inc_node
    step = dnb.step(body, name="inc", retries=0)
    rt = runtime.current()
    n, rows = args.n, []
    items = make_items(args.items, n)
    expected = [i + 1 for i in range(n)]

    def timed(fn):
        cpu, start = time.process_time(), time.perf_counter()
        out = fn()
        secs, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert list(out) == expected, "wrong results"
        return secs, cpu

    def durable(run_id, executor):
        # Each timed run is its own "cell", so its items are new steps, not replays.
        rt.begin_cell(None, f"# bench {run_id}")
        try:
            return dnb.map(step, items, executor=executor, progress=False)
        finally:
            rt.end_cell("ok", None)

    def best(fn, reps):
        """(wall, cpu) of the fastest run: CPU time (all threads) moves less on a busy box."""
        return min(timed(fn) for _ in range(reps))

    pool = ThreadPoolExecutor(args.threads)
    list(pool.map(inc, range(1000)))  # start the threads
    plain_threads = best(lambda: list(pool.map(body, items)), args.reps)
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    runs = iter(range(10**6))
    dur_threads = best(lambda: durable(f"threads {next(runs)}", pool), args.reps)
    if args.profile:
        prof.disable()
        prof.dump_stats(args.profile)
    # Replay: the cell of the first durable run, run again.
    replays = []
    for _ in range(args.reps):
        replays.append(timed(lambda: durable("threads 0", pool)))
    replay = min(replays)[0]
    assert rt.journaling and rt.totals["ran"] >= n * args.reps, "steps not journaled"
    rows.append(("threads", f"ThreadPoolExecutor({args.threads})", plain_threads, dur_threads))

    if not args.no_dask:
        import logging

        from distributed import Client, LocalCluster

        logging.getLogger("distributed").setLevel(logging.ERROR)
        cluster = LocalCluster(n_workers=args.dask_workers, threads_per_worker=1,
                               processes=args.dask_processes, dashboard_address=None)  # fmt: skip
        client = Client(cluster)
        client.gather(client.map(inc, range(1000)))  # warm the workers

        def plain_dask():
            # pure=False (random keys, no hashing of each argument): the faster plain way.
            return client.gather(client.map(body, items, pure=False))

        plain_d = best(plain_dask, args.dask_reps)
        dur_d = best(lambda: durable(f"dask {next(runs)}", client), args.dask_reps)
        kind = "processes" if args.dask_processes else "threads"
        rows.append(("dask", f"LocalCluster({args.dask_workers} {kind})", plain_d, dur_d))
        client.close()
        cluster.close()
    pool.shutdown()

    print(
        f"\nfan-out of {n:,} trivial items ({args.items}; best of {args.reps}); journal in {tmp}\n"
    )
    head = ("executor", "plain items/s", "plain µs/item", "dnb.map items/s",
            "dnb.map µs/item", "journaling µs/item", "(CPU µs/item)", "dnb/plain")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for _, label, (plain, plain_cpu), (dur, dur_cpu) in rows:
        pu, du = plain / n * 1e6, dur / n * 1e6
        print(f"| {label} | {n / plain:,.0f} | {pu:.1f} | {n / dur:,.0f} | {du:.1f} "
              f"| {du - pu:.1f} | {(dur_cpu - plain_cpu) / n * 1e6:.1f} "
              f"| {dur / plain:.2f}× |")  # fmt: skip
    walls = [w for w, _ in replays]
    print(f"\nreplay of a finished map: {n / replay:,.0f} items/s "
          f"({replay / n * 1e6:.1f} µs/item; runs: "
          f"{', '.join(f'{n / w:,.0f}' for w in walls)}; median "
          f"{n / statistics.median(walls):,.0f})")  # fmt: skip
    print("\ntargets:")
    cost = (rows[0][3][0] - rows[0][2][0]) / n * 1e6
    verdict = [("journaling cost with threads", f"{cost:.1f} µs/item", f"≤ {TARGET_COST_US:g}",
                cost <= TARGET_COST_US),
               ("replay", f"{n / replay:,.0f} items/s", f"≥ {TARGET_REPLAY:,}",
                n / replay >= TARGET_REPLAY)]  # fmt: skip
    if len(rows) > 1:
        ratio = rows[1][3][0] / rows[1][2][0]
        verdict.append(("Dask vs plain client.map", f"{ratio:.2f}×",
                        f"≤ {TARGET_DASK_RATIO}×", ratio <= TARGET_DASK_RATIO))  # fmt: skip
    for what, got, want, ok in verdict:
        print(f"  {what}: {got} (target {want}) {'ok' if ok else 'MISSED'}")
    rt.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
