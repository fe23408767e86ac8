"""Replay lookup cost: one cell's batch of N JSON and N pickled results, read back.

A journal of 2·N completed steps of one cell (written through durable_nb.store, then
closed) is opened again; the first lookup loads the cell's batch (one query, each row's
signature and the batch's manifests checked), the next ones are timed one by one. Times
are this process's CPU time (a busy machine makes wall time wait for a core).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import tempfile
import time
import uuid


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000, help="results of each kind (default 20000)")
    p.add_argument("--repeat", type=int, default=3, help="journals opened (default 3)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as tmp:
        os.environ["JUPYTER_DATA_DIR"] = os.path.join(tmp, "data")  # a secret of its own
        from durable_nb.store import Journal, StepRow

        path = os.path.join(tmp, "nb.duckdb")
        j = Journal.open(path)
        kinds = {"json": b"1", "pickle": pickle.dumps({1, 2})}
        ids: dict[str, list[str]] = {kind: [] for kind in kinds}
        now = time.time()
        for kind, payload in kinds.items():
            for _ in range(args.n):
                ids[kind].append(uuid.uuid4().hex)
                j.write(StepRow(uuid.uuid4().hex, ids[kind][-1], 0, "f", "k", 1, "r", None,
                                None, None, "ok", kind, payload, None, None, 1, None, now,
                                now), sync=False)  # fmt: skip
        j.sync()
        j.close()
        load, per = [], {kind: [] for kind in kinds}
        for _ in range(args.repeat):
            j = Journal.open(path)
            try:
                t0 = time.process_time()
                j.lookup(ids["json"][0], "k", "f")
                load.append(time.process_time() - t0)
                for kind, found in ids.items():
                    t0 = time.process_time()
                    for identity in found[1:]:
                        j.lookup(identity, "k", "f")
                    per[kind].append((time.process_time() - t0) / (len(found) - 1))
            finally:
                j.close()
    took = statistics.median(load)
    print(f"batch of {2 * args.n} results loaded by the first lookup: {took * 1e3:.0f} ms "
          f"({took / (2 * args.n) * 1e6:.1f} µs a result)")  # fmt: skip
    for kind, times in per.items():
        print(f"lookup of a {kind} result: {statistics.median(times) * 1e6:.2f} µs (median)")


if __name__ == "__main__":
    main()
